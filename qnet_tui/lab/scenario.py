"""Playing a scenario (model/scenario.py) on a running lab.

Each step is a timer on the worker's Loop, and applies through the code the
link and impair messages use (links.set_state, linkimpair.set_impairment).
The Loop cannot take a timer back, so stopping bumps a generation number and
the timers of an older one do nothing. When the scenario ends, or is
stopped, what it changed goes back as the file has it: its links up, their
impairments the file's."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from qnet_tui.lab import links
from qnet_tui.lab.linkimpair import ImpairError, set_impairment
from qnet_tui.lab.realize import Lab
from qnet_tui.model.impairment import NONE, Impairment
from qnet_tui.model.scenario import Scenario, Step, say_time

Report = Callable[[dict[str, Any]], None]


class ScenarioError(Exception):
    """A scenario the lab cannot play, or a step it could not apply."""


class Player:
    """Plays one scenario at a time on lab; log says each step, report hears
    every change (the shape of protocol.ScenarioState's fields)."""

    def __init__(self, lab: Lab, scenarios: dict[str, Scenario], log: Callable[[str, str], None], report: Report):
        self.lab, self.scenarios, self.log, self.report = lab, scenarios, log, report
        self.scenario: Scenario | None = None
        self.started = 0.0
        self.step = 0  # how many steps have started
        self.doing = ""  # what the last step did, for people
        self.generation = 0
        self.cables: dict[frozenset[str], tuple[str, str]] = {}  # links it took down or up
        self.impaired: set[tuple[str, str]] = set()  # directions it impaired

    # -- what clients see ---------------------------------------------------------------

    def status(self, state: str = "running") -> dict[str, Any] | None:
        s = self.scenario
        if s is None:
            return None
        elapsed = min(time.monotonic() - self.started, s.duration) if state == "running" else s.duration
        return {
            "name": s.name,
            "state": state,
            "elapsed": round(elapsed, 3),
            "duration": s.duration,
            "step": self.step,
            "steps": len(s.steps),
            "doing": self.doing,
        }

    def _say(self, state: str = "running") -> None:
        status = self.status(state)
        if status is not None:
            self.report(status)

    # -- start and stop -------------------------------------------------------------------

    def start(self, name: str) -> None:
        scenario = self.scenarios.get(name)
        if scenario is None:
            known = ", ".join(self.scenarios) or "none"
            raise ScenarioError(f"scenario: no scenario {name!r} in this lab's file; its scenarios: {known}")
        if self.scenario is not None:
            self.stop("another scenario starts")
        self.generation += 1
        self.scenario, self.started, self.step, self.doing = scenario, time.monotonic(), 0, "started"
        gen, loop = self.generation, self.lab.loop
        for i, step in enumerate(scenario.steps):
            loop.call_at(self.started + step.at, partial(self._run, gen, i, step))
        loop.call_at(self.started + scenario.duration, partial(self._end, gen))
        self.log("info", f"scenario {name}: started, {len(scenario.steps)} steps over {say_time(scenario.duration)}")
        self._say()

    def stop(self, why: str = "stopped") -> bool:
        """Stop the scenario playing (False if none) and put back what it changed."""
        if self.scenario is None:
            return False
        name = self.scenario.name
        self.generation += 1
        self.doing = why
        self._restore()
        self._say("stopped")
        self.scenario = None
        self.log("info", f"scenario {name}: {why}; its links are as the file has them again")
        return True

    def _end(self, gen: int) -> None:
        if gen != self.generation or self.scenario is None:
            return
        name = self.scenario.name
        self.generation += 1
        self._restore()
        self.doing = "ended"
        self.step = len(self.scenario.steps)
        self._say("ended")
        self.scenario = None
        self.log("info", f"scenario {name}: ended; its links are as the file has them again")

    def _restore(self) -> None:
        for a, b in self.cables.values():
            try:
                links.set_state(self.lab, links.find(self.lab, a, b), True, "both")
            except links.LinkError as exc:
                self.log("warning", f"scenario: cannot put link {a} - {b} back up: {exc}")
        for a, b in self.impaired:
            text = self.lab.topology.impair.get((a, b))
            try:
                set_impairment(self.lab, a, b, Impairment.parse(text) if isinstance(text, str) else NONE)
            except (ImpairError, ValueError) as exc:
                self.log("warning", f"scenario: cannot put back the impairment of {a} -> {b}: {exc}")
        self.cables.clear()
        self.impaired.clear()

    # -- steps ----------------------------------------------------------------------------

    def _run(self, gen: int, index: int, step: Step) -> None:
        if gen != self.generation or self.scenario is None:
            return
        self.step = index + 1
        self.doing = step.describe()
        where = f"scenario {self.scenario.name}: step {index + 1} at {say_time(step.at)}"
        try:
            self._apply(gen, step)
        except (links.LinkError, ImpairError) as exc:
            self.log("error", f"{where}: {step.describe()}: {exc}")
            self._say()
            return
        if step.action != "end":
            self.log("info", f"{where}: {step.describe()}")
        self._say()

    def _apply(self, gen: int, step: Step) -> None:
        loop = self.lab.loop
        if step.action in ("down", "up"):
            self._cable(step.a, step.b, step.action == "up", step.direction)
            if step.down_for:
                loop.call_at(self.started + step.at + step.down_for, partial(self._back_up, gen, step))
        elif step.action == "impair":
            self._impair(step.ways, step.spec)
        elif step.action == "ramp":
            self._impair(step.ways, step.ramp.at(0))
            for tick in range(1, step.ramp.ticks + 1):
                when = self.started + step.at + min(tick * step.ramp.step, step.ramp.over)
                loop.call_at(when, partial(self._ramp, gen, step, tick))

    def _cable(self, a: str, b: str, up: bool, direction: str) -> None:
        cable = links.find(self.lab, a, b)
        links.set_state(self.lab, cable, up, direction)
        self.cables[frozenset((a, b))] = (a, b)

    def _impair(self, ways: tuple[tuple[str, str], ...], spec: Impairment) -> None:
        for a, b in ways:
            set_impairment(self.lab, a, b, spec)
            self.impaired.add((a, b))

    def _back_up(self, gen: int, step: Step) -> None:
        if gen != self.generation:
            return
        try:
            self._cable(step.a, step.b, True, step.direction)
        except links.LinkError as exc:
            self.log("error", f"scenario: link {step.a} - {step.b} back up: {exc}")
            return
        self.doing = f"link {step.a} - {step.b} up again"
        self.log("info", f"scenario {self.scenario.name}: {self.doing} after {say_time(step.down_for)}")
        self._say()

    def _ramp(self, gen: int, step: Step, tick: int) -> None:
        if gen != self.generation:
            return
        spec = step.ramp.at(tick)
        try:
            self._impair(step.ways, spec)
        except ImpairError as exc:
            self.log("error", f"scenario: ramp on link {step.a} - {step.b}: {exc}")
            return
        self.doing = f"link {step.a} - {step.b} ramp: {spec.format()}"
        if tick == step.ramp.ticks:
            self.log("info", f"scenario {self.scenario.name}: {self.doing} (ramp done)")
        self._say()
