"""Following a conversation's payload (lab/follow.py): TCP put in order by
sequence number, UDP datagram by datagram, other flows left out, bounded."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from qnet_tui.lab.follow import Flow, Follower

A, B = "10.0.0.1", "10.0.0.2"
FLOW = Flow(6, A, 40000, B, 80)


def seg(seq: int, data: bytes = b"", flags: str = "A", back: bool = False, **kw) -> bytes:
    ip = IP(src=B, dst=A) if back else IP(src=A, dst=B)
    ports = {"sport": 80, "dport": 40000} if back else {"sport": 40000, "dport": 80}
    return bytes(Ether() / ip / TCP(seq=seq, flags=flags, **ports, **kw) / data)


def test_tcp_in_order_both_ways_from_the_handshake():
    f = Follower(FLOW)
    for frame in (
        seg(1000, flags="S"),
        seg(5000, flags="SA", back=True),
        seg(1001, b"GET / HTTP/1.0\r\n"),
        seg(1017, b"\r\n"),
        seg(5001, b"HTTP/1.0 200 OK\r\n", back=True),
    ):
        f.feed(frame)
    assert f.take() == [(0, b"GET / HTTP/1.0\r\n\r\n"), (1, b"HTTP/1.0 200 OK\r\n")]
    assert f.take() == [] and f.frames == 5


def test_tcp_retransmissions_once_and_early_segments_wait_for_the_gap():
    f = Follower(FLOW)
    f.feed(seg(99, flags="S"))
    f.feed(seg(100, b"abc"))
    f.feed(seg(106, b"ghi"))  # early: def is missing
    assert f.take() == [(0, b"abc")]
    f.feed(seg(100, b"abc"))  # retransmitted
    f.feed(seg(101, b"bcdef"))  # overlaps what we have, then fills the gap
    assert f.take() == [(0, b"defghi")]


def test_tcp_sequence_numbers_wrap():
    f = Follower(FLOW)
    f.feed(seg(0xFFFFFFFE, flags="S"))
    f.feed(seg(0xFFFFFFFF, b"xy"))
    f.feed(seg(1, b"z"))
    assert f.take() == [(0, b"xyz")]


def test_joined_after_the_handshake_starts_where_it_is():
    f = Follower(FLOW)
    f.feed(seg(777, b"mid"))
    f.feed(seg(780, b"dle"))
    assert f.take() == [(0, b"middle")]


def test_udp_datagrams_other_flows_tags_ipv6_and_padding():
    flow = Flow(17, "fd00::1", 5000, "fd00::2", 53)
    f = Follower(flow)
    f.feed(bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5000, dport=53) / b"q1"))
    f.feed(bytes(Ether() / IPv6(src="fd00::2", dst="fd00::1") / UDP(sport=53, dport=5000) / b"a1"))
    f.feed(bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5001, dport=53) / b"other"))
    assert f.take() == [(0, b"q1"), (1, b"a1")]
    v4 = Follower(Flow(17, A, 1, B, 2))
    padded = bytes(Ether() / Dot1Q(vlan=3) / IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"x") + bytes(20)
    v4.feed(padded)
    v4.feed(b"\x00" * 20)  # too short for anything
    v4.feed(padded[:30])  # cut inside the IP header
    assert v4.take() == [(0, b"x")]


def test_bounded_per_direction():
    f = Follower(Flow(17, A, 1, B, 2), limit=5)
    for _ in range(3):
        f.feed(bytes(Ether() / IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"abc"))
    assert f.take() == [(0, b"abcab")]
    assert f.ways[0].full and not f.full  # the other way still has room
