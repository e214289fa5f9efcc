"""A sampled frame taken apart for people: its layers with scapy's field
names and scapy's own text for each value (`flags: SA`, `proto: icmp`), and
a hex dump. Slow the first time (scapy's import): callers run it off their
event loop. Neither Textual nor netlink."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

VALUE_CHARS = 120  # a long payload's repr is cut here: the hex view has all of it


class DissectError(Exception):
    """Why a frame's layers cannot be shown (the hex still can)."""


@dataclass(frozen=True)
class Layer:
    name: str  # scapy's, e.g. "IP", "TCP", "Ethernet"
    fields: tuple[tuple[str, str], ...]  # (field name, scapy's text of its value)


@cache
def _ether() -> Any:
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # its warnings would go to the terminal
    try:
        import scapy.layers.all  # noqa: F401 - binds every layer scapy knows (DHCP, DNS, SCTP...) under Ether
        from scapy.layers.l2 import Ether
    except ImportError as exc:
        raise DissectError(f"scapy is not installed ({exc})") from None
    return Ether


def frame_bytes(hex_text: str) -> bytes:
    try:
        return bytes.fromhex(hex_text)
    except ValueError:
        raise DissectError(f"the sample's bytes are not hex: {hex_text[:40]!r}") from None


def layers(frame: bytes) -> list[Layer]:
    """The frame's layers as scapy decodes them, outermost first; DissectError
    says why when scapy cannot."""
    ether = _ether()
    from scapy.fields import ConditionalField
    from scapy.packet import NoPayload

    try:
        packet = ether(frame)
    except Exception as exc:  # scapy raises what its field parsers raise: struct.error, IndexError...
        raise DissectError(f"scapy cannot decode it: {type(exc).__name__}: {exc}") from None
    out = []
    layer = packet
    while not isinstance(layer, NoPayload):
        fields = []
        for f in layer.fields_desc:
            if isinstance(f, ConditionalField) and not f._evalcond(layer):
                continue  # a field this layer does not have (as scapy's show() leaves it out)
            try:
                text = str(f.i2repr(layer, layer.getfieldval(f.name)))
            except Exception as exc:  # one field scapy cannot show: say so, show the rest
                text = f"({type(exc).__name__})"
            if len(text) > VALUE_CHARS:
                text = text[: VALUE_CHARS - 1] + "…"
            fields.append((f.name, text))
        out.append(Layer(layer.name, tuple(fields)))
        layer = layer.payload
    return out


def hex_rows(frame: bytes) -> list[str]:
    """Offset, 16 bytes in hex, and those printable as ASCII (others as '.')."""
    rows = []
    for offset in range(0, len(frame), 16):
        chunk = frame[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        halves = f"{hexes[:23]}  {hexes[24:]}" if len(chunk) > 8 else hexes
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset:04x}  {halves:<48}  {text}")
    return rows


def kept_note(kept: int, length: int) -> str:
    """How much of the frame the sample holds."""
    if kept < length:
        return f"{kept} of {length} bytes kept"
    return f"{length} bytes"
