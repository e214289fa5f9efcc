"""A sampled frame taken apart for people: its layers with scapy's field
names and scapy's own text for each value (`flags: SA`, `proto: icmp`), the
bytes each layer and field came from, and a hex dump. Slow the first time
(scapy's import): callers run it off their event loop. Neither Textual nor
netlink."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

VALUE_CHARS = 120  # a long payload's repr is cut here: the hex view has all of it
ROW_BYTES = 16
Span = tuple[int, int]  # bytes [start, end) of the frame


class DissectError(Exception):
    """Why a frame's layers cannot be shown (the hex still can)."""


class Field(NamedTuple):
    name: str  # scapy's, e.g. "ttl"
    text: str  # scapy's text of its value
    span: Span | None  # None when not known (its layer's stands for it)


@dataclass(frozen=True)
class Layer:
    name: str  # scapy's, e.g. "IP", "TCP", "Ethernet"
    fields: tuple[Field, ...]
    span: Span | None = None  # None when not known


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
    decoded = []
    layer = packet
    while not isinstance(layer, NoPayload):
        decoded.append(layer)
        layer = layer.payload
    out = []
    start: int | None = 0  # None once a layer's bytes are not found where the previous ended
    for i, layer in enumerate(decoded):
        header = _header(layer)
        if start is not None and (header is None or frame[start : start + len(header)] != header):
            start = None  # a layer scapy rewrote before decoding (pre_dissect): where the rest are is unknown
        span = field_spans = None
        if start is not None and header is not None:
            end = len(frame) if i == len(decoded) - 1 else start + len(header)
            span = (start, end)
            field_spans = _field_spans(layer, header, start)
            start = end
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
            fields.append(Field(f.name, text, field_spans.get(f.name) if field_spans else None))
        out.append(Layer(layer.name, tuple(fields), span))
    return out


def _header(layer: Any) -> bytes | None:
    """The layer's own bytes (no payload): those scapy decoded it from, or,
    when it kept none (a layer with a trailer field such as ICMP's), its
    fields built again; the caller checks them against the frame."""
    if layer.raw_packet_cache is not None:
        return bytes(layer.raw_packet_cache)
    try:
        return bytes(layer.self_build())
    except Exception:  # a field scapy cannot build back: the caller says "not known"
        return None


def _is_trailer(field: Any) -> bool:
    """A field scapy takes from the end of the frame, not in its turn."""
    from scapy.fields import TrailerField

    while field is not None:
        if isinstance(field, TrailerField):
            return True
        field = getattr(field, "fld", None)  # inside a ConditionalField and the like
    return False


def _field_spans(layer: Any, header: bytes, start: int) -> dict[str, Span]:
    """Each field's bytes, found by decoding the layer's header again as
    scapy's Packet.do_dissect does and watching how much each field takes.
    Bit fields share bytes: each gets the bytes its bits touch. Empty when
    the replay goes other than scapy's decoding went."""

    def bits_done(rest: bytes | tuple[bytes, int]) -> int:
        if isinstance(rest, tuple):  # inside a run of bit fields: (bytes left, bits of the first one taken)
            return (len(header) - len(rest[0])) * 8 + rest[1]
        return (len(header) - len(rest)) * 8

    spans = {}
    rest: bytes | tuple[bytes, int] = header
    try:
        for f in layer.fields_desc:
            before = bits_done(rest)
            rest, value = f.getfield(layer, rest)
            after = bits_done(rest)
            if f.isconditional and value is None:
                continue
            # A little-endian bit field's bits are not where they seem; a trailer's are not here.
            if not getattr(f, "rev", False) and not _is_trailer(f):
                spans[f.name] = (start + before // 8, start + (after + 7) // 8)
            if not rest and (f.ismayend or (f.isconditional and f.fld.ismayend)):
                break  # as scapy stops
    except Exception:  # a field parser's own error (struct.error, IndexError...): spans unknown
        return {}
    return spans if bits_done(rest) == len(header) * 8 else {}


HEX_AT = 6  # a row: "0010  " then the hex pairs (a space more after the 8th),
HEX_CHARS = 3 * ROW_BYTES  # 16 pairs, 15 spaces between, 1 more in the middle
ASCII_AT = HEX_AT + HEX_CHARS + 2  # then two spaces and the bytes as ASCII
ROW_CHARS = ASCII_AT + ROW_BYTES + 1  # a full row and its newline


def hex_rows(frame: bytes) -> list[str]:
    """Offset, 16 bytes in hex, and those printable as ASCII (others as '.')."""
    rows = []
    for offset in range(0, len(frame), ROW_BYTES):
        chunk = frame[offset : offset + ROW_BYTES]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        halves = f"{hexes[:23]}  {hexes[24:]}" if len(chunk) > 8 else hexes
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset:04x}  {halves:<{HEX_CHARS}}  {text}")
    return rows


def hex_ranges(span: Span) -> list[Span]:
    """Where the frame's bytes [start, end) are in the rows of hex_rows joined
    by newlines: for each row they touch, the characters of their hex pairs
    (with the spaces between) and of their ASCII."""

    def hex_at(column: int) -> int:
        return HEX_AT + 3 * column + (column >= 8)

    start, end = span
    out = []
    for row in range(start // ROW_BYTES, (end - 1) // ROW_BYTES + 1) if end > start else ():
        first = max(start - row * ROW_BYTES, 0)
        last = min(end - row * ROW_BYTES, ROW_BYTES) - 1
        at = row * ROW_CHARS
        out.append((at + hex_at(first), at + hex_at(last) + 2))
        out.append((at + ASCII_AT + first, at + ASCII_AT + last + 1))
    return out


def kept_note(kept: int, length: int) -> str:
    """How much of the frame the sample holds."""
    if kept < length:
        return f"{kept} of {length} bytes kept"
    return f"{length} bytes"
