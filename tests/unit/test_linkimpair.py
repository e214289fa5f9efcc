"""Impairment hooks at a hub's ports, on pipes and a stand-in timer heap."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from qnet_tui.lab.impair import NONE, Impairment
from qnet_tui.lab.linkimpair import ImpairError, impairment_of, place, set_impairment
from qnet_tui.lab.ports import Hub
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from tests.unit.test_hub import Pipe, eth

FRAME = eth(0x88B5, bytes(100))


class Timers:
    """The Loop's call_at, run by hand."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object]] = []

    def call_at(self, when: float, callback) -> None:
        self.pending.append((when, callback))

    def run(self) -> None:
        pending, self.pending = sorted(self.pending, key=lambda p: p[0]), []
        for _, callback in pending:
            callback()


@pytest.fixture
def lab():
    t = Topology()
    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    t.add(Node("br0", Kind.BRIDGE))
    t.add(Node("eth0", Kind.HOST_NIC))
    for name in ("vm1", "vm2", "tap0"):
        t.add(Node(name, Kind.GUEST_NIC if name.startswith("vm") else Kind.TAP))
    t.links = [("hub0", "vm1"), ("vm2", "hub0"), ("tap0", "hub0"), ("br0", "tap0"), ("eth0", "br0")]
    hub = Hub("hub0", 0)
    pipes = {name: Pipe(name) for name in ("vm1", "vm2", "tap0")}
    for p in pipes.values():
        hub.attach(p.port)
    return SimpleNamespace(topology=t, ports={n: p.port for n, p in pipes.items()}, loop=Timers(), hub=hub, pipes=pipes)


def test_place_finds_the_port_and_side_of_each_direction(lab) -> None:
    ports = lab.ports
    assert place(lab, "hub0", "vm1") == (ports["vm1"], True)
    assert place(lab, "vm1", "hub0") == (ports["vm1"], False)
    assert place(lab, "tap0", "br0") == (ports["tap0"], True)
    assert place(lab, "br0", "tap0") == (ports["tap0"], False)
    with pytest.raises(ImpairError, match="no link between vm1 and vm2"):
        place(lab, "vm1", "vm2")
    with pytest.raises(ImpairError, match="no node 'vm9'"):
        place(lab, "vm9", "hub0")
    with pytest.raises(ImpairError, match="all in the kernel"):
        place(lab, "eth0", "br0")


def test_egress_delay_holds_frames_until_their_timer(lab) -> None:
    set_impairment(lab, "hub0", "vm2", Impairment(delay_ms=50))
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 3)
    assert lab.pipes["vm2"].frames() == []  # held
    assert b"".join(lab.pipes["tap0"].frames()) == FRAME * 3  # another port: at once
    assert len(lab.loop.pending) == 3
    lab.loop.run()
    assert b"".join(lab.pipes["vm2"].frames()) == FRAME * 3
    assert lab.ports["vm2"].tx_frames == 3


def test_egress_loss_is_counted_apart_from_real_drops_and_none_restores(lab) -> None:
    vm2 = lab.ports["vm2"]
    set_impairment(lab, "hub0", "vm2", Impairment(loss_pct=100))
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 4)
    assert lab.pipes["vm2"].frames() == []
    stats = vm2.stats()
    assert stats["drop_reasons"]["impair-loss"] == 4 and stats["drops"] == 0
    assert stats["tx_frames"] == 0 and stats["tx_bytes"] == 0
    set_impairment(lab, "hub0", "vm2", NONE)
    assert impairment_of(lab, "hub0", "vm2") == NONE
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 2)
    assert b"".join(lab.pipes["vm2"].frames()) == FRAME * 2
    assert vm2.tx_frames == 2 and vm2.drop_impair_loss == 4


def test_an_unimpaired_port_is_written_by_the_hub_itself(lab) -> None:
    """No hook, no per-frame cost: the flood list holds the tap's fd, as before."""
    set_impairment(lab, "hub0", "vm2", Impairment(delay_ms=1))
    taps, others = lab.hub._outs_for(lab.ports["vm1"])
    assert [p.name for _, p in taps] == ["tap0"] and [type(o).__name__ for o in others] == ["Egress"]
    set_impairment(lab, "hub0", "vm2", Impairment.parse("none"))
    taps, others = lab.hub._outs_for(lab.ports["vm1"])
    assert [p.name for _, p in taps] == ["vm2", "tap0"] and others == []


def test_ingress_queue_limit_and_duplicates(lab) -> None:
    vm1 = lab.ports["vm1"]
    set_impairment(lab, "vm1", "hub0", Impairment(delay_ms=10, dup_pct=100, limit=4))
    lab.hub.forward(vm1, [FRAME] * 3)  # two are taken (4 copies), the third finds the queue full
    assert lab.hub.frames == 0 and vm1.drop_impair_queue == 1
    lab.loop.run()
    assert lab.hub.frames == 4 and vm1.rx_frames == 4
    assert b"".join(lab.pipes["vm2"].frames()) == FRAME * 4
    assert vm1.stats()["drop_reasons"]["impair-queue"] == 1
