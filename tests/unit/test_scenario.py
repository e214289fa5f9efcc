"""Scenarios in a topology file: read, checked with their place, kept on save."""

from __future__ import annotations

import pytest

from qnet_tui.model import scenario
from qnet_tui.model.diagnostics import Severity
from qnet_tui.model.impairment import Impairment
from qnet_tui.model.yamlio import load_text

HEAD = """\
version: 1
name: scn
nodes:
  eth0:
    kind: host_nic
  br0:
    kind: bridge
  tap0:
    kind: tap
  hub0:
    kind: hub
    vlan: 0
  vm1:
    kind: guest_nic
    mac: 52:54:00:12:34:01
    ipv4: 10.0.0.11/24
  vm2:
    kind: guest_nic
    mac: 52:54:00:12:34:02
    ipv4: 10.0.0.12/24
links:
  - [eth0, br0]
  - [br0, tap0]
  - [tap0, hub0]
  - [hub0, vm1]
  - [hub0, vm2]
"""
GOOD = (
    HEAD
    + """\
scenarios:
  # pull, slow down, then lose more and more
  flaky:
    - at: 1s
      link: [hub0, vm1]
      down: 2s          # pulled for two seconds
    - at: 4s
      link: [vm2, hub0]
      impair: delay=50ms
      direction: vm2-hub0
    - at: 5s
      link: [vm2, hub0]
      ramp: {from: none, to: 'loss=20%', over: 10s, step: 2s}
    - {at: 20s, end: true}
  short: [{at: 500ms, link: [hub0, vm2], down: true}, {at: 1.5, link: [hub0, vm2], up: true}]
"""
)


def errors(text: str) -> list[tuple[int, int, str]]:
    return [(d.line, d.col, d.message) for d in load_text(text).diagnostics() if d.is_error]


def scenarios(text: str) -> dict[str, scenario.Scenario]:
    doc = load_text(text)
    return scenario.read(doc.topology, doc.source)[0]


def test_a_file_with_scenarios_is_valid_and_reads_each_step():
    assert errors(GOOD) == []
    found = scenarios(GOOD)
    assert list(found) == ["flaky", "short"]
    flaky = found["flaky"]
    assert [(s.at, s.action, s.a, s.b, s.direction) for s in flaky.steps] == [
        (1.0, "down", "hub0", "vm1", "both"),
        (4.0, "impair", "vm2", "hub0", "a-b"),
        (5.0, "ramp", "vm2", "hub0", "both"),
        (20.0, "end", "", "", "both"),
    ]
    assert flaky.steps[0].down_for == 2.0
    assert flaky.steps[1].spec == Impairment.parse("delay=50ms")
    assert flaky.steps[1].ways == (("vm2", "hub0"),)
    assert [s.line for s in flaky.steps] == [30, 33, 37, 40]
    assert flaky.duration == 20.0
    short = found["short"]
    assert [(s.at, s.action, s.down_for) for s in short.steps] == [(0.5, "down", None), (1.5, "up", None)]
    assert short.duration == 1.5
    assert flaky.steps[0].describe() == "link hub0 - vm1 down for 2s"
    assert flaky.steps[1].describe() == "link vm2 - hub0 (vm2 -> hub0 only) impair delay=50ms"


def test_a_ramp_goes_linearly_from_one_spec_to_the_other():
    ramp = scenarios(GOOD)["flaky"].steps[2].ramp
    assert ramp.ticks == 5
    assert [ramp.at(k).format() for k in range(6)] == ["none", "loss=4%", "loss=8%", "loss=12%", "loss=16%", "loss=20%"]
    odd = scenario.Ramp(Impairment.parse("delay=10ms limit=10"), Impairment.parse("delay=20ms"), 3.0, 2.0)
    assert odd.ticks == 2  # the last change lands on `over`, not past it
    assert odd.at(1) == Impairment.parse("delay=16.666667ms limit=670")
    assert odd.at(2) == Impairment.parse("delay=20ms")


def test_a_file_without_scenarios_has_none_and_saves_without_them():
    doc = load_text(HEAD)
    assert doc.topology.scenarios is None
    assert doc.diagnostics() == []
    assert doc.dumps() == HEAD


def test_scenarios_survive_a_save_with_their_comments_and_form():
    doc = load_text(GOOD)
    doc.topology.nodes["vm1"].attrs["ipv4"] = "10.0.0.21/24"
    text = doc.dumps()
    assert text == GOOD.replace("10.0.0.11/24", "10.0.0.21/24")


def test_changed_scenarios_are_saved_and_read_back():
    doc = load_text(GOOD)
    doc.topology.scenarios["short"][1]["at"] = "3s"
    del doc.topology.scenarios["flaky"]
    text = doc.dumps()
    assert "flaky" not in text and "down: 2s" not in text
    assert "  short: [{at: 500ms, link: [hub0, vm2], down: true}, {at: 3s, link: [hub0, vm2], up: true}]\n" in text
    again = scenarios(text)
    assert [s.at for s in again["short"].steps] == [0.5, 3.0]
    doc.topology.scenarios = None
    assert "scenarios" not in doc.dumps()


def with_steps(steps: str) -> str:
    return HEAD + "scenarios:\n  s:\n" + steps


@pytest.mark.parametrize(
    ("steps", "line", "col", "message"),
    [
        ("    - {at: 1x, link: [hub0, vm1], down: 2s}\n", 29, 12, "step 1: at: '1x': expected a time such as 30s"),
        ("    - {at: -1, link: [hub0, vm1], down: 2s}\n", 29, 12, "a time is a finite number of seconds, zero or more"),
        ("    - {at: 9d, link: [hub0, vm1], down: 2s}\n", 29, 12, "'9d': expected a time"),
        ("    - {link: [hub0, vm1], down: 2s}\n", 29, 7, "step 1: missing 'at'"),
        ("    - {at: 1s, down: 2s}\n", 29, 7, "step 1: missing 'link'"),
        ("    - {at: 1s, link: [hub0, vm3], down: 2s}\n", 29, 29, "unknown node 'vm3' (did you mean 'vm2'?)"),
        ("    - {at: 1s, link: [vm1, vm2], down: 2s}\n", 29, 22, "no link vm1 - vm2 in this file; vm1 links to hub0"),
        ("    - {at: 1s, link: hub0, down: 2s}\n", 29, 22, "link is a pair of node ids"),
        ("    - {at: 1s, link: [eth0, br0], down: 2s}\n", 29, 22, "the lab's worker does not carry link eth0 - br0"),
        ("    - {at: 1s, link: [br0, tap0], down: 2s}\n", 29, 22, "links to a hub, and between a guest NIC"),
        ("    - {at: 1s, link: [eth0, br0], impair: loss=1%}\n", 29, 22, "links with a hub, tap, guest NIC or socket"),
        (
            "    - {at: 1s, link: [hub0, vm1]}\n",
            29,
            7,
            "a step does one thing, down, up, impair, ramp or end; it has none",
        ),
        ("    - {at: 1s, link: [hub0, vm1], down: 1s, up: true}\n", 29, 7, "it has both down and up"),
        ("    - {at: 1s, link: [hub0, vm1], down: 0s}\n", 29, 41, "down: 0s would put the link back at once"),
        ("    - {at: 1s, link: [hub0, vm1], down: false}\n", 29, 41, "to put a link back, say up: true"),
        ("    - {at: 1s, link: [hub0, vm1], down: soon}\n", 29, 41, "down: true (until an up step) or how long"),
        ("    - {at: 1s, link: [hub0, vm1], up: 3}\n", 29, 39, "up: true (the link comes back), not 3"),
        ("    - {at: 1s, link: [hub0, vm1], impair: delay=5x}\n", 29, 43, "delay=5x: expected a time"),
        ("    - {at: 1s, link: [hub0, vm1], impair: lose=1%}\n", 29, 43, "impair: 'lose': unknown impairment"),
        ("    - {at: 1s, link: [hub0, vm1], impair: 5}\n", 29, 43, "impair: the text form, as in delay=50ms"),
        ("    - {at: 1s, link: [hub0, vm1], down: 1s, direction: up}\n", 29, 56, "direction is 'up'; give hub0-vm1"),
        ("    - {at: 1s, link: [hub0, vm1], up: true, dwn: 1s}\n", 29, 45, "unknown key 'dwn' (did you mean 'down'?)"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: loss=1%}\n", 29, 41, "ramp is a mapping"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%}}\n", 29, 41, "ramp: missing 'over'"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 2s, stp: 1s}}\n", 29, 65, "unknown key 'stp'"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 0s}}\n", 29, 61, "over must be above zero"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 2s, step: 3s}}\n", 29, 71, "step 3s must be"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {from: x, to: loss=1%, over: 2s}}\n", 29, 48, "ramp: from: 'x'"),
        ("    - {at: 1s, link: [hub0, vm1], ramp: {to: 'jitter=1ms', over: 2s}}\n", 29, 46, "jitter needs a delay"),
        ("    - {at: 1s, link: [hub0, vm1], end: true}\n", 29, 16, "an end step has no link"),
        ("    - {at: 1s, end: yes}\n", 29, 21, "end: true (the scenario ends here), not 'yes'"),
        (
            "    - {at: 1s, end: true}\n    - {at: 2s, link: [hub0, vm1], up: true}\n",
            29,
            7,
            "'end' is the last step",
        ),
        (
            "    - {at: 2s, link: [hub0, vm1], up: true}\n    - {at: 1s, link: [hub0, vm1], down: true}\n",
            30,
            12,
            "step 2: at 1s comes before the step above it (2s)",
        ),
        (
            "    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 10s}}\n"
            "    - {at: 5s, link: [vm1, hub0], ramp: {to: loss=5%, over: 10s}}\n",
            30,
            7,
            "step 2: another ramp on link vm1 - hub0 at 5s, while the ramp of step 1 (1s to 11s) runs there",
        ),
        (
            "    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 10s}, direction: hub0-vm1}\n"
            "    - {at: 5s, link: [hub0, vm1], impair: delay=1ms}\n",
            30,
            7,
            "step 2: an impair step on link hub0 - vm1 at 5s, while the ramp of step 1",
        ),
        (
            "    - {at: 1s, link: [hub0, vm1], down: 5s}\n    - {at: 3s, link: [hub0, vm1], up: true}\n",
            30,
            7,
            "step 2: an up step on link hub0 - vm1 at 3s, while the down for 5s of step 1 (1s to 6s) runs there",
        ),
    ],
)
def test_each_mistake_in_a_step_is_placed(steps, line, col, message):
    found = errors(with_steps(steps))
    assert len(found) == 1, found
    assert found[0][:2] == (line, col), found
    assert message in found[0][2]
    assert found[0][2].startswith("scenario s, step ")


def test_steps_that_do_not_overlap_are_fine():
    text = with_steps(
        "    - {at: 1s, link: [hub0, vm1], ramp: {to: loss=1%, over: 10s}, direction: hub0-vm1}\n"
        "    - {at: 5s, link: [hub0, vm1], impair: delay=1ms, direction: vm1-hub0}\n"  # the other way
        "    - {at: 5s, link: [hub0, vm2], ramp: {to: loss=1%, over: 10s}}\n"  # another link
        "    - {at: 11s, link: [hub0, vm1], impair: none}\n"  # once the ramp is done
        "    - {at: 12s, link: [hub0, vm1], down: 2s}\n"
        "    - {at: 14s, link: [hub0, vm1], down: true}\n"
    )
    assert errors(text) == []


@pytest.mark.parametrize(
    ("tail", "line", "col", "message"),
    [
        ("scenarios: [a, b]\n", 27, 12, "scenarios must be a mapping from a scenario's name"),
        ("scenarios:\n  s: []\n", 28, 6, "scenario s: a list of steps"),
        ("scenarios:\n  s: {at: 1s}\n", 28, 6, "scenario s: a list of steps"),
        ("scenarios:\n  'a b': [{at: 1s, end: true}]\n", 28, 3, "scenario name 'a b': letters, digits"),
        ("scenarios:\n  s: [5]\n", 28, 7, "scenario s, step 1: a mapping with at, link"),
        ("scenario:\n  s: []\n", 27, 1, "unknown top-level key 'scenario' (did you mean 'scenarios'?)"),
    ],
)
def test_the_scenarios_shape_is_checked(tail, line, col, message):
    found = errors(HEAD + tail)
    assert len(found) == 1, found
    assert found[0][:2] == (line, col), found
    assert message in found[0][2]


def test_a_times_forms():
    assert [scenario.seconds(x) for x in ("30s", "500ms", "1.5m", "1h", 2, 0.25, "3")] == [
        30.0,
        0.5,
        90.0,
        3600.0,
        2.0,
        0.25,
        3.0,
    ]
    for bad in (True, "1d", "-1s", float("nan"), None, [1]):
        with pytest.raises(scenario.TimeError):
            scenario.seconds(bad)
    assert [scenario.say_time(x) for x in (0.5, 2.0, 1.25, 0)] == ["500ms", "2s", "1.25s", "0s"]


def test_a_change_the_end_would_undo_at_once_is_warned_of():
    text = with_steps("    - {at: 1s, link: [hub0, vm1], down: 2s}\n    - {at: 3s, link: [hub0, vm2], down: true}\n")
    found = load_text(text).diagnostics()
    assert [(d.severity, d.line, d.col) for d in found] == [(Severity.WARNING, 30, 7)]
    assert "step 2: the scenario ends with this step" in found[0].message
    assert "{at: 33s, end: true}" in found[0].message
    for fine in (
        "    - {at: 3s, link: [hub0, vm2], down: true}\n    - {at: 4s, end: true}\n",
        "    - {at: 3s, link: [hub0, vm2], down: true}\n    - {at: 4s, link: [hub0, vm2], up: true}\n",
        "    - {at: 3s, link: [hub0, vm2], impair: none}\n",
        "    - {at: 1s, link: [hub0, vm1], down: 9s}\n    - {at: 3s, link: [hub0, vm2], impair: delay=1ms}\n",
    ):
        assert load_text(with_steps(fine)).diagnostics() == [], fine


def test_the_samples_scenarios_play_in_under_a_minute():
    from pathlib import Path

    from qnet_tui.model.yamlio import load_file

    doc = load_file(Path(__file__).parents[2] / "sample_topologies" / "flaky-uplink.yaml")
    assert doc.diagnostics() == []
    found = scenario.read(doc.topology, doc.source)[0]
    assert {name: s.duration for name, s in found.items()} == {"flaky-uplink": 45.0, "vm2-cut": 12.0}
    actions = [s.action for s in found["flaky-uplink"].steps]
    assert actions == ["down", "impair", "ramp", "end"]
