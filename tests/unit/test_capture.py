"""A hub's capture is pcapng: frames the hub forwards as they are, frames an
emulated fault drops (an impairment's loss or queue, a pulled cable) with a
comment naming the reason and the link direction. Read back by a small
pcapng reader here and by scapy."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from qnet_tui.lab.capture import Capture
from qnet_tui.lab.linkimpair import set_impairment
from qnet_tui.lab.ports import Hub
from qnet_tui.model.impairment import Impairment
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from tests.unit.test_hub import Pipe, eth
from tests.unit.test_linkimpair import Timers

FRAME = eth(0x88B5, b"qnet" + bytes(60))


@dataclass
class Packet:
    data: bytes
    original: int
    flags: int | None = None
    comments: list[str] = field(default_factory=list)


def read_pcapng(path: Path) -> tuple[int, list[Packet]]:
    """(the interface's link type, the enhanced packet blocks), checking each block's framing."""
    raw = path.read_bytes()
    pos, linktype, packets = 0, None, []
    while pos < len(raw):
        kind, length = struct.unpack_from("<II", raw, pos)
        assert length % 4 == 0 and length >= 12, (kind, length)
        assert struct.unpack_from("<I", raw, pos + length - 4)[0] == length  # the trailing length
        body = raw[pos + 8 : pos + length - 4]
        if pos == 0:
            assert kind == 0x0A0D0D0A and struct.unpack_from("<IHH", body) == (0x1A2B3C4D, 1, 0)
        elif kind == 1:
            linktype = struct.unpack_from("<H", body)[0]
        elif kind == 6:
            _, _, _, captured, original = struct.unpack_from("<IIIII", body)
            packet = Packet(body[20 : 20 + captured], original)
            opt = 20 + captured + (-captured % 4)
            while opt < len(body):
                code, size = struct.unpack_from("<HH", body, opt)
                value = body[opt + 4 : opt + 4 + size]
                if code == 0:
                    break
                if code == 1:
                    packet.comments.append(value.decode())
                elif code == 2:
                    packet.flags = struct.unpack("<I", value)[0]
                opt += 4 + size + (-size % 4)
            packets.append(packet)
        pos += length
    assert pos == len(raw)
    return linktype, packets


@pytest.fixture
def lab(tmp_path):
    t = Topology()
    t.add(Node("hub1", Kind.HUB, {"vlan": 1}))
    for name in ("vm1", "vm2", "vm3"):
        t.add(Node(name, Kind.GUEST_NIC))
    t.links = [("hub1", "vm1"), ("hub1", "vm2"), ("hub1", "vm3")]
    hub = Hub("hub1", 1)
    pipes = {name: Pipe(name) for name in ("vm1", "vm2", "vm3")}
    for p in pipes.values():
        hub.attach(p.port)
    hub.capture = Capture(tmp_path / "hub1.pcap")
    return SimpleNamespace(topology=t, ports={n: p.port for n, p in pipes.items()}, loop=Timers(), hub=hub, pipes=pipes)


def test_a_capture_is_pcapng_with_every_forwarded_frame_uncommented(lab, tmp_path):
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 3)
    lab.hub.capture.close()
    linktype, packets = read_pcapng(tmp_path / "hub1.pcap")  # the name the user gave, .pcap or not
    assert linktype == 1
    assert [(p.data, p.original, p.comments) for p in packets] == [(FRAME, len(FRAME), [])] * 3
    assert lab.hub.capture.stats()["bytes"] == (tmp_path / "hub1.pcap").stat().st_size


def test_frames_an_impairment_drops_are_written_with_reason_and_direction(lab, tmp_path):
    set_impairment(lab, "hub1", "vm2", Impairment.parse("loss=100%"))  # out of the hub to vm2
    set_impairment(lab, "vm3", "hub1", Impairment.parse("loss=100%"))  # from vm3 into the hub
    lab.hub.forward(lab.ports["vm1"], [FRAME])
    lab.hub.forward(lab.ports["vm3"], [FRAME])  # lost on the way in: the hub never sees it
    lab.hub.capture.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [(p.comments, p.flags) for p in packets] == [
        ([], None),  # vm1's frame as the hub floods it ...
        (["qnet-tui: dropped (impair-loss) on hub1 -> vm2"], 2),  # ... and lost towards vm2 (outbound)
        (["qnet-tui: dropped (impair-loss) on vm3 -> hub1"], 1),  # inbound
    ]
    assert all(p.data == FRAME for p in packets)
    assert lab.pipes["vm3"].frames() == [FRAME]  # vm3 got vm1's frame: only its way in is lossy
    assert lab.hub.capture.drops == 2


def test_a_full_queue_is_its_own_reason(lab, tmp_path):
    set_impairment(lab, "hub1", "vm2", Impairment.parse("delay=1s limit=1"))
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 2)  # the second finds the queue full
    lab.hub.capture.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [c for p in packets for c in p.comments] == ["qnet-tui: dropped (impair-queue) on hub1 -> vm2"]


def test_frames_a_pulled_cable_drops_are_written_each_way(lab, tmp_path):
    hub, ports = lab.hub, lab.ports
    hub.set_down(ports["vm2"], down_in=True, down_out=True)
    hub.forward(ports["vm1"], [FRAME])
    hub.forward(ports["vm2"], [FRAME, FRAME])
    hub.capture.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [(p.comments, p.flags) for p in packets] == [
        ([], None),
        (["qnet-tui: dropped (link-down) on hub1 -> vm2"], 2),
        (["qnet-tui: dropped (link-down) on vm2 -> hub1"], 1),
        (["qnet-tui: dropped (link-down) on vm2 -> hub1"], 1),
    ]
    assert ports["vm2"].drop_link == 3  # the counters as before


def test_a_pair_names_its_other_end(tmp_path):
    pair = Hub("vm1-tap0", None)
    pipes = [Pipe("vm1"), Pipe("tap0")]
    for p in pipes:
        pair.attach(p.port)
    pair.capture = Capture(tmp_path / "pair.pcapng")
    pair.set_down(pipes[1].port, down_in=False, down_out=True)
    pair.forward(pipes[0].port, [FRAME])
    pair.capture.close()
    _, packets = read_pcapng(tmp_path / "pair.pcapng")
    assert packets[1].comments == ["qnet-tui: dropped (link-down) on vm1 -> tap0"]


def test_scapy_reads_the_capture_and_its_comments(lab, tmp_path):
    from scapy.utils import PcapNgReader

    set_impairment(lab, "hub1", "vm2", Impairment.parse("loss=100%"))
    lab.hub.forward(lab.ports["vm1"], [FRAME])
    lab.hub.capture.close()
    with PcapNgReader(str(tmp_path / "hub1.pcap")) as reader:
        packets = list(reader)
    assert [bytes(p) for p in packets] == [FRAME, FRAME]
    assert [p.comments for p in packets] == [None, [b"qnet-tui: dropped (impair-loss) on hub1 -> vm2"]]
    assert packets[1].direction == 2  # outbound, from epb_flags


def test_every_frame_length_is_padded_to_a_block_boundary(tmp_path):
    capture = Capture(tmp_path / "x.pcapng")
    frames = [eth(0x88B5, bytes(n)) for n in range(46, 50)]  # lengths 60-63: each remainder mod 4
    for frame in frames:
        capture.write(frame)
    capture.dropped(frames[1], "impair-loss", "hub1 -> vm2")
    capture.close()
    _, packets = read_pcapng(tmp_path / "x.pcapng")  # checks each block's framing
    assert [p.data for p in packets] == [*frames, frames[1]]
    assert capture.stats()["bytes"] == (tmp_path / "x.pcapng").stat().st_size
