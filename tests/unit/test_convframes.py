"""A conversation row asked of a BPF filter as the headers it stands for,
and a frame's hex view: pure functions, no app."""

from __future__ import annotations

import pytest

from qnet_tui.dissect import hex_rows, kept_note
from qnet_tui.pcapfilter import compile_filter
from qnet_tui.ui.convframes import row_frames


def row(a: str, b: str, proto: str | None = None, a_port: int | None = None, b_port: int | None = None) -> dict:
    return {
        "a": a, "b": b, "a_node": None, "b_node": None, "proto": proto, "a_port": a_port, "b_port": b_port,
        "frames": 1, "bytes": 60, "fps": 0.0, "bps": 0.0, "first": 0.0, "last": 0.0,
    }  # fmt: skip


def kept(text: str, r: dict, flows: bool) -> bool:
    f = compile_filter(text)
    return any(f.matches(frame) for frame in row_frames(r, flows))


TCP = row("10.0.0.1", "10.0.0.2", "tcp", 40000, 5201)
PING6 = row("fd00::1", "fd00::2", "icmpv6")
PAIR = row("52:54:00:00:01:01", "ff:ff:ff:ff:ff:ff")


@pytest.mark.parametrize(
    ("text", "r", "flows", "expected"),
    [
        ("tcp port 5201", TCP, True, True),
        ("tcp src port 5201", TCP, True, True),  # the frames back from the server
        ("tcp and dst host 10.0.0.1 and dst port 40000", TCP, True, True),
        ("udp", TCP, True, False),
        ("host 10.0.0.3", TCP, True, False),
        ("ip6 and icmp6", PING6, True, True),
        ("ip", PING6, True, False),
        ("ip proto 47", row("10.0.0.1", "10.0.0.2", "gre"), True, True),
        ("ip proto 99", row("10.0.0.1", "10.0.0.2", "ip-99"), True, True),
        ("ether broadcast", PAIR, False, True),
        ("ether src 52:54:00:00:01:01", PAIR, False, True),
        ("ether host 52:54:00:00:01:02", PAIR, False, False),
        ("arp", PAIR, False, False),  # a pair has no type
        ("tcp", row("10.0.0.1", "fd00::2", "tcp"), True, False),  # two families: no frame
        ("tcp", row("not-an-address", "10.0.0.2", "tcp"), True, False),
    ],
)
def test_a_row_is_matched_as_its_headers_both_ways(text, r, flows, expected):
    assert kept(text, r, flows) is expected


def test_hex_rows_and_what_was_kept():
    rows = hex_rows(bytes(range(0x30, 0x30 + 20)))
    assert rows[0] == "0000  30 31 32 33 34 35 36 37  38 39 3a 3b 3c 3d 3e 3f  0123456789:;<=>?"
    assert rows[1] == "0010  40 41 42 43" + " " * 37 + "  @ABC" and len(rows) == 2
    assert kept_note(256, 1514) == "256 of 1514 bytes kept" and kept_note(98, 98) == "98 bytes"
