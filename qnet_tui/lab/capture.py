"""pcapng capture of a hub's frames, as Wireshark and tshark read them.

pcapng rather than pcap for one thing pcap cannot say: a frame an emulated
fault dropped (an impairment's loss or queue, a pulled cable) is written too,
with a comment naming the reason and the link direction, so Wireshark shows
it apart from the frames delivered (`frame.comment`, or "Packet comments").
One section header, one Ethernet interface, then an enhanced packet block
per frame; little-endian, microsecond timestamps (pcapng's default)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT, OPT_COMMENT = 0, 1
EPB_FLAGS = 2  # direction bits 0-1: 1 inbound, 2 outbound
INBOUND, OUTBOUND = 1, 2
EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, captured, original
_LENGTH = struct.Struct("<I")
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4: to the next 32-bit boundary


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _header() -> bytes:
    shb = _block(
        SHB,
        struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
        + _option(4, b"qnet-tui")  # shb_userappl
        + _option(OPT_ENDOFOPT, b""),
    )
    idb = _block(IDB, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN))
    return shb + idb


def drop_comment(reason: str, way: str) -> str:
    """What a dropped frame's comment says: qnet-tui: dropped (impair-loss) on hub1 -> vm2."""
    return f"qnet-tui: dropped ({reason}) on {way}"


class Capture:
    """Writes every frame handed to it; the hub calls write() on its
    forwarding path only while a capture runs, and dropped() where an
    emulated fault drops a frame (off that path). A failed write (a full
    disk) ends the capture, never the forwarding: `error` says why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # O_EXCL: never write through a link or over someone's file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.file = os.fdopen(fd, "wb", buffering=1 << 16)
        header = _header()
        self.file.write(header)
        self.frames = 0
        self.drops = 0  # of frames, those written as dropped
        self.bytes = len(header)
        self.error: str | None = None

    def write(self, frame: bytes | memoryview, options: bytes = b"") -> None:
        if self.error:
            return
        ts = int(time.time() * 1_000_000)
        length = len(frame)
        if length > SNAPLEN:
            frame = frame[:SNAPLEN]
        kept = len(frame)
        total = EPB_HEAD.size + kept + (-kept % 4) + len(options) + 4
        head = EPB_HEAD.pack(EPB, total, 0, ts >> 32, ts & 0xFFFFFFFF, kept, length)
        try:  # one write per frame: this runs on the forwarding path
            self.file.write(b"".join((head, frame, _PADS[kept & 3], options, _LENGTH.pack(total))))
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return
        self.frames += 1
        self.bytes += total

    def dropped(self, frame: bytes | memoryview, reason: str, way: str, outbound: bool = True) -> None:
        """A frame an emulated fault dropped on `way` ("hub1 -> vm2"): written
        with a comment saying so, and flagged as leaving (or entering) the hub."""
        comment = drop_comment(reason, way).encode()
        flags = struct.pack("<I", OUTBOUND if outbound else INBOUND)
        self.write(frame, _option(OPT_COMMENT, comment) + _option(EPB_FLAGS, flags) + _option(OPT_ENDOFOPT, b""))
        if not self.error:
            self.drops += 1

    def close(self) -> None:
        try:
            self.file.close()  # flushes: the last write may fail here
        except OSError as exc:
            self.error = self.error or exc.strerror or str(exc)

    def stats(self) -> dict:
        return {"path": str(self.path), "frames": self.frames, "bytes": self.bytes}
