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
        assert isinstance(stats.summary(sample.frame), str)
    os.close(a.r), os.close(b.r), os.close(a.port.fd), os.close(b.port.fd)


def test_a_capture_that_cannot_write_ends_without_stopping_the_hub(hub, tmp_path):
    from qnet_tui.lab.capture import Capture

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    h, pipes = hub
    h.capture = Capture(tmp_path / "x.pcap")
    h.capture.file.close()
    h.capture.file = FullDisk()
    frame = eth(0x88B5, bytes(50))
    h.forward(pipes[0].port, [frame] * 3)
    assert all(b"".join(p.frames()) == frame * 3 for p in pipes[1:])  # forwarded all the same
    assert h.capture.error == "No space left on device" and h.capture.frames == 0
    h.capture.close()  # says why, does not raise
