"""How a tap port reads: lone frames with one read each, bursts drained.

A datagram socketpair stands in for the tap (one frame per read, EAGAIN when
empty); the loop's level-triggered epoll is played by calling on_readable
while frames are queued."""

from __future__ import annotations

import os
import socket

import pytest

from qnet_tui.lab import ports
from qnet_tui.lab.ports import BATCH, SPARSE_GAP_S, Hub, TapPort

FRAME = bytes.fromhex("525400000002525400000001") + b"\x88\xb5" + bytes(46)


class Rig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.guest, tap = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.out, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (tap, self.out, peer):
            s.setblocking(False)
        self.keep = (tap, peer)
        self.src = TapPort("vm1", tap.fileno(), False)
        hub = Hub("hub0", 0)
        hub.attach(self.src)
        hub.attach(TapPort("vm2", peer.fileno(), False))
        self.reads = {"frames": 0, "empty": 0}
        self.now = 100.0
        monkeypatch.setattr(ports, "monotonic", lambda: self.now)
        real = os.read

        def read(fd: int, n: int) -> bytes:
            try:
                frame = real(fd, n)
            except BlockingIOError:
                self.reads["empty"] += 1
                raise
            self.reads["frames"] += 1
            return frame

        monkeypatch.setattr(os, "read", read)

    def _queued(self) -> bool:
        """What a level-triggered epoll says of the tap."""
        try:
            self.keep[0].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        return True

    def turns(self) -> int:
        """Run the port's handler while epoll would report it; how many times it ran."""
        n = 0
        while self._queued():
            self.src.on_readable()
            n += 1
        return n

    def delivered(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.out.recv(2000))
            except BlockingIOError:
                return got


@pytest.fixture
def rig(monkeypatch):
    return Rig(monkeypatch)


def test_frames_far_apart_cost_one_read_each_not_a_read_that_finds_the_tap_empty(rig):
    rig.guest.send(FRAME)
    rig.turns()  # the first drain finds the tap empty after it: sparse from here
    rig.reads.update(frames=0, empty=0)
    for i in range(5):
        rig.now += 0.005  # a ping every 5 ms
        rig.guest.send(FRAME + bytes([i]))
        assert rig.turns() == 1
    assert rig.delivered() == [FRAME] + [FRAME + bytes([i]) for i in range(5)]
    assert rig.reads == {"frames": 5, "empty": 0}
    assert rig.src.rx_frames == 6


def test_a_burst_after_quiet_is_drained_in_batches(rig):
    rig.guest.send(FRAME)
    rig.turns()
    rig.reads.update(frames=0, empty=0)
    rig.now += 1.0
    burst = [FRAME + i.to_bytes(2, "big") for i in range(3 * BATCH)]
    for frame in burst:
        rig.guest.send(frame)
    turns = rig.turns()  # epoll reports it again at once: no time passes
    assert rig.delivered() == [FRAME, *burst]  # every frame, in order
    # One lone read, then batches: not one turn of the loop per frame.
    assert turns <= 2 + len(burst) // BATCH
    assert rig.reads["frames"] == len(burst)
    assert rig.reads["empty"] <= 1


def test_frames_closer_than_the_gap_are_drained_as_before(rig):
    rig.guest.send(FRAME)
    rig.turns()
    for i in range(4):
        rig.now += SPARSE_GAP_S / 10
        rig.guest.send(FRAME + bytes([i]))
        rig.guest.send(FRAME + bytes([i, i]))
        rig.turns()
    assert len(rig.delivered()) == 9
    assert rig.src.rx_frames == 9
