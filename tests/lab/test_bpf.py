"""The eBPF socket filter of a kernel hub's port (lab/bpf.py), on a real
veth: what it counts per frame, and which frames it keeps for the worker."""

from __future__ import annotations

import socket
import uuid

import pytest

from qnet_tui.lab import bpf, netns, sysctl
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
        # No IPv6 on the veths: the kernel's own MLD and DAD frames would be counted with the test's.
        sysctl.write(ns, "net/ipv6/conf/default/disable_ipv6", "1")
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


def test_conversations_are_keyed_as_the_worker_keys_them(veth):
    """The same frames through the filter and through a worker hub give the
    same conversation counts, key for key."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    from qnet_tui.lab.conversations import SEGMENTS_SHIFT, SIZE_MASK, read_key
    from qnet_tui.lab.ports import Hub
    from tests.unit.test_hub import Pipe

    tx, _, watch = veth
    a, b = "52:54:00:00:00:01", "52:54:00:00:00:02"
    ip = IP(src="10.0.0.1", dst="10.0.0.2")
    frames = [
        bytes(Ether(src=a, dst=b) / ip / TCP(sport=40000, dport=5201)),
        bytes(Ether(src=a, dst=b) / ip / TCP(sport=40000, dport=5201, flags="A") / bytes(500)),
        bytes(Ether(src=a, dst=b) / ip / UDP(sport=5353, dport=53)),
        bytes(Ether(src=a, dst=b) / ip / ICMP(seq=1)),
        bytes(Ether(src=a, dst=b) / ip / ICMP(seq=2)),
        bytes(Ether(src=a, dst=b) / Dot1Q(vlan=5) / ip / UDP(sport=7, dport=9)),
        bytes(Ether(src=a, dst=b) / IP(src="10.0.0.1", dst="10.0.0.4", options=b"\x01\x01\x01\x00") / UDP()),
        bytes(Ether(src=a, dst=b) / IP(src="10.0.0.1", dst="10.0.0.5", frag=100, proto=17) / bytes(20)),
        bytes(Ether(src=a, dst=b) / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2)),
        bytes(Ether(src=a, dst=b) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest()),
        bytes(Ether(src=a, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2")),
        bytes(Ether(src=b, dst=a, type=0x88B5) / bytes(46)),
    ]
    frames = [f + bytes(max(0, 60 - len(f))) for f in frames]  # as a NIC pads them
    watch.allow(0, False)
    for f in frames:
        tx.send(f)
    wait_for(lambda: watch.counts()[bpf.FRAMES] >= len(frames), what="every frame counted")
    hub, src, dst = Hub("hub1", 1), Pipe("vm1"), Pipe("vm2")
    hub.attach(src.port)
    hub.attach(dst.port)
    hub.forward(src.port, frames)
    ours = {bytes.fromhex(mac.replace(":", "")) for mac in (a, b)}

    def read(counts: dict) -> dict:
        """Keys as lab/conversations.py reads them -> (wire frames, bytes); not the veth's own frames."""
        out = {}
        for key, packed in counts.items():
            r = read_key(key)
            if bytes.fromhex(r.src_mac.replace(":", "")) in ours:
                out[r] = (packed >> SEGMENTS_SHIFT, packed & SIZE_MASK)
        return out

    worker, kernel = read(src.port.convs), read(watch.conversations())
    assert kernel == worker
    assert len(worker) == 10  # the two pings are one conversation, the two TCP frames one
    tx.send(frames[0])
    wait_for(lambda: watch.counts()[bpf.FRAMES] >= len(frames) + 1, what="one more frame counted")
    tcp = read_key(next(k for k in src.port.convs if isinstance(k, tuple)))
    assert read(watch.conversations()) == {tcp: (1, len(frames[0]))}  # only what came since the last read


def test_arp_and_neighbour_discovery_are_kept_on_a_budget_of_their_own(veth):
    tx, rx, watch = veth
    watch.allow(0, False, 2)  # no samples; two watched frames
    arp = frame(0x0806, bytes(28))
    for _ in range(3):
        tx.send(arp)
    tx.send(frame(0x0800, ipv4(17)))
    wait_for(lambda: watch.counts()[bpf.FRAMES] >= 4, what="the frames counted")
    got = [f for f in kept(rx) if f[6:12] == SRC]
    assert got == [arp, arp]  # two of three: the budget; the UDP frame not at all (no sample budget)
