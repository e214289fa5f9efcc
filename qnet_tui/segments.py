"""The TCP or UDP segment an Ethernet frame carries: its ends and payload.
Pure and small: the worker follows conversations with it (lab/follow.py),
the app finds which conversation a frame is of (ui/framedetail.py); both
show a payload as text with it."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TCP, UDP = 6, 17


@dataclass
class Segment:
    """What one frame of the flow says."""

    src: str
    sport: int
    dst: str
    dport: int
    proto: int
    payload: bytes
    seq: int = 0
    syn: bool = False


def _parse(frame: bytes) -> Segment | None:
    off = 12
    if frame[off : off + 2] == b"\x81\x00":
        off += 4
    ethertype = frame[off : off + 2]
    off += 2
    if ethertype == b"\x08\x00" and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        total = int.from_bytes(frame[off + 2 : off + 4], "big")
        if frame[off + 6] & 0x1F or frame[off + 7] or ihl < 20:  # a later fragment: no header of its own
            return None
        proto = frame[off + 9]
        src = str(ipaddress.IPv4Address(frame[off + 12 : off + 16]))
        dst = str(ipaddress.IPv4Address(frame[off + 16 : off + 20]))
        end = min(len(frame), off + total) if total >= ihl else len(frame)  # a NIC's padding is no payload
        off += ihl
    elif ethertype == b"\x86\xdd" and len(frame) >= off + 40:
        proto = frame[off + 6]
        src = str(ipaddress.IPv6Address(frame[off + 8 : off + 24]))
        dst = str(ipaddress.IPv6Address(frame[off + 24 : off + 40]))
        end = min(len(frame), off + 40 + int.from_bytes(frame[off + 4 : off + 6], "big"))
        off += 40
    else:
        return None
    if proto == TCP and end >= off + 20:
        sport, dport, seq = struct.unpack_from("!HHI", frame, off)
        data_off = (frame[off + 12] >> 4) * 4
        flags = frame[off + 13]
        return Segment(src, sport, dst, dport, proto, frame[off + data_off : end], seq, bool(flags & 0x02))
    if proto == UDP and end >= off + 8:
        sport, dport = struct.unpack_from("!HH", frame, off)
        return Segment(src, sport, dst, dport, proto, frame[off + 8 : end])
    return None


def parse(frame: bytes | memoryview) -> Segment | None:
    """The TCP or UDP segment an Ethernet frame carries (past one 802.1Q tag),
    or None: another protocol, a later fragment, or a frame too short for the
    headers it claims."""
    try:
        return _parse(bytes(frame))
    except (IndexError, struct.error, ValueError):
        return None


def payload_text(data: bytes) -> str:
    """Payload as text: printable ASCII, newlines and tabs as they are, other bytes as dots (CR dropped)."""
    return "".join(chr(b) if 32 <= b < 127 or b in (9, 10) else "." for b in data if b != 13)
