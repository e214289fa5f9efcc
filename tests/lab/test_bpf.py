"""The eBPF socket filter of a kernel hub's port (lab/bpf.py), on a real
veth: what it counts per frame, and which frames it keeps for the worker."""

from __future__ import annotations

import socket
import uuid

import pytest

from qnet_tui.lab import bpf, netns
from qnet_tui.lab.kernelhub import PACKET_IGNORE_OUTGOING, SO_ATTACH_BPF, SOL_PACKET

from .conftest import wait_for

SRC = bytes.fromhex("020000000001")
BROADCAST = b"\xff" * 6


def frame(ethertype: int, body: bytes = b"", tag: bool = False) -> bytes:
    vlan = b"\x81\x00\x00\x05" if tag else b""
    out = BROADCAST + SRC + vlan + ethertype.to_bytes(2, "big") + body
    return out + bytes(max(0, 60 - len(out)))


def ipv4(protocol: int) -> bytes:
    return bytes(9) + bytes([protocol]) + bytes(10)


def ipv6(next_header: int) -> bytes:
    return bytes(6) + bytes([next_header]) + bytes(33)


@pytest.fixture
def veth():
    """(sender, receiver with the filter, the filter) in a namespace of the test's own."""
    ns = f"qnet-bpftest-{uuid.uuid4().hex[:6]}"
    netns.create(ns)
    watch = bpf.PortFilter.make(64)
    try:
        with netns.iproute(ns) as ipr:
            ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb"})
            for name in ("va", "vb"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        with netns.inside(ns):
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        rx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, watch.program)
        rx.bind(("vb", 0))
        rx.setblocking(False)
        tx.bind(("va", 0))
        yield tx, rx, watch
        rx.close()
        tx.close()
    finally:
        watch.close()
        netns.remove(ns)


def kept(rx: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(rx.recv(65536))
        except BlockingIOError:
            return out


def test_each_frame_is_counted_by_protocol_past_a_vlan_tag(veth):
    tx, rx, watch = veth
    watch.allow(0, False)
    sent = [
        frame(0x0806),
        frame(0x0800, ipv4(6)),
        frame(0x0800, ipv4(17), tag=True),
        frame(0x0800, ipv4(1)),
        frame(0x86DD, ipv6(58)),
        frame(0x86DD, ipv6(6), tag=True),
        frame(0x88B5),
    ]
    for f in sent:
        tx.send(f)
    counts = wait_for(lambda: (c := watch.counts())[bpf.FRAMES] >= len(sent) and c, 5, "the frames counted")
    frames, size, arp, v4, v6, icmp, tcp, udp, other = counts
    assert (frames, size) == (7, sum(len(f) for f in sent))
    assert (arp, v4, v6, icmp, tcp, udp, other) == (1, 3, 2, 2, 2, 1, 1)
    assert kept(rx) == []  # no budget: nothing for the socket


def test_the_budget_keeps_that_many_frames_cut_and_a_capture_keeps_all_whole(veth):
    tx, rx, watch = veth
    watch.allow(3, False)
    big = frame(0x88B5, bytes(200))
    for _ in range(10):
        tx.send(big)
    wait_for(lambda: watch.counts()[bpf.FRAMES] >= 10, 5, "the frames counted")
    samples = kept(rx)
    assert [len(s) for s in samples] == [64, 64, 64]  # the snap length, and no more than the budget
    watch.allow(0, True)
    for _ in range(5):
        tx.send(big)
    wait_for(lambda: watch.counts()[bpf.FRAMES] >= 15, 5, "the frames counted")
    assert kept(rx) == [big] * 5
