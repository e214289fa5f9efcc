"""Filters in tcpdump's syntax: libpcap compiles them, and the classic BPF
they compile to runs here on frames as the kernel would run it."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from qnet_tui.pcapfilter import FilterError, compile_filter

A, B = "52:54:00:00:01:01", "52:54:00:00:01:02"
FRAMES = {
    "arp": bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2")),
    "icmp": bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP()),
    "http": bytes(Ether(src=B, dst=A) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=40000)),
    # An IPv4 header with options: the TCP port sits further on.
    "ssh-options": bytes(Ether(src=A, dst=B) / IP(options=b"\x01" * 4) / TCP(dport=22) / (b"x" * 200)),
    "dns-tagged": bytes(Ether(src=A, dst=B) / Dot1Q(vlan=5) / IP() / UDP(dport=53)),
    "ping6": bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest()),
}


def kept(text: str) -> set[str]:
    f = compile_filter(text)
    return {name for name, frame in FRAMES.items() if f.matches(frame)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("arp", {"arp"}),
        ("icmp", {"icmp"}),
        ("tcp port 80", {"http"}),
        ("tcp dst port 22", {"ssh-options"}),
        ("vlan 5 and udp port 53", {"dns-tagged"}),
        ("ip6", {"ping6"}),
        ("icmp6", {"ping6"}),
        (f"ether src {B}", {"http"}),
        ("host 10.0.0.2", {"arp", "icmp", "http"}),
        ("greater 200", {"ssh-options"}),
        ("not ip and not ip6 and not vlan", {"arp"}),
        ("", set(FRAMES)),  # no filter: everything
    ],
)
def test_a_filter_keeps_what_tcpdump_would(text, expected):
    assert kept(text) == expected


def test_a_short_frame_is_not_kept_where_a_load_would_run_past_it():
    assert not compile_filter("tcp port 80").matches(FRAMES["http"][:30])


@pytest.mark.parametrize(
    ("text", "said"),
    [("tcp prot 80", "syntax error"), ("ether host 52:54", "illegal link layer address"), ("port 99999", "port")],
)
def test_a_bad_filter_says_what_libpcap_says(text, said):
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert str(info.value).startswith(f"filter {text!r}: ") and said in str(info.value), str(info.value)


def test_the_program_packs_as_the_kernel_takes_it():
    f = compile_filter("arp")
    assert len(f.packed()) == 8 * len(f.program) and f.program[-1][0] == 0x06  # ends in a return


def test_length_filters_see_the_wire_length_of_a_cut_frame():
    """A sample keeps a frame's first bytes: `greater` asks of the frame as it was on the wire."""
    big = compile_filter("greater 1000")
    cut = FRAMES["ssh-options"][:60]
    assert not big.matches(cut) and big.matches(cut, wire_length=1514)
    assert not compile_filter("less 100").matches(cut, wire_length=1514)
