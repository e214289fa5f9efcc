"""Scenarios: timelines a topology file declares under `scenarios:`, which a
running lab plays (lab/scenario.py), each step through the same code as the
link and impair verbs.

    scenarios:
      flaky-uplink:
        - at: 30s                       # from the scenario's start
          link: [r1, hub1]
          down: 5s                      # a pulled cable, back after 5 s (down: true: until an up step)
        - at: 40s
          link: [vm2, hub2]
          impair: delay=20ms            # the text form of model/impairment.py; none lifts it
          direction: vm2-hub2           # optional: one way only (A-B with the link's ends, or a-b, b-a)
        - at: 60s
          link: [vm2, hub2]
          ramp: {from: none, to: loss=20%, over: 60s, step: 1s}   # every field, linearly
        - at: 130s
          end: true                     # optional: ends here (else when the last step is done)

A scenario that ends or is stopped puts back what it changed: its links up,
their impairments as the file declares them. The file keeps the scenarios as
read (Topology.scenarios); read() checks them, placing each problem."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from qnet_tui.model import values
from qnet_tui.model.diagnostics import Diagnostic, Severity
from qnet_tui.model.impairment import NONE, Impairment, ImpairmentError
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Link, SourceMap, Topology

ERROR = Severity.ERROR
ACTIONS = ("down", "up", "impair", "ramp", "end")
STEP_KEYS = ("at", "link", "direction", *ACTIONS)
RAMP_KEYS = ("from", "to", "over", "step")
DEFAULT_RAMP_STEP = 1.0
MIN_RAMP_STEP = 0.01  # seconds: finer than a statistics tick by far, and no flood of timers
MAX_SECONDS = 7 * 24 * 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?$")
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_PORT_KINDS = (Kind.TAP, Kind.GUEST_NIC, Kind.SOCKET)
_WORKER_KINDS = (Kind.HUB, *_PORT_KINDS)


class TimeError(ValueError):
    pass


def seconds(value: Any) -> float:
    """A time as a file says it: 30s, 500ms, 1.5m, 1h, or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TimeError(f"expected a time such as 30s, 500ms or 2m, not {values.describe(value)}")
    m = _TIME.match(value.strip()) if isinstance(value, str) else None
    if isinstance(value, str) and m is None:
        raise TimeError(f"{value!r}: expected a time such as 30s, 500ms or 2m")
    number = float(m[1]) * _TIME_UNITS[m[2]] if m is not None else float(value)
    if not math.isfinite(number) or number < 0:
        raise TimeError(f"{value!r}: a time is a finite number of seconds, zero or more")
    if number > MAX_SECONDS:
        raise TimeError(f"{value!r}: longer than a week; a scenario plays while one watches")
    return number


def say_time(s: float) -> str:
    """A time for people, in the form seconds() reads back."""
    if s and s < 1:
        return f"{round(s * 1000, 3):g}ms"
    return f"{round(s, 3):g}s"


@dataclass(frozen=True, slots=True)
class Ramp:
    start: Impairment
    end: Impairment
    over: float
    step: float

    @property
    def ticks(self) -> int:
        """How many changes after the first: the last one sets `end` exactly."""
        return max(1, math.ceil(self.over / self.step - 1e-9))

    def at(self, tick: int) -> Impairment:
        """The spec at tick (0: start, ticks: end), every numeric field linear
        between the two (limit rounded). Each end is a valid spec, so is
        every point between: a jitter or a reorder above zero has a delay."""
        f = min(1.0, tick * self.step / self.over) if self.over else 1.0
        if f >= 1.0:
            return self.end
        out = {}
        for fd in fields(Impairment):
            a, b = getattr(self.start, fd.name), getattr(self.end, fd.name)
            value = a + (b - a) * f
            out[fd.name] = round(value) if isinstance(a, int) else round(value, 6)
        return replace(NONE, **out)


@dataclass(frozen=True, slots=True)
class Step:
    at: float  # seconds from the scenario's start
    action: str  # one of ACTIONS
    a: str = ""  # the link, in the step's order ("" for end)
    b: str = ""
    direction: str = "both"  # both, a-b, b-a
    down_for: float | None = None  # down: back up after this long; None: until an up step
    spec: Impairment | None = None  # impair
    ramp: Ramp | None = None
    line: int = 1

    @property
    def ways(self) -> tuple[Link, ...]:
        return {"both": ((self.a, self.b), (self.b, self.a)), "a-b": ((self.a, self.b),), "b-a": ((self.b, self.a),)}[
            self.direction
        ]

    @property
    def lasts(self) -> float:
        """How long its effect plays after `at`."""
        if self.ramp is not None:
            return self.ramp.over
        return self.down_for or 0.0

    def describe(self) -> str:
        if self.action == "end":
            return "end"
        where = f"link {self.a} - {self.b}" + ("" if self.direction == "both" else f" ({self._way()} only)")
        if self.action == "down":
            return f"{where} down" + (f" for {say_time(self.down_for)}" if self.down_for else "")
        if self.action == "up":
            return f"{where} up"
        if self.action == "impair":
            return f"{where} impair {self.spec.format()}"
        r = self.ramp
        return f"{where} ramp {r.start.format()} -> {r.end.format()} over {say_time(r.over)}"

    def _way(self) -> str:
        return f"{self.a} -> {self.b}" if self.direction == "a-b" else f"{self.b} -> {self.a}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]

    @property
    def duration(self) -> float:
        """When it ends: at an end step, else when the last effect is over."""
        for step in self.steps:
            if step.action == "end":
                return step.at
        return max((s.at + s.lasts for s in self.steps), default=0.0)


# -- reading and checking ----------------------------------------------------------------


class _Reader:
    def __init__(self, topology: Topology, smap: SourceMap | None) -> None:
        self.t = topology
        self.smap = smap or SourceMap()
        self.problems: list[Diagnostic] = []
        self.links = {frozenset(link) for link in topology.links}

    def error(self, message: str, *keys: tuple) -> None:
        line, col = self.smap.find(*keys, ("top-value", "scenarios"), ("top", "scenarios"))
        self.problems.append(Diagnostic(ERROR, message, line, col))

    def _known_keys(self, raw: dict, keys: tuple[str, ...], where: str, what: str, key_at: tuple, at: tuple) -> bool:
        """An error placed at each key of raw not in keys; False if there was one."""
        ok = True
        for key in raw:
            if key not in keys:
                hint = values_hint(str(key), keys)
                self.error(
                    f"{where}unknown key {values.describe(key)}{hint}; {what} has {', '.join(keys)}",
                    (*key_at, key),
                    at,
                )
                ok = False
        return ok

    def read(self, raw: Any) -> dict[str, Scenario]:
        out: dict[str, Scenario] = {}
        if not isinstance(raw, dict):
            self.error(
                "scenarios must be a mapping from a scenario's name to its list of steps "
                f"(as in flaky-link: [{{at: 5s, link: [hub0, vm1], down: 2s}}]), not {values.describe(raw)}"
            )
            return out
        for name, steps in raw.items():
            if not isinstance(name, str) or not _NAME.match(name):
                self.error(
                    f"scenario name {values.describe(name)}: letters, digits, '-', '_' and '.', "
                    "at most 64, starting with a letter or digit",
                    ("scn-key", name),
                )
                continue
            scenario = self.scenario(name, steps)
            if scenario is not None:
                out[name] = scenario
        return out

    def scenario(self, name: str, raw: Any) -> Scenario | None:
        if not isinstance(raw, list) or not raw:
            self.error(
                f"scenario {name}: a list of steps, each with at, link and what happens "
                f"(down, up, impair or ramp), not {'an empty list' if raw == [] else values.describe(raw)}",
                ("scn", name),
                ("scn-key", name),
            )
            return None
        steps = []
        for i, item in enumerate(raw):
            step = self.step(name, i, item)
            if step is not None:
                steps.append(step)
        if len(steps) != len(raw):
            return None
        self.order(name, steps)
        self.overlaps(name, steps)
        ends = [i for i, s in enumerate(steps) if s.action == "end"]
        if ends and ends[0] != len(steps) - 1:
            self.error(
                f"scenario {name}, step {ends[0] + 1}: 'end' is the last step; steps after it would never play",
                ("scn", name, ends[0]),
            )
            return None
        found = Scenario(name, tuple(steps))
        if not ends:
            self.undone_at_once(found)
        return found

    def undone_at_once(self, scenario: Scenario) -> None:
        """A change made as the scenario ends is put back by its end, at once."""
        for i, s in enumerate(scenario.steps):
            lasting = s.action == "down" or (s.action == "impair" and s.spec.active)
            if lasting and not s.lasts and s.at >= scenario.duration:
                line, col = self.smap.find(("scn", scenario.name, i), ("top", "scenarios"))
                self.problems.append(
                    Diagnostic(
                        Severity.WARNING,
                        f"scenario {scenario.name}, step {i + 1}: the scenario ends with this step, and its end puts "
                        f"the file's links back at once; add an end step (as in {{at: "
                        f"{say_time(s.at + 30)}, end: true}}) to keep the change a while",
                        line,
                        col,
                    )
                )

    def step(self, name: str, i: int, raw: Any) -> Step | None:
        where = f"scenario {name}, step {i + 1}"
        at_item = ("scn", name, i)
        if not isinstance(raw, dict):
            self.error(f"{where}: a mapping with at, link and what happens, not {values.describe(raw)}", at_item)
            return None
        ok = self._known_keys(raw, STEP_KEYS, f"{where}: ", "a step", ("scn-key", name, i), at_item)
        actions = [k for k in ACTIONS if k in raw]
        if len(actions) != 1:
            said = f"both {' and '.join(actions)}" if actions else "none of them"
            self.error(f"{where}: a step does one thing, down, up, impair, ramp or end; it has {said}", at_item)
            return None
        action = actions[0]
        place = ("scn", name, i, action)
        at = 0.0
        if "at" not in raw:
            self.error(f"{where}: missing 'at', the time from the scenario's start (as in at: 30s)", at_item)
            ok = False
        else:
            try:
                at = seconds(raw["at"])
            except TimeError as exc:  # the rest of the step is still checked
                self.error(f"{where}: at: {exc}", ("scn", name, i, "at"))
                ok = False
        line = self.smap.find(at_item, ("top", "scenarios"))[0]
        if action == "end":
            if raw["end"] is not True:
                self.error(f"{where}: end: true (the scenario ends here), not {values.describe(raw['end'])}", place)
                return None
            for key in ("link", "direction"):
                if key in raw:
                    self.error(
                        f"{where}: an end step has no {key}; it ends the whole scenario", ("scn-key", name, i, key)
                    )
                    ok = False
            return Step(at, "end", line=line) if ok else None
        link = self.link(where, name, i, raw.get("link"), action, "link" in raw)
        if link is None:
            return None
        a, b = link
        direction = self.direction(where, name, i, raw.get("direction"), a, b)
        if direction is None:
            return None
        value = raw[action]
        step = Step(at, action, a, b, direction, line=line)
        if action == "down":
            if value is True:
                return step if ok else None
            if value is False:
                self.error(f"{where}: down: false does nothing; to put a link back, say up: true", place)
                return None
            try:
                down_for = seconds(value)
            except TimeError as exc:
                self.error(f"{where}: down: true (until an up step) or how long, as in down: 5s; {exc}", place)
                return None
            if down_for == 0:
                self.error(f"{where}: down: 0s would put the link back at once; give a time above zero", place)
                return None
            return replace(step, down_for=down_for) if ok else None
        if action == "up":
            if value is not True:
                self.error(f"{where}: up: true (the link comes back), not {values.describe(value)}", place)
                return None
            return step if ok else None
        if action == "impair":
            spec = self.spec(f"{where}: impair", value, place)
            return replace(step, spec=spec) if ok and spec is not None else None
        ramp = self.ramp(where, name, i, value)
        return replace(step, ramp=ramp) if ok and ramp is not None else None

    def link(self, where: str, name: str, i: int, raw: Any, action: str, given: bool) -> Link | None:
        place = ("scn", name, i, "link")
        if not given:
            self.error(f"{where}: missing 'link', the link it acts on (as in link: [hub0, vm1])", ("scn", name, i))
            return None
        if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw)):
            self.error(f"{where}: link is a pair of node ids, as in [hub0, vm1], not {values.describe(raw)}", place)
            return None
        a, b = raw
        nodes = self.t.nodes
        for j, end in enumerate((a, b)):
            if end not in nodes:
                hint = values_hint(end, nodes)
                self.error(f"{where}: unknown node '{end}'{hint}", ("scn", name, i, "link", j), place)
                return None
        if frozenset((a, b)) not in self.links:
            linked = ", ".join(self.t.neighbours(a)) or "nothing"
            self.error(f"{where}: no link {a} - {b} in this file; {a} links to {linked}", place)
            return None
        ka, kb = nodes[a].kind, nodes[b].kind
        if action in ("down", "up"):
            worker = (ka is Kind.HUB and kb in _PORT_KINDS) or (kb is Kind.HUB and ka in _PORT_KINDS)
            worker = worker or (ka in _PORT_KINDS and kb in _PORT_KINDS)
        else:
            worker = ka in _WORKER_KINDS or kb in _WORKER_KINDS
        if not worker:
            can = (
                "links to a hub, and between a guest NIC and its tap or socket, can be taken down"
                if action in ("down", "up")
                else "links with a hub, tap, guest NIC or socket end can be impaired"
            )
            self.error(f"{where}: the lab's worker does not carry link {a} - {b} (the kernel does); {can}", place)
            return None
        return a, b

    def direction(self, where: str, name: str, i: int, raw: Any, a: str, b: str) -> str | None:
        if raw is None:
            return "both"
        if isinstance(raw, str):
            if raw in ("both", "a-b", "b-a"):
                return raw
            for sep in ("->", "-"):
                if raw == f"{a}{sep}{b}":
                    return "a-b"
                if raw == f"{b}{sep}{a}":
                    return "b-a"
        self.error(
            f"{where}: direction is {values.describe(raw)}; give {a}-{b} or {b}-{a} (one way), or both",
            ("scn", name, i, "direction"),
        )
        return None

    def spec(self, where: str, raw: Any, place: tuple) -> Impairment | None:
        if not isinstance(raw, str):
            self.error(f"{where}: the text form, as in delay=50ms loss=1% (or none), not {values.describe(raw)}", place)
            return None
        try:
            return Impairment.parse(raw)
        except ImpairmentError as exc:
            self.error(f"{where}: {exc}", place)
            return None

    def ramp(self, where: str, name: str, i: int, raw: Any) -> Ramp | None:
        place = ("scn", name, i, "ramp")
        if not isinstance(raw, dict):
            self.error(
                f"{where}: ramp is a mapping, as in {{from: none, to: loss=20%, over: 60s, step: 1s}}, "
                f"not {values.describe(raw)}",
                place,
            )
            return None
        ok = self._known_keys(raw, RAMP_KEYS, f"{where}: ramp: ", "a ramp", ("scn-key", name, i, "ramp"), place)
        for key in ("to", "over"):
            if key not in raw:
                self.error(f"{where}: ramp: missing '{key}' (as in {{to: loss=20%, over: 60s}})", place)
                ok = False
        if not ok:
            return None
        start = self.spec(f"{where}: ramp: from", raw.get("from", "none"), ("scn", name, i, "ramp", "from"))
        end = self.spec(f"{where}: ramp: to", raw["to"], ("scn", name, i, "ramp", "to"))
        times = {}
        for key, default in (("over", None), ("step", DEFAULT_RAMP_STEP)):
            try:
                times[key] = seconds(raw.get(key, default))
            except TimeError as exc:
                self.error(f"{where}: ramp: {key}: {exc}", ("scn", name, i, "ramp", key), place)
                ok = False
        if start is None or end is None or not ok:
            return None
        over, step = times["over"], times["step"]
        if over <= 0:
            self.error(
                f"{where}: ramp: over must be above zero (for a change at once, use impair)",
                ("scn", name, i, "ramp", "over"),
            )
            return None
        if not MIN_RAMP_STEP <= step <= over:
            self.error(
                f"{where}: ramp: step {say_time(step)} must be between {say_time(MIN_RAMP_STEP)} "
                f"and over ({say_time(over)})",
                ("scn", name, i, "ramp", "step"),
                place,
            )
            return None
        return Ramp(start, end, over, step)

    def order(self, name: str, steps: list[Step]) -> None:
        for i in range(1, len(steps)):
            if steps[i].at < steps[i - 1].at:
                self.error(
                    f"scenario {name}, step {i + 1}: at {say_time(steps[i].at)} comes before the step above it "
                    f"({say_time(steps[i - 1].at)}); steps are listed in time order",
                    ("scn", name, i, "at"),
                )

    def overlaps(self, name: str, steps: list[Step]) -> None:
        """A ramp owns its link's direction while it runs, and a timed down
        owns the link's cable: another step there in that window fights it."""
        for i, s in enumerate(steps):
            if s.lasts == 0:
                continue
            end = s.at + s.lasts
            mine = set(s.ways)
            for j, o in enumerate(steps):
                if j == i or o.action == "end" or not (s.at <= o.at < end) or (j < i and o.at == s.at):
                    continue
                if o.lasts and j < i:
                    continue  # reported from the earlier one
                if s.ramp is not None and o.action in ("impair", "ramp") and mine & set(o.ways):
                    what = "another ramp" if o.ramp is not None else "an impair step"
                elif (
                    s.action == "down" and o.action in ("down", "up") and frozenset((o.a, o.b)) == frozenset((s.a, s.b))
                ):
                    what = f"{'an' if o.action == 'up' else 'a'} {o.action} step"
                else:
                    continue
                owner = "ramp" if s.ramp is not None else f"down for {say_time(s.lasts)}"
                self.error(
                    f"scenario {name}, step {j + 1}: {what} on link {o.a} - {o.b} at {say_time(o.at)}, while the "
                    f"{owner} of step {i + 1} ({say_time(s.at)} to {say_time(end)}) runs there",
                    ("scn", name, j),
                )


def values_hint(word: str, candidates: Any) -> str:
    from qnet_tui.model.validate import did_you_mean  # validate imports this module

    return did_you_mean(word, candidates)


def read(topology: Topology, smap: SourceMap | None = None) -> tuple[dict[str, Scenario], list[Diagnostic]]:
    """The file's scenarios that are right, and a placed problem for each
    mistake (a scenario with one is left out)."""
    if topology.scenarios is None:
        return {}, []
    reader = _Reader(topology, smap)
    found = reader.read(topology.scenarios)
    return found, reader.problems
