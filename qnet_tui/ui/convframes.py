"""The headers a conversation row stands for, so that a BPF display filter
can be asked about a row as about a frame: Ethernet with the pair's MACs for
a MAC pair (no type: only `ether host/src/dst` and `broadcast` can match it),
Ethernet + IPv4/IPv6 (+ TCP/UDP/SCTP ports, an ICMP header) for an IP flow
(no MACs). Both directions: a row holds frames both ways. Lengths are the
headers', so `greater`/`less` say nothing of a conversation."""

from __future__ import annotations

import ipaddress
import struct

from qnet_tui.protocol import IP_PROTOCOLS, ConversationRow

PROTOCOLS = {name: number for number, name in IP_PROTOCOLS.items()}
NO_MAC = bytes(6)


def _proto_number(proto: str | None) -> int | None:
    if proto in PROTOCOLS:
        return PROTOCOLS[proto]
    if proto and proto.startswith("ip-") and proto[3:].isdigit() and int(proto[3:]) < 256:
        return int(proto[3:])
    return None


def _transport(number: int, sport: int, dport: int) -> bytes:
    if number == 6:  # TCP: ports, seq, ack, data offset 5, flags, window, checksum, urgent
        return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, 0, 0, 0, 0)
    if number == 17:
        return struct.pack("!HHHH", sport, dport, 8, 0)
    if number == 132:  # SCTP common header: ports, verification tag, checksum
        return struct.pack("!HHII", sport, dport, 0, 0)
    if number in (1, 58):
        return bytes(8)
    return b""


def _flow(src: str, dst: str, number: int, sport: int, dport: int) -> bytes | None:
    try:
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        return None
    if a.version != b.version:
        return None
    l4 = _transport(number, sport, dport)
    if a.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, number, 0, a.packed, b.packed)
        return NO_MAC + NO_MAC + b"\x08\x00" + ip + l4
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), number, 64, a.packed, b.packed)
    return NO_MAC + NO_MAC + b"\x86\xdd" + ip + l4


def _mac(text: str) -> bytes | None:
    try:
        mac = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return None
    return mac if len(mac) == 6 else None


def row_frames(row: ConversationRow, flows: bool) -> list[bytes]:
    """Headers of a frame each way (none for a row too odd to stand for one)."""
    if not flows:
        a, b = _mac(row["a"]), _mac(row["b"])
        if a is None or b is None:
            return []
        return [b + a + b"\x00\x00", a + b + b"\x00\x00"]
    number = _proto_number(row["proto"])
    if number is None:
        return []
    sport, dport = row["a_port"] or 0, row["b_port"] or 0
    frames = [_flow(row["a"], row["b"], number, sport, dport), _flow(row["b"], row["a"], number, dport, sport)]
    return [f for f in frames if f is not None]
