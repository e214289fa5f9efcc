"""A hub's capture is pcapng: an interface per port, frames the hub forwards
on the port they came in by (inbound), frames an emulated fault drops (an
impairment's loss or queue, a pulled cable) on the port they were going to
or coming from, with a comment naming the reason and the link direction.
Several sinks at once (a file, streams, a ring), each its own section.
Read back by a small pcapng reader here, by scapy and by tshark."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from qnet_tui.lab.capture import Capture, Ring, Stream
from qnet_tui.lab.linkimpair import set_impairment
from qnet_tui.lab.ports import Hub
from qnet_tui.model.impairment import Impairment
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.pcapfilter import compile_filter
from tests.unit.test_hub import Pipe, eth
from tests.unit.test_linkimpair import Timers

FRAME = eth(0x88B5, b"qnet" + bytes(60))


@dataclass
class Packet:
    data: bytes
    original: int
    flags: int | None = None
    comments: list[str] = field(default_factory=list)
    interface: str = ""  # its interface's if_name


def read_pcapng(path: Path | bytes) -> tuple[int, list[Packet]]:
    """(the interfaces' link type, the enhanced packet blocks), checking each block's framing."""
    raw = path if isinstance(path, bytes) else path.read_bytes()
    pos, linktype, packets, names = 0, None, [], []
    while pos < len(raw):
        kind, length = struct.unpack_from("<II", raw, pos)
        assert length % 4 == 0 and length >= 12, (kind, length)
        assert struct.unpack_from("<I", raw, pos + length - 4)[0] == length  # the trailing length
        body = raw[pos + 8 : pos + length - 4]
        if pos == 0:
            assert kind == 0x0A0D0D0A and struct.unpack_from("<IHH", body) == (0x1A2B3C4D, 1, 0)
        elif kind == 1:
            linktype = struct.unpack_from("<H", body)[0]
            names.append(_if_name(body))
        elif kind == 6:
            iface, _, _, captured, original = struct.unpack_from("<IIIII", body)
            packet = Packet(body[20 : 20 + captured], original, interface=names[iface])
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


def _if_name(body: bytes) -> str:
    opt = 8
    while opt < len(body):
        code, size = struct.unpack_from("<HH", body, opt)
        if code == 0:
            break
        if code == 2:
            return body[opt + 4 : opt + 4 + size].decode()
        opt += 4 + size + (-size % 4)
    return ""


def start(hub: Hub, path: Path, **kwargs) -> Capture:
    capture = Capture(path, **kwargs)
    hub.add_capture(capture)
    if hub.capture.file is None:  # the first is the app's file capture, as the worker has it
        hub.capture.file = capture
    return capture


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
    start(hub, tmp_path / "hub1.pcap")
    return SimpleNamespace(topology=t, ports={n: p.port for n, p in pipes.items()}, loop=Timers(), hub=hub, pipes=pipes)


def test_a_capture_is_pcapng_with_every_forwarded_frame_inbound_on_its_port(lab, tmp_path):
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 3)
    lab.hub.forward(lab.ports["vm3"], [FRAME])
    lab.hub.capture.file.close()
    linktype, packets = read_pcapng(tmp_path / "hub1.pcap")  # the name the user gave, .pcap or not
    assert linktype == 1
    assert [(p.data, p.original, p.comments, p.flags, p.interface) for p in packets] == [
        *[(FRAME, len(FRAME), [], 1, "vm1")] * 3,
        (FRAME, len(FRAME), [], 1, "vm3"),
    ]
    assert lab.hub.capture.file.stats()["bytes"] == (tmp_path / "hub1.pcap").stat().st_size


def test_frames_an_impairment_drops_are_written_with_reason_and_direction(lab, tmp_path):
    set_impairment(lab, "hub1", "vm2", Impairment.parse("loss=100%"))  # out of the hub to vm2
    set_impairment(lab, "vm3", "hub1", Impairment.parse("loss=100%"))  # from vm3 into the hub
    lab.hub.forward(lab.ports["vm1"], [FRAME])
    lab.hub.forward(lab.ports["vm3"], [FRAME])  # lost on the way in: the hub never sees it
    capture = lab.hub.capture.file
    capture.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [(p.comments, p.flags, p.interface) for p in packets] == [
        ([], 1, "vm1"),  # vm1's frame as the hub takes it in ...
        (["qnet-tui: dropped (impair-loss) on hub1 -> vm2"], 2, "vm2"),  # ... and lost towards vm2 (outbound)
        (["qnet-tui: dropped (impair-loss) on vm3 -> hub1"], 1, "vm3"),  # inbound
    ]
    assert all(p.data == FRAME for p in packets)
    assert lab.pipes["vm3"].frames() == [FRAME]  # vm3 got vm1's frame: only its way in is lossy
    assert capture.drops == 2


def test_a_full_queue_is_its_own_reason(lab, tmp_path):
    set_impairment(lab, "hub1", "vm2", Impairment.parse("delay=1s limit=1"))
    lab.hub.forward(lab.ports["vm1"], [FRAME] * 2)  # the second finds the queue full
    lab.hub.capture.file.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [c for p in packets for c in p.comments] == ["qnet-tui: dropped (impair-queue) on hub1 -> vm2"]


def test_frames_a_pulled_cable_drops_are_written_each_way(lab, tmp_path):
    hub, ports = lab.hub, lab.ports
    hub.set_down(ports["vm2"], down_in=True, down_out=True)
    hub.forward(ports["vm1"], [FRAME])
    hub.forward(ports["vm2"], [FRAME, FRAME])
    hub.capture.file.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [(p.comments, p.flags, p.interface) for p in packets] == [
        ([], 1, "vm1"),
        (["qnet-tui: dropped (link-down) on hub1 -> vm2"], 2, "vm2"),
        (["qnet-tui: dropped (link-down) on vm2 -> hub1"], 1, "vm2"),
        (["qnet-tui: dropped (link-down) on vm2 -> hub1"], 1, "vm2"),
    ]
    assert ports["vm2"].drop_link == 3  # the counters as before


def test_a_pair_names_its_other_end(tmp_path):
    pair = Hub("vm1-tap0", None)
    pipes = [Pipe("vm1"), Pipe("tap0")]
    for p in pipes:
        pair.attach(p.port)
    capture = start(pair, tmp_path / "pair.pcapng")
    pair.set_down(pipes[1].port, down_in=False, down_out=True)
    pair.forward(pipes[0].port, [FRAME])
    capture.close()
    _, packets = read_pcapng(tmp_path / "pair.pcapng")
    assert packets[1].comments == ["qnet-tui: dropped (link-down) on vm1 -> tap0"]


def test_scapy_reads_the_capture_and_its_comments(lab, tmp_path):
    from scapy.utils import PcapNgReader

    set_impairment(lab, "hub1", "vm2", Impairment.parse("loss=100%"))
    lab.hub.forward(lab.ports["vm1"], [FRAME])
    lab.hub.capture.file.close()
    with PcapNgReader(str(tmp_path / "hub1.pcap")) as reader:
        packets = list(reader)
    assert [bytes(p) for p in packets] == [FRAME, FRAME]
    assert [p.comments for p in packets] == [None, [b"qnet-tui: dropped (impair-loss) on hub1 -> vm2"]]
    assert [p.direction for p in packets] == [1, 2]  # inbound, outbound: from epb_flags
    assert [p.sniffed_on for p in packets] == ["vm1", "vm2"]  # the interfaces' if_name


def test_every_frame_length_is_padded_to_a_block_boundary(tmp_path):
    hub = Hub("hub1", 1)
    capture = start(hub, tmp_path / "x.pcapng")
    frames = [eth(0x88B5, bytes(n)) for n in range(46, 50)]  # lengths 60-63: each remainder mod 4
    for frame in frames:
        hub.capture.write("vm1", frame)
    hub.capture.dropped("vm2", frames[1], "impair-loss", "hub1 -> vm2")
    capture.close()
    _, packets = read_pcapng(tmp_path / "x.pcapng")  # checks each block's framing
    assert [p.data for p in packets] == [*frames, frames[1]]
    assert capture.stats()["bytes"] == (tmp_path / "x.pcapng").stat().st_size


# -- one interface per port, several sinks, filters, streams, rings -----------------


def test_a_port_added_while_capturing_gets_its_interface_when_first_used(lab, tmp_path):
    late = Pipe("vm4")
    lab.hub.attach(late.port)
    lab.hub.forward(late.port, [FRAME])
    lab.hub.forward(lab.ports["vm2"], [FRAME])
    lab.hub.capture.file.close()
    _, packets = read_pcapng(tmp_path / "hub1.pcap")
    assert [p.interface for p in packets] == ["vm4", "vm2"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (Debian: tshark)")
def test_tshark_reads_the_interfaces_directions_and_comments(lab, tmp_path):
    set_impairment(lab, "hub1", "vm2", Impairment.parse("loss=100%"))
    lab.hub.forward(lab.ports["vm1"], [FRAME])
    lab.hub.forward(lab.ports["vm3"], [FRAME])
    lab.hub.capture.file.close()
    fields = ["frame.interface_name", "frame.interface_description", "frame.packet_flags_direction", "frame.comment"]
    out = subprocess.run(
        ["tshark", "-r", str(tmp_path / "hub1.pcap"), "-T", "fields", *(x for f in fields for x in ("-e", f))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    lost = "qnet-tui: dropped (impair-loss) on hub1 -> vm2"
    assert rows == [  # each frame in, then lost on its way out to vm2
        ["vm1", "hub1, VLAN 1", "0x00000001", ""],
        ["vm2", "hub1, VLAN 1", "0x00000002", lost],
        ["vm3", "hub1, VLAN 1", "0x00000001", ""],
        ["vm2", "hub1, VLAN 1", "0x00000002", lost],
    ]


def test_several_sinks_at_once_each_a_whole_section_and_a_filter_each(lab, tmp_path):
    icmp = eth(0x0800, bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1]) + bytes(10) + bytes(8))
    udp = eth(0x0800, bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17]) + bytes(10) + bytes(8))
    only_icmp = start(lab.hub, tmp_path / "icmp.pcapng", filter=compile_filter("icmp"))
    lab.hub.forward(lab.ports["vm1"], [icmp, udp, FRAME])
    for sink in lab.hub.capture.sinks:
        sink.close()
    everything = read_pcapng(tmp_path / "hub1.pcap")[1]
    assert [p.data for p in everything] == [icmp, udp, FRAME]
    assert [p.data for p in read_pcapng(tmp_path / "icmp.pcapng")[1]] == [icmp]
    lab.hub.remove_capture(only_icmp)
    lab.hub.remove_capture(lab.hub.capture.file)
    assert lab.hub.capture is None  # nothing captures: the forwarding path's one test says so


def test_a_stream_that_finds_its_pipe_full_misses_frames_and_says_how_many():
    r, w = os.pipe2(os.O_CLOEXEC)
    hub = Hub("hub1", 1)
    sender = Pipe("vm1")
    hub.attach(sender.port)  # alone: the hub floods to no one, the stream is all there is
    stream = Stream(w)
    hub.add_capture(stream)
    big = eth(0x88B5, bytes(1400))
    hub.forward(sender.port, [big] * 200)  # ~290 KB into a 64 KiB pipe nobody reads
    assert stream.missed_total > 0 and stream.frames + stream.missed_total == 200
    got = bytearray()
    os.set_blocking(r, False)
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(r, 1 << 20):
            got += chunk
    hub.forward(sender.port, [FRAME])  # the reader caught up: the next frame says what it missed
    stream.close()
    got += os.read(r, 1 << 20)
    os.close(r)
    packets = read_pcapng(bytes(got))[1]  # every block whole, though the pipe filled mid-block
    assert len(packets) == stream.frames
    assert packets[-1].comments == [
        f"qnet-tui: the reader missed {stream.missed_total} frames before this one ({stream.missed_total} in all): "
        "it read too slowly"
    ]


def test_a_stream_whose_reader_went_ends_with_a_reason():
    r, w = os.pipe2(os.O_CLOEXEC)
    os.close(r)
    stream = Stream(w)
    stream.start("hub1, VLAN 1", ["vm1"])
    stream.packet("vm1", 0, FRAME, b"")
    assert stream.error == "the reader went away"
    stream.close()


def test_a_ring_keeps_its_window_and_writes_a_whole_capture(tmp_path):
    ring = Ring(2.0)
    ring.start("hub1, VLAN 1", ["vm1", "vm2"])
    now = time.time_ns() // 1000
    old, new = eth(0x88B5, b"old" + bytes(50)), eth(0x88B5, b"new" + bytes(50))
    ring.packet("vm1", now - 5_000_000, old, b"")  # 5 s ago: past the window
    ring.packet("vm2", now, new, b"")
    assert ring.save(tmp_path / "ring.pcapng")[0] == 1
    assert [(p.data, p.interface) for p in read_pcapng(tmp_path / "ring.pcapng")[1]] == [(new, "vm2")]
    with pytest.raises(FileExistsError):
        ring.save(tmp_path / "ring.pcapng")


def test_a_ring_is_bounded_by_bytes_too(tmp_path):
    ring = Ring(60.0, max_bytes=10_000)
    ring.start("hub1, VLAN 1", ["vm1"])
    now = time.time_ns() // 1000
    for i in range(100):
        ring.packet("vm1", now + i, eth(0x88B5, bytes(986)), b"")  # 1000-byte frames
    assert ring.kept_bytes <= 10_000 and len(ring.kept) == 9
