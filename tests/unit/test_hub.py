"""The hub's forwarding semantics and counters, on pipes instead of taps."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from qnet_tui.lab.ports import SAMPLES_PER_TICK, Hub, TapPort
from qnet_tui.lab.tap import VNET_HDR_LEN

MAC_A, MAC_B = bytes.fromhex("525400000001"), bytes.fromhex("525400000002")


def eth(ethertype: int, payload: bytes = b"", src: bytes = MAC_A, dst: bytes = b"\xff" * 6) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + payload


def ipv4(proto: int) -> bytes:
    return eth(0x0800, bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto]) + bytes(30))


class Pipe:
    """A port whose frames land in a pipe (a byte stream: frames run together)."""

    def __init__(self, name: str, vnet: bool = False) -> None:
        self.r, w = os.pipe()
        os.set_blocking(self.r, False)
        self.port = TapPort(name, w, vnet)

    def frames(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(os.read(self.r, 1 << 20))
            except BlockingIOError:
                return out


@pytest.fixture
def hub():
    h = Hub("hub0", 0)
    pipes = [Pipe(f"p{i}") for i in range(4)]
    for p in pipes:
        h.attach(p.port)
    return h, pipes


def test_floods_to_every_other_port_never_back(hub):
    h, pipes = hub
    frame = eth(0x88B5, b"hello" + bytes(50))
    h.forward(pipes[0].port, [frame] * 5)
    assert pipes[0].frames() == []
    for p in pipes[1:]:
        got = p.frames()
        assert b"".join(got) == frame * 5  # intact, in order
    assert h.frames == 5 and pipes[0].port.rx_frames == 5
    assert [p.port.tx_frames for p in pipes] == [0, 5, 5, 5]
    assert [p.port.tx_bytes for p in pipes] == [0, 5 * len(frame)] * 1 + [5 * len(frame)] * 2


def test_protocols_are_counted(hub):
    h, pipes = hub
    frames = [
        eth(0x0806, bytes(28)),
        ipv4(1),
        ipv4(6),
        ipv4(17),
        ipv4(47),
        eth(0x86DD, bytes(6) + b"\x3a" + bytes(33)),
        eth(0x8100, b"\x00\x05\x08\x00" + bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6]) + bytes(30)),
        eth(0x88CC, bytes(40)),
    ]
    h.forward(pipes[0].port, frames)
    assert dict(zip(("arp", "ipv4", "ipv6", "icmp", "tcp", "udp", "other"), h.protocols, strict=True)) == {
        "arp": 1,
        "ipv4": 5,
        "ipv6": 1,
        "icmp": 2,
        "tcp": 2,
        "udp": 1,
        "other": 1,
    }


def test_malformed_frames_are_counted_not_forwarded(hub):
    h, pipes = hub
    h.forward(pipes[0].port, [b"", b"\x01" * 13, eth(0x0800)])  # the last is a bare Ethernet header: fine
    assert pipes[0].port.drop_malformed == 2
    assert b"".join(pipes[1].frames()) == eth(0x0800) and h.frames == 1


def test_gso_super_frame_counts_its_segments():
    h = Hub("hub0", 0)
    a, b = Pipe("a", vnet=True), Pipe("b", vnet=True)
    h.attach(a.port)
    h.attach(b.port)
    payload = 64000
    hdr_len = 14 + 20 + 32
    vnet = struct.pack("<BBHHHH", 1, 1, hdr_len, 1448, 34, 16)  # NEEDS_CSUM, TCPv4, gso_size 1448
    frame = vnet + eth(0x0800, bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6]) + bytes(10 + 32 + payload))
    h.forward(a.port, [frame])
    assert b.frames() == [frame]  # forwarded whole, header and all
    assert h.frames == -(-payload // 1448) == a.port.rx_frames
    assert h.protocols[4] == h.frames  # tcp
    assert h.bytes == len(frame) - VNET_HDR_LEN


def test_a_port_that_cannot_take_a_frame_drops_it_alone(hub):
    h, pipes = hub
    os.close(pipes[2].r)  # the reader is gone: EPIPE
    frame = eth(0x88B5, bytes(50))
    h.forward(pipes[0].port, [frame] * 3)
    assert pipes[2].port.drop_gone == 3 and pipes[2].port.tx_frames == 0
    assert b"".join(pipes[1].frames()) == b"".join(pipes[3].frames()) == frame * 3
    assert h.stats()["drops"] == 3


def test_full_queue_counts_full(hub, monkeypatch):
    h, pipes = hub
    real_write = os.write

    def write(fd, data):
        if fd == pipes[3].port.fd:
            raise BlockingIOError(errno.EAGAIN, "full")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    h.forward(pipes[0].port, [eth(0x88B5, bytes(50))])
    assert pipes[3].port.drop_full == 1 and pipes[3].port.stats()["drop_reasons"]["full"] == 1


def test_samples_are_bounded_per_tick(hub):
    h, pipes = hub
    h.forward(pipes[0].port, [eth(0x88B5, bytes(50))] * (SAMPLES_PER_TICK * 3))
    samples = h.take_samples()
    assert len(samples) == SAMPLES_PER_TICK and samples[0].port == "p0" and samples[0].length == 64
    h.forward(pipes[0].port, [eth(0x88B5, bytes(50))])
    assert len(h.take_samples()) == 1  # the budget refills each tick


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.lists(st.binary(max_size=1600), max_size=30), st.booleans())  # within a pipe's 64 KiB
@settings(max_examples=200, deadline=None)
def test_fuzzed_frames_are_forwarded_or_counted(frames, vnet):
    """Random, truncated and oversized frames never raise on the forwarding
    path: each is forwarded or counted as malformed, and the decoder names
    every sample, however garbled."""
    from qnet_tui.lab.stats import Stats

    h = Hub("hub0", 0)
    a, b = Pipe("a", vnet), Pipe("b", vnet)
    h.attach(a.port)
    h.attach(b.port)
    h.forward(a.port, frames)
    off = VNET_HDR_LEN if vnet else 0
    assert a.port.drop_malformed == sum(len(f) - off < 14 for f in frames)
    assert b"".join(b.frames()) == b"".join(f for f in frames if len(f) - off >= 14)
    stats = Stats.__new__(Stats)
    stats._decode = None
    for sample in h.take_samples():
        # summary() turns a decoder exception into "undecodable frame": a sample of 14 bytes or more is
        # an Ethernet frame, so it must be decoded, not excused.
        assert not stats.summary(sample.frame).startswith("undecodable"), sample.frame.hex()
    os.close(a.r), os.close(b.r), os.close(a.port.fd), os.close(b.port.fd)


def test_summary_names_the_frame_or_says_it_is_undecodable():
    from qnet_tui.lab.stats import Stats

    stats = Stats.__new__(Stats)
    stats._decode = None
    icmp = eth(0x0800, bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 8, 0]) + bytes(6))
    assert "ICMP" in stats.summary(icmp) and "10.0.0.1 > 10.0.0.2" in stats.summary(icmp)

    def broken(frame: bytes):
        raise struct.error("cut short")

    stats._decode = broken
    assert stats.summary(icmp) == "undecodable frame (error)"


def test_a_capture_that_cannot_write_ends_without_stopping_the_hub(hub, tmp_path):
    from qnet_tui.lab.capture import Capture

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    h, pipes = hub
    capture = Capture(tmp_path / "x.pcap")
    h.add_capture(capture)
    capture.file.close()
    capture.file = FullDisk()
    frame = eth(0x88B5, bytes(50))
    h.forward(pipes[0].port, [frame] * 3)
    assert all(b"".join(p.frames()) == frame * 3 for p in pipes[1:])  # forwarded all the same
    assert capture.error == "No space left on device" and capture.frames == 0
    capture.close()  # says why, does not raise


# -- the loop guard ----------------------------------------------------------------


class Clock:
    """monotonic() for the forwarding path, moved by hand."""

    def __init__(self, monkeypatch) -> None:
        from qnet_tui.lab import ports

        self.now = 1000.0
        monkeypatch.setattr(ports, "monotonic", lambda: self.now)


def drain(pipes) -> None:
    for p in pipes:
        p.frames()


def test_a_frame_flooded_back_through_another_port_cuts_that_port(hub, monkeypatch):
    from qnet_tui.lab.ports import LOOP_REPEATS

    Clock(monkeypatch)
    h, pipes = hub
    arp = eth(0x0806, bytes(28))
    h.forward(pipes[0].port, [arp])  # a guest's ARP, then its copies coming back through p1 (a loop)
    h.forward(pipes[1].port, [arp] * (LOOP_REPEATS - 1))
    assert not pipes[1].port.looped  # below the threshold: forwarded
    assert h.frames == LOOP_REPEATS
    h.forward(pipes[1].port, [arp] * 5)
    p1 = pipes[1].port
    assert p1.looped and h.frames == LOOP_REPEATS  # the repeat that crossed it and the rest: dropped
    assert p1.drop_loop_in == 5
    drain(pipes)
    # Cut both ways: frames from others no longer go out of p1, and are counted there as loop drops.
    other = eth(0x88B5, bytes(50), dst=MAC_B)
    h.forward(pipes[0].port, [other] * 3)
    assert pipes[1].frames() == [] and b"".join(pipes[2].frames()) == other * 3
    drain(pipes)
    s = h.stats()
    assert s["ports"]["p1"]["looped"] is True and s["ports"]["p0"]["looped"] is False
    assert s["ports"]["p1"]["drop_reasons"]["loop"] == 5 + 3
    assert s["ports"]["p1"]["tx_frames"] == LOOP_REPEATS - (LOOP_REPEATS - 1)  # what it really got: the first ARP
    assert s["drops"] == 8
    h.forward(pipes[1].port, [other])  # nothing from a cut port goes anywhere
    assert all(p.frames() == [] for p in pipes) and p1.drop_loop_in == 6


def test_unicast_and_a_guest_repeating_itself_are_no_loop(hub, monkeypatch):
    from qnet_tui.lab.ports import LOOP_REPEATS

    Clock(monkeypatch)
    h, pipes = hub
    arp = eth(0x0806, bytes(28))
    h.forward(pipes[0].port, [arp] * (LOOP_REPEATS * 4))  # one sender, the same broadcast: its own port
    unicast = eth(0x0800, bytes(40), dst=MAC_B)
    for p in pipes:  # the same unicast frame from every port: never remembered
        h.forward(p.port, [unicast] * LOOP_REPEATS * 2)
    assert not any(p.port.looped for p in pipes)
    assert len(h.seen) == 1 and h.frames == LOOP_REPEATS * 12


def test_repeats_further_apart_than_the_window_are_no_loop(hub, monkeypatch):
    from qnet_tui.lab.ports import LOOP_REPEATS, LOOP_WINDOW_S

    clock = Clock(monkeypatch)
    h, pipes = hub
    arp = eth(0x0806, bytes(28))
    for i in range(LOOP_REPEATS * 3):  # the same ARP through two ports, each time just past the window
        h.forward(pipes[i % 2].port, [arp])
        clock.now += LOOP_WINDOW_S * 1.5
    assert not any(p.port.looped for p in pipes) and h.frames == LOOP_REPEATS * 3


def loop_and_cut(h, pipes) -> None:
    from qnet_tui.lab.ports import LOOP_REPEATS

    arp = eth(0x0806, bytes(28))
    h.forward(pipes[0].port, [arp])
    h.forward(pipes[1].port, [arp] * LOOP_REPEATS)
    assert pipes[1].port.looped
    drain(pipes)


def test_a_cut_port_is_reported_once_and_probed_alone(hub, monkeypatch):
    from qnet_tui.lab.ports import LOOP_HOLD_S, LOOP_PROBE_WAIT_S, PROBE_HEADER

    clock = Clock(monkeypatch)
    h, pipes = hub
    loop_and_cut(h, pipes)
    events = h.check_loops(clock.now)
    assert [level for level, _ in events] == ["warning"]
    assert "hub0" in events[0][1] and "port p1" in events[0][1] and "loop" in events[0][1]
    assert h.check_loops(clock.now) == []  # said once
    clock.now += LOOP_HOLD_S
    assert h.check_loops(clock.now) == []
    probe = pipes[1].frames()
    assert len(probe) == 1 and probe[0].startswith(PROBE_HEADER)  # out of the cut port only
    assert all(p.frames() == [] for p in pipes if p is not pipes[1])
    # The loop persists: the probe comes back through another port. It is not flooded.
    before = h.frames, h.stats()["drops"]
    h.forward(pipes[2].port, probe)
    assert all(p.frames() == [] for p in pipes) and (h.frames, h.stats()["drops"]) == before  # nor counted
    clock.now += LOOP_PROBE_WAIT_S
    events = h.check_loops(clock.now)
    assert [level for level, _ in events] == ["info"] and "p1 still closes a loop" in events[0][1]
    assert pipes[1].port.looped and pipes[1].port.cut_until == clock.now + 2 * LOOP_HOLD_S  # twice as long
    clock.now += 2 * LOOP_HOLD_S
    h.check_loops(clock.now)
    assert len(pipes[1].frames()) == 1  # probed again; this time nothing comes back
    clock.now += LOOP_PROBE_WAIT_S
    events = h.check_loops(clock.now)
    assert [level for level, _ in events] == ["info"] and "forwards again" in events[0][1]
    assert not pipes[1].port.looped
    frame = eth(0x88B5, bytes(50))
    h.forward(pipes[0].port, [frame])
    assert pipes[1].frames() == [frame]  # back in the flood
    s = h.stats()["ports"]["p1"]
    assert s["looped"] is False and s["tx_frames"] == 2  # the loop's first ARP, and this frame
    loop_and_cut(h, pipes)  # a loop that comes back is a new one: warned again
    assert [level for level, _ in h.check_loops(clock.now)] == ["warning"]


def test_a_probe_returning_through_a_cut_port_does_not_keep_the_port_cut(hub, monkeypatch):
    """Two ports joined to each other, both cut: re-tested one at a time, one
    comes back (the other, still cut, breaks the loop) and the other stays cut."""
    from qnet_tui.lab.ports import LOOP_HOLD_S, LOOP_PROBE_WAIT_S, LOOP_REPEATS

    clock = Clock(monkeypatch)
    h, pipes = hub
    arp = eth(0x0806, bytes(28))
    h.forward(pipes[0].port, [arp])
    h.forward(pipes[1].port, [arp] * LOOP_REPEATS)
    h.forward(pipes[2].port, [arp] * LOOP_REPEATS)
    assert pipes[1].port.looped and pipes[2].port.looped
    drain(pipes)
    h.check_loops(clock.now)
    clock.now += LOOP_HOLD_S
    h.check_loops(clock.now)
    probed = [p for p in pipes[1:3] if p.frames()]
    assert len(probed) == 1 and h.probe_port is probed[0].port
    other = pipes[2] if probed[0] is pipes[1] else pipes[1]
    h.forward(other.port, [h.probe])  # p1 and p2 are joined: the probe comes back in through the other
    clock.now += LOOP_PROBE_WAIT_S
    h.check_loops(clock.now)  # judges that probe, and probes the other port, due as well
    assert not probed[0].port.looped and other.port.looped
    probe = other.frames()
    assert len(probe) == 1
    h.forward(probed[0].port, probe)  # now the way back is open: the loop persists
    clock.now += LOOP_PROBE_WAIT_S
    h.check_loops(clock.now)
    assert other.port.looped and not probed[0].port.looped


def test_looking_for_loops_touches_no_unicast_frame(hub, monkeypatch):
    """The cost for ordinary traffic: no hash, no clock, no table entry per unicast frame."""
    from qnet_tui.lab import ports

    calls = []
    monkeypatch.setattr(ports, "monotonic", lambda: calls.append(1) or 1000.0)
    h, pipes = hub
    h.forward(pipes[0].port, [eth(0x0800, bytes(40), dst=MAC_B)] * 100)
    assert calls == [] and h.seen == {}
    h.forward(pipes[0].port, [eth(0x0800, bytes(40))] * 100)  # broadcast: one clock read per batch
    assert calls == [1] and len(h.seen) == 1


def test_runs_table_names_the_ports_cut_for_a_loop(hub, monkeypatch):
    from qnet_tui.lab.stats import format_table

    Clock(monkeypatch)
    h, pipes = hub
    snapshot = {"time": 0.0, "vlans": {"0": dict(h.stats(), fps=0.0, bps=0.0)}, "peers": {}}
    assert "loop" not in format_table(snapshot)
    loop_and_cut(h, pipes)
    snapshot["vlans"]["0"] = dict(h.stats(), fps=0.0, bps=0.0)
    assert format_table(snapshot).endswith("loop: p1 cut")


def test_a_port_down_drops_as_link_down_both_ways_and_counts_in_integers(hub):
    h, pipes = hub
    frame = eth(0x88B5, bytes(60))
    port = pipes[1].port
    h.set_down(port, down_in=False, down_out=True)  # hub -> p1 down
    h.forward(pipes[0].port, [frame] * 4)
    assert pipes[1].frames() == [] and len(b"".join(pipes[2].frames())) == 4 * len(frame)
    h.forward(port, [frame] * 3)  # p1 -> hub still up
    assert b"".join(pipes[0].frames()) == frame * 3
    assert port.stats()["drop_reasons"]["link-down"] == 4 and port.tx_frames == 0 and port.drops == 4
    h.set_down(port, down_in=True, down_out=False)  # now the other way only
    h.forward(port, [frame] * 5)
    h.forward(pipes[0].port, [frame] * 2)
    assert pipes[0].frames() == [] and b"".join(pipes[1].frames()) == frame * 2
    assert port.stats()["drop_reasons"]["link-down"] == 4 + 5 and port.tx_frames == 2
    assert port.rx_frames == 3 and h.frames == 4 + 3 + 2  # what a down link dropped never entered the hub
    h.set_down(port, down_in=False, down_out=False)
    h.forward(pipes[0].port, [frame])
    assert b"".join(pipes[1].frames()) == frame
    assert port.drop_link == 9 and port.tx_frames == 3 and port.tx_bytes == 3 * len(frame)


def test_an_up_link_costs_no_work_per_frame(hub, monkeypatch):
    """The down check is one test per batch: with every link up, a batch of
    100 frames reads the port's down flag as often as a batch of 1."""
    h, pipes = hub
    reads = []

    class Watched(type(pipes[0].port)):
        def __getattribute__(self, name):
            if name == "down_in":
                reads.append(name)
            return super().__getattribute__(name)

    src = Watched("src", pipes[0].port.fd, False)
    h.attach(src)
    frame = eth(0x88B5, bytes(60))
    h.forward(src, [frame])
    one = len(reads)
    reads.clear()
    h.forward(src, [frame] * 100)
    assert len(reads) == one == 1


def test_a_socket_port_down_gets_nothing_and_sends_nothing(hub):
    """Sockets (and VM NICs, which are stream sockets) go through the same two
    flags: the hub neither floods to a port down out nor takes from one down in."""
    from qnet_tui.lab.ports import Port

    class Socketish(Port):
        kind = "stream"

        def __init__(self) -> None:
            super().__init__("sock0")
            self.sent: list[bytes] = []

        def send(self, frame: bytes, segments: int, length: int) -> None:
            self.sent.append(frame)

    h, pipes = hub
    sock = Socketish()
    h.attach(sock)
    frame = eth(0x88B5, bytes(60))
    h.set_down(sock, down_in=True, down_out=True)
    h.forward(pipes[0].port, [frame] * 3)
    h.forward(sock, [frame] * 2)
    assert sock.sent == [] and pipes[0].frames() == []
    assert sock.stats()["drop_reasons"]["link-down"] == 5 and sock.rx_frames == 0
    h.set_down(sock, down_in=False, down_out=False)
    h.forward(pipes[0].port, [frame])
    h.forward(sock, [frame])
    assert sock.sent == [frame] and b"".join(pipes[0].frames()) == frame
    assert sock.drop_link == 5


def test_a_port_cut_for_a_loop_and_down_counts_each_frame_once(hub):
    h, pipes = hub
    frame = eth(0x88B5, bytes(60))
    port = pipes[1].port
    h.cut(port, 0.0)
    h.forward(pipes[0].port, [frame] * 2)  # loop only
    h.set_down(port, down_in=False, down_out=True)
    h.forward(pipes[0].port, [frame] * 3)  # both: link-down
    h.set_down(port, down_in=False, down_out=False)
    h.forward(pipes[0].port, [frame] * 4)  # loop only again
    assert (port.drop_loop, port.drop_link) == (2 + 4, 3)
    assert port.tx_frames == 0 and port.drops == 9


def test_a_port_moved_to_a_busy_hub_keeps_its_counts_and_counts_on():
    old, new = Hub("hub1", 1), Hub("hub2", 2)
    moving, stay, there = Pipe("vm1"), Pipe("vm2"), Pipe("vm3")
    old.attach(moving.port)
    old.attach(stay.port)
    new.attach(there.port)
    old.forward(stay.port, [eth(0x88B5, bytes(50))] * 3)  # vm1 was sent 3 on hub1
    new.forward(there.port, [eth(0x88B5, bytes(50))] * 7)  # hub2 flooded 7 before vm1 came
    before = moving.port.tx_frames, moving.port.tx_bytes
    assert before == (3, 3 * 64)

    new.attach(moving.port)
    assert moving.port.hub is new and moving.port not in old.ports
    assert (moving.port.tx_frames, moving.port.tx_bytes) == before  # not hub2's 7 frames
    new.forward(there.port, [eth(0x88B5, bytes(50))] * 2)
    new.forward(moving.port, [eth(0x88B5, bytes(50))] * 4)
    assert moving.port.tx_frames == 5 and moving.port.rx_frames == 4
    assert there.port.tx_frames == 4  # and only what came since it was there
    old.forward(stay.port, [eth(0x88B5, bytes(50))])
    assert moving.port.tx_frames == 5  # hub1 floods to it no more
    assert [len(f) for f in moving.frames()] == [64 * 3 + 64 * 2]


def test_a_port_leaving_a_hub_takes_no_pulled_cable_or_loop_cut_along():
    old, new = Hub("hub1", 1), Hub("hub2", 2)
    port, other = Pipe("vm1").port, Pipe("vm2").port
    old.attach(port)
    old.attach(other)
    old.set_down(port, True, True)
    old.cut(port, 0.0)
    new.attach(port)
    assert not (port.down_in or port.down_out or port.looped)
    assert port.drop_link == 0 and port.drop_loop == 0
