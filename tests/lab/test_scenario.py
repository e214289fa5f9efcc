"""Scenarios played by a running lab, with real ping: a pulled cable for its
window, an impairment that changes the RTT, and everything put back at the
end or on stop."""

from __future__ import annotations

import itertools
import re
import threading
import time

from qnet_tui import protocol
from qnet_tui.lab.ask import ask

from .conftest import SAMPLES, wait_for
from .test_forwarding import ping
from .test_links import carrier, port_stats

SCENARIOS = """
scenarios:
  pull:
    - at: 1s
      link: [hub1, vm2]
      down: 2s
    - at: 4s
      link: [hub1, vm2]
      impair: delay=100ms
      direction: hub1-vm2
    - {at: 6s, end: true}
  stuck:
    - at: 0.5s
      link: [vm2, hub1]
      down: true
    - at: 0.5s
      link: [hub1, vm1]
      impair: delay=150ms
    - {at: 10m, end: true}
  ramp:
    - at: 0.5s
      link: [hub1, vm2]
      ramp: {from: none, to: delay=80ms, over: 3s, step: 1s}
      direction: hub1-vm2
    - {at: 5s, end: true}
"""
_REPLY = re.compile(r"icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms")


class Pinger:
    """A ping that runs on, one echo each 0.1 s, its replies collected as they come."""

    def __init__(self, lab, node: str, address: str) -> None:
        self.proc = lab.spawn(node, "ping", "-n", "-i", "0.1", "-W", "1", address)
        self.replies: list[tuple[int, float]] = []  # (icmp_seq, rtt in ms), in arrival order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            m = _REPLY.search(line)
            if m:
                self.replies.append((int(m[1]), float(m[2])))

    def more(self, n: int, what: str) -> None:
        """Wait for n more replies."""
        have = len(self.replies)
        wait_for(lambda: len(self.replies) >= have + n, 20, what)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def status(lab) -> dict | None:
    return lab.latest(after=time.time())["scenario"]


def test_a_scenario_pulls_a_cable_for_its_window_impairs_and_puts_all_back(make_lab):
    lab = make_lab("two-vlans.yaml", text=(SAMPLES / "two-vlans.yaml").read_text() + SCENARIOS)
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0  # ARP settled
    pinger = Pinger(lab, "vm1", "10.0.0.2")
    try:
        pinger.more(5, "replies before the scenario")
        started = ask(lab.name, protocol.Scenario("pull"), protocol.ScenarioState)
        assert (started.name, started.state, started.step, started.steps) == ("pull", "running", 0, 3)
        assert started.duration == 6.0
        wait_for(lambda: not carrier(lab, "vm2"), 5, "step 1 to pull vm2's cable")
        playing = status(lab)
        assert playing["step"] == 1 and playing["doing"] == "link hub1 - vm2 down for 2s"
        wait_for(lambda: carrier(lab, "vm2"), 5, "vm2's cable back after 2 s")
        wait_for(lambda: (status(lab) or {}).get("step") == 2, 10, "step 2, the impairment")
        pinger.more(5, "replies through the delayed link")
        wait_for(lambda: status(lab) is None, 10, "the scenario to end")
        pinger.more(10, "replies after the end")
    finally:
        pinger.stop()

    seqs = [seq for seq, _ in pinger.replies]
    gaps = [(b - a - 1) for a, b in itertools.pairwise(seqs) if b - a > 1]
    # The cable was out 2 s: about 20 echoes at 0.1 s had no answer, in one run.
    assert max(gaps) >= 12, gaps
    assert max(gaps) <= 30, gaps
    assert sum(g for g in gaps if g < 12) <= 5, gaps  # nothing else of note went missing
    rtts = [rtt for _, rtt in pinger.replies]
    slow = [i for i, rtt in enumerate(rtts) if rtt >= 100]
    assert len(slow) >= 5, rtts  # hub1 -> vm2 delayed 100 ms: each echo's way there
    assert all(rtt < 50 for rtt in rtts[-8:]), rtts  # after the end, fast again (one may have been on its way)
    assert all(rtt < 50 for rtt in rtts[:5]), rtts

    vm2 = port_stats(lab, "1", "vm2")
    assert vm2["drop_reasons"]["link-down"] >= 10  # vm1's echoes met the pulled cable
    assert lab.latest(after=time.time())["links"] == []
    said = "\n".join(lab.errors)
    assert "scenario pull: step 1 at 1s: link hub1 - vm2 down for 2s" in said
    assert "scenario pull: link hub1 - vm2 up again after 2s" in said
    assert "scenario pull: step 2 at 4s: link hub1 - vm2 (hub1 -> vm2 only) impair delay=100ms" in said
    assert "scenario pull: ended; its links are as the file has them again" in said
    assert lab.stop() == 0


def test_stopping_a_scenario_puts_back_the_files_links_and_impairments(make_lab):
    text = (SAMPLES / "two-vlans.yaml").read_text().replace("  - [hub1, vm1]", "  - [hub1, vm1, {impair: delay=20ms}]")
    lab = make_lab("two-vlans.yaml", "--scenario", "stuck", text=text + SCENARIOS)
    wait_for(lambda: (status(lab) or {}).get("step") == 2, 15, "both steps of stuck")
    assert not carrier(lab, "vm2")
    assert lab.latest(after=time.time())["links"] == [
        {"a": "hub1", "b": "vm2", "a_b": False, "b_a": False}
    ]  # the file's order
    assert ping(lab, "vm1", "10.0.0.2", count=2).returncode != 0

    stopped = ask(lab.name, protocol.Scenario(None), protocol.ScenarioState)
    assert (stopped.name, stopped.state, stopped.step) == ("stuck", "stopped", 2)
    wait_for(lambda: carrier(lab, "vm2"), 5, "vm2's cable back")
    assert lab.latest(after=time.time())["links"] == []
    result = ping(lab, "vm1", "10.0.0.2", count=5)
    assert result.returncode == 0, result.stdout
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", result.stdout)]
    # The file's 20 ms each way on vm1's link again, not the scenario's 150 ms, nor none.
    assert all(38 <= rtt < 150 for rtt in rtts), rtts
    assert status(lab) is None
    assert "scenario stuck: stopped; its links are as the file has them again" in "\n".join(lab.errors)
    assert lab.stop() == 0


def test_a_ramp_raises_the_rtt_step_by_step(make_lab):
    lab = make_lab("two-vlans.yaml", text=(SAMPLES / "two-vlans.yaml").read_text() + SCENARIOS)
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0
    pinger = Pinger(lab, "vm1", "10.0.0.2")
    try:
        pinger.more(3, "replies before the ramp")
        ask(lab.name, protocol.Scenario("ramp"), protocol.ScenarioState)
        wait_for(lambda: status(lab) is None, 15, "the ramp scenario to end")
        pinger.more(5, "replies after the end")
    finally:
        pinger.stop()
    rtts = [rtt for _, rtt in pinger.replies]
    # 0, 26.7, 53.3 and 80 ms on the way to vm2: each level met by some echoes, in that order.
    levels = [next((i for i, rtt in enumerate(rtts) if low <= rtt < low + 20), None) for low in (24, 51, 78)]
    assert None not in levels and levels == sorted(levels), rtts
    assert all(rtt < 20 for rtt in rtts[:3]) and all(rtt < 20 for rtt in rtts[-3:]), rtts
    assert "scenario ramp: link hub1 - vm2 ramp: delay=80ms (ramp done)" in "\n".join(lab.errors)
    assert lab.stop() == 0


def test_a_lab_refuses_a_scenario_its_file_has_not(make_lab, runtime):
    lab = make_lab("two-vlans.yaml", "--scenario", "nope", wait=False, text=(SAMPLES / "two-vlans.yaml").read_text())
    assert lab.proc.wait(30) == 1
    assert any("no scenario 'nope' in" in line and "its scenarios: none" in line for line in lab.errors), lab.errors
