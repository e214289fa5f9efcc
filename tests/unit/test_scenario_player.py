"""The worker's scenario player on a stand-in lab and clock: which link and
impair calls each step makes, and when, and what its end and stop put back."""

from __future__ import annotations

import heapq
import itertools
from types import SimpleNamespace

import pytest

from qnet_tui.lab import links
from qnet_tui.lab import scenario as player_module
from qnet_tui.lab.scenario import Player, ScenarioError
from qnet_tui.model import scenario
from qnet_tui.model.yamlio import load_text
from tests.unit.test_scenario import HEAD

STEPS = """\
scenarios:
  s:
    - {at: 1s, link: [hub0, vm1], down: 2s}
    - {at: 2s, link: [vm2, hub0], impair: delay=50ms, direction: vm2-hub0}
    - {at: 4s, link: [hub0, vm2], ramp: {from: 'loss=10%', to: 'loss=20%', over: 3s, step: 2s}}
    - {at: 5s, link: [hub0, vm1], down: true, direction: vm1-hub0}
    - {at: 10s, end: true}
"""


class Clock:
    """time.monotonic and the Loop's timers, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list = []
        self.seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def call_at(self, when: float, callback) -> None:
        heapq.heappush(self.timers, (when, next(self.seq), callback))

    def advance(self, to: float) -> None:
        while self.timers and self.timers[0][0] <= 100.0 + to:
            when, _, callback = heapq.heappop(self.timers)
            self.now = when
            callback()
        self.now = 100.0 + to


@pytest.fixture
def played(monkeypatch):
    clock = Clock()
    calls: list[tuple] = []
    monkeypatch.setattr(player_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(links, "find", lambda lab, a, b: (a, b))
    monkeypatch.setattr(
        links, "set_state", lambda lab, cable, up, way: calls.append((clock.now - 100, "link", *cable, up, way))
    )
    monkeypatch.setattr(
        player_module,
        "set_impairment",
        lambda lab, a, b, spec: calls.append((clock.now - 100, "impair", a, b, spec.format())),
    )
    doc = load_text(HEAD.replace("  - [hub0, vm2]\n", "  - [hub0, vm2, {impair: {hub0: 'delay=7ms'}}]\n") + STEPS)
    assert [d for d in doc.diagnostics() if d.is_error] == []
    lab = SimpleNamespace(loop=clock, topology=doc.topology)
    said: list[dict] = []
    logged: list[str] = []
    player = Player(lab, scenario.read(doc.topology)[0], lambda level, text: logged.append(text), said.append)
    return SimpleNamespace(player=player, clock=clock, calls=calls, said=said, logged=logged)


def test_each_step_plays_at_its_time_and_the_end_puts_back_the_files_state(played):
    played.player.start("s")
    assert played.said[-1] == {
        "name": "s", "state": "running", "elapsed": 0.0, "duration": 10.0, "step": 0, "steps": 5, "doing": "started",
    }  # fmt: skip
    played.clock.advance(9.9)
    assert played.calls == [
        (1.0, "link", "hub0", "vm1", False, "both"),
        (2.0, "impair", "vm2", "hub0", "delay=50ms"),
        (3.0, "link", "hub0", "vm1", True, "both"),  # down for 2 s
        (4.0, "impair", "hub0", "vm2", "loss=10%"),
        (4.0, "impair", "vm2", "hub0", "loss=10%"),
        (5.0, "link", "hub0", "vm1", False, "b-a"),
        (6.0, "impair", "hub0", "vm2", "loss=16.666667%"),
        (6.0, "impair", "vm2", "hub0", "loss=16.666667%"),
        (7.0, "impair", "hub0", "vm2", "loss=20%"),  # the last change lands on `over`
        (7.0, "impair", "vm2", "hub0", "loss=20%"),
    ]
    status = played.player.status()
    assert (status["elapsed"], status["step"], status["doing"]) == (9.9, 4, "link hub0 - vm2 ramp: loss=20%")
    del played.calls[:]
    played.clock.advance(10.0)
    # Back as the file has it: the cable up, vm2's link as declared (7 ms towards hub0, nothing the other way).
    assert sorted(played.calls) == [
        (10.0, "impair", "hub0", "vm2", "none"),
        (10.0, "impair", "vm2", "hub0", "delay=7ms"),
        (10.0, "link", "hub0", "vm1", True, "both"),
    ]
    assert played.said[-1]["state"] == "ended" and played.player.status() is None
    assert played.logged[-1] == "scenario s: ended; its links are as the file has them again"
    assert "scenario s: step 2 at 2s: link vm2 - hub0 (vm2 -> hub0 only) impair delay=50ms" in played.logged


def test_a_stopped_scenario_plays_no_more_and_puts_back_what_it_changed(played):
    played.player.start("s")
    played.clock.advance(1.5)  # the cable is out
    del played.calls[:]
    assert played.player.stop()
    assert played.calls == [(1.5, "link", "hub0", "vm1", True, "both")]
    assert played.said[-1]["state"] == "stopped"
    played.clock.advance(20)  # its timers are still on the heap: they do nothing now
    assert played.calls == [(1.5, "link", "hub0", "vm1", True, "both")]
    assert not played.player.stop()  # nothing playing


def test_starting_again_stops_the_one_playing_and_an_unknown_name_is_refused(played):
    with pytest.raises(ScenarioError, match="no scenario 'x' in this lab's file; its scenarios: s"):
        played.player.start("x")
    played.player.start("s")
    played.clock.advance(2.5)
    played.player.start("s")
    assert "scenario s: another scenario starts; its links are as the file has them again" in played.logged
    del played.calls[:]
    played.clock.advance(3.0)  # the first run's back-up at 3 s must not come: the new run's step 1 is at 3.5 s
    assert played.calls == []
    played.clock.advance(3.5)
    assert played.calls == [(3.5, "link", "hub0", "vm1", False, "both")]


def test_a_step_the_lab_refuses_is_logged_and_the_rest_plays_on(played, monkeypatch):
    def refuse(lab, a, b):
        raise links.LinkError(f"link: no link {a} - {b}")

    monkeypatch.setattr(links, "find", refuse)
    played.player.start("s")
    played.clock.advance(2.0)
    assert "scenario s: step 1 at 1s: link hub0 - vm1 down for 2s: link: no link hub0 - vm1" in played.logged
    assert played.calls == [(2.0, "impair", "vm2", "hub0", "delay=50ms")]


def test_runs_table_says_the_scenario_playing():
    from qnet_tui.lab.stats import format_table

    snapshot = {"time": 0.0, "vlans": {}, "peers": {}, "scenario": None}
    assert "scenario" not in format_table(snapshot)
    snapshot["scenario"] = {"name": "s", "state": "running", "elapsed": 12.4, "duration": 45.0, "step": 2,
                            "steps": 4, "doing": "link hub0 - vm1 impair delay=50ms"}  # fmt: skip
    assert format_table(snapshot).endswith("\n  scenario s 12/45 s, step 2/4: link hub0 - vm1 impair delay=50ms")
