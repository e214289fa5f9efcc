"""pcapng captures of a hub's frames, as Wireshark and tshark read them.

pcapng rather than pcap for what pcap cannot say. One interface description
block per port of the hub (if_name: the port's node, such as vm1), so
Wireshark's `frame.interface_name` tells which port a frame came in by; its
enhanced packet block is flagged inbound. A frame an emulated fault dropped
(an impairment's loss or queue, a pulled cable) is written too, on the port
it was going out to (outbound) or coming in from (inbound), with a comment
naming the reason and the link direction (`frame.comment`).

A hub holds a Captures (a fan-out) while anything captures it, else None:
the forwarding path's test is one `is not None`. Each Sink is one pcapng
section of its own (a header, then interfaces as ports appear): a file (the
app's `w`), a stream into a pipe (`qnet-tui capture`), or a ring that keeps
the last seconds in memory until asked to write them. A sink may carry a
filter (qnet_tui/pcapfilter.py), run per frame only for that sink.
Little-endian, microsecond timestamps (pcapng's default)."""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from qnet_tui.pcapfilter import Filter

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT, OPT_COMMENT = 0, 1
IF_NAME, IF_DESCRIPTION = 2, 3
EPB_FLAGS = 2  # direction bits 0-1: 1 inbound, 2 outbound
INBOUND, OUTBOUND = 1, 2
EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, captured, original
_LENGTH = struct.Struct("<I")
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4: to the next 32-bit boundary
RING_MAX_BYTES = 256 * 1024 * 1024  # what a ring keeps at most, whatever its seconds
_IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers one writev takes


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


_END = _option(OPT_ENDOFOPT, b"")
INBOUND_OPTIONS = _option(EPB_FLAGS, struct.pack("<I", INBOUND)) + _END


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header() -> bytes:
    return _block(
        SHB,
        struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _option(4, b"qnet-tui") + _END,  # shb_userappl
    )


def interface_block(port: str, description: str) -> bytes:
    options = _option(IF_NAME, port.encode()) + _option(IF_DESCRIPTION, description.encode()) + _END
    return _block(IDB, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN) + options)


def drop_comment(reason: str, way: str) -> str:
    """What a dropped frame's comment says: qnet-tui: dropped (impair-loss) on hub1 -> vm2."""
    return f"qnet-tui: dropped ({reason}) on {way}"


def missed_comment(missed: int, total: int) -> str:
    return f"qnet-tui: the reader missed {missed} frames before this one ({total} in all): it read too slowly"


def drop_options(reason: str, way: str, outbound: bool) -> bytes:
    flags = struct.pack("<I", OUTBOUND if outbound else INBOUND)
    return _option(OPT_COMMENT, drop_comment(reason, way).encode()) + _option(EPB_FLAGS, flags) + _END


class Sink:
    """One pcapng section: a header, an interface per port (numbered in
    the order they appear), a block per frame. Subclasses say where the
    bytes go. A failed write ends the sink, never the forwarding: `error`
    says why, and the worker takes it off its hub."""

    kind = "sink"

    def __init__(self, filter: Filter | None = None) -> None:
        self.filter = filter
        self.hub = ""  # what the interfaces' descriptions say (set by start)
        self.interfaces: dict[str, int] = {}
        self.frames = 0
        self.drops = 0  # of frames, those written as dropped
        self.bytes = 0
        self.error: str | None = None
        self.owner: object = None  # the control client it ends with (a stream, a ring), if any
        self.note = b""  # an option the next packet block carries (a stream's missed frames)

    def start(self, hub: str, ports: Iterable[str]) -> None:
        self.hub = hub
        self._write(section_header())
        for port in ports:
            self._interface(port)

    def _interface(self, port: str) -> int:
        index = self.interfaces[port] = len(self.interfaces)
        self._write_interface(interface_block(port, self.hub))
        return index

    def packet(self, port: str, ts: int, frame: bytes | memoryview, options: bytes, dropped: bool = False) -> None:
        """One frame at port, at ts (microseconds since the epoch). On the
        forwarding path: one block, one write."""
        if self.error is not None or (self.filter is not None and not self.filter.matches(frame)):
            return
        iface = self.interfaces.get(port)
        if iface is None:  # a port a running lab added: its interface first
            iface = self._interface(port)
        length = len(frame)
        if length > SNAPLEN:
            frame = frame[:SNAPLEN]
        kept = len(frame)
        if self.note:
            options = self.note + options
        total = EPB_HEAD.size + kept + (-kept % 4) + len(options) + 4
        head = EPB_HEAD.pack(EPB, total, iface, ts >> 32, ts & 0xFFFFFFFF, kept, length)
        if self._write_packet(ts, b"".join((head, frame, _PADS[kept & 3], options, _LENGTH.pack(total)))):
            self.frames += 1
            self.drops += dropped
            self.note = b""

    def _write(self, data: bytes) -> bool:
        raise NotImplementedError

    def _write_interface(self, block: bytes) -> None:
        self._write(block)

    def _write_packet(self, ts: int, block: bytes) -> bool:
        return self._write(block)

    def close(self) -> None:
        pass


class Capture(Sink):
    """A file (the app's `w`): a new one, never over someone's."""

    kind = "file"

    def __init__(self, path: Path, filter: Filter | None = None) -> None:
        super().__init__(filter)
        self.path = path
        # O_EXCL: never write through a link or over someone's file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.file = os.fdopen(fd, "wb", buffering=1 << 16)

    def _write(self, data: bytes) -> bool:
        try:
            self.file.write(data)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return False
        self.bytes += len(data)
        return True

    def close(self) -> None:
        try:
            self.file.close()  # flushes: the last write may fail here
        except OSError as exc:
            self.error = self.error or exc.strerror or str(exc)

    def stats(self) -> dict:
        return {"path": str(self.path), "frames": self.frames, "bytes": self.bytes}


class Stream(Sink):
    """A pipe to a reader (`qnet-tui capture`), written non-blocking: when
    it is full, frames are not written but counted (`missed`), and the next
    frame written says so in a comment. A block the pipe took in part is
    finished before anything else (the stream stays whole); headers and
    interfaces are never missed."""

    kind = "stream"

    def __init__(self, fd: int, filter: Filter | None = None) -> None:
        super().__init__(filter)
        os.set_blocking(fd, False)
        self.fd = fd
        self.pending = bytearray()  # what must go out before the next block
        self.missed = self.missed_total = 0

    def _flush(self) -> bool:
        try:
            sent = os.write(self.fd, self.pending)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._failed(exc)
            return False
        del self.pending[:sent]
        return not self.pending

    def _failed(self, exc: OSError) -> None:
        self.error = "the reader went away" if exc.errno == errno.EPIPE else (exc.strerror or str(exc))

    def _write(self, data: bytes) -> bool:  # a header or an interface: kept until it can go
        self.pending += data
        self.bytes += len(data)
        self._flush()
        return True

    def _write_packet(self, ts: int, block: bytes) -> bool:
        if (self.pending and not self._flush()) or self.error is not None:
            self._miss()
            return False
        try:
            sent = os.write(self.fd, block)
        except BlockingIOError:
            self._miss()
            return False
        except OSError as exc:
            self._failed(exc)
            return False
        if sent < len(block):
            self.pending += block[sent:]
        self.bytes += len(block)
        return True

    def _miss(self) -> None:
        self.missed += 1
        self.missed_total += 1
        self.note = _option(OPT_COMMENT, missed_comment(self.missed, self.missed_total).encode())

    def packet(self, port: str, ts: int, frame: bytes | memoryview, options: bytes, dropped: bool = False) -> None:
        noted = bool(self.note)
        super().packet(port, ts, frame, options, dropped)
        if noted and not self.note:  # the count went out with that frame: a new one starts
            self.missed = 0

    def close(self) -> None:
        if self.fd >= 0:
            if self.pending and self.error is None:
                self._flush()  # a last try; the reader sees a cut block otherwise, as from any dying writer
            os.close(self.fd)
            self.fd = -1


class Ring(Sink):
    """The last `seconds` of frames in memory (at most max_bytes of them),
    written out as a whole pcapng on demand."""

    kind = "ring"

    def __init__(self, seconds: float, filter: Filter | None = None, max_bytes: int = RING_MAX_BYTES) -> None:
        super().__init__(filter)
        self.seconds, self.max_bytes = seconds, max_bytes
        self.window = int(seconds * 1_000_000)
        self.head = b""
        self.interface_blocks: list[bytes] = []
        self.kept: deque[tuple[int, bytes]] = deque()
        self.kept_bytes = 0

    def _write(self, data: bytes) -> bool:
        self.head = data
        return True

    def _write_interface(self, block: bytes) -> None:
        self.interface_blocks.append(block)

    def _write_packet(self, ts: int, block: bytes) -> bool:
        kept = self.kept
        kept.append((ts, block))
        self.kept_bytes += len(block)
        oldest = ts - self.window
        while kept and (kept[0][0] < oldest or self.kept_bytes > self.max_bytes):
            self.kept_bytes -= len(kept.popleft()[1])
        return True

    def blocks(self, now: int | None = None) -> list[bytes]:
        """The frames of the last `seconds` up to now (microseconds)."""
        oldest = (time.time_ns() // 1000 if now is None else now) - self.window
        return [block for ts, block in self.kept if ts >= oldest]

    def contents(self) -> tuple[list[bytes], int]:
        """What a save writes, as of now: the blocks, and how many are frames.
        Cheap enough for the loop: a list of the (immutable) blocks, no copy."""
        frames = self.blocks()
        return [self.head, *self.interface_blocks, *frames], len(frames)

    def save(self, path: Path) -> tuple[int, int]:
        """Write the kept frames to path (a new file): how many, and bytes."""
        blocks, frames = self.contents()
        return frames, write_new(new_file(path), path, blocks)


def new_file(path: Path) -> int:
    """A file created for writing; O_EXCL: never through a link or over someone's file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)


def write_new(fd: int, path: Path, blocks: list[bytes]) -> int:
    """Write blocks to fd, the file new_file made at path, and close it: the
    bytes written. On a failure (the disk full) what was written is removed
    and the OSError raised. Meant for a thread (lab/jobs.py): writev takes
    IOV_MAX blocks a call, copies nothing, and leaves the GIL to the loop."""
    try:
        try:
            total = 0
            for start in range(0, len(blocks), _IOV_MAX):
                batch = blocks[start : start + _IOV_MAX]
                size = sum(map(len, batch))
                sent = os.writev(fd, batch)
                if sent < size:  # cut short: the rest from where it stopped (a next write says why)
                    rest = memoryview(b"".join(batch))[sent:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
                total += size
        finally:
            os.close(fd)  # a network file system may say only here that the data did not go
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return total


class Captures:
    """What captures a hub: its sinks, each written in turn."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.file: Capture | None = None  # the app's `w` capture, the one HubStats tell

    def write(self, port: str, frame: bytes | memoryview) -> None:
        """A frame that entered the hub through port."""
        ts = time.time_ns() // 1000
        for sink in self.sinks:
            sink.packet(port, ts, frame, INBOUND_OPTIONS)

    def dropped(self, port: str, frame: bytes | memoryview, reason: str, way: str, outbound: bool = True) -> None:
        """A frame an emulated fault dropped on `way` ("hub1 -> vm2") at
        port: leaving the hub to it (outbound) or entering from it."""
        ts = time.time_ns() // 1000
        options = drop_options(reason, way, outbound)
        for sink in self.sinks:
            sink.packet(port, ts, frame, options, dropped=True)
