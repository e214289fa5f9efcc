"""pcap capture of a hub's frames, as Wireshark and tshark read them."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


class Capture:
    """Writes every frame handed to it; the hub calls write() on its
    forwarding path only while a capture runs. A failed write (a full disk)
    ends the capture, never the forwarding: `error` says why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # O_EXCL: never write through a link or over someone's file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.file = os.fdopen(fd, "wb", buffering=1 << 16)
        self.file.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self.frames = 0
        self.bytes = 24
        self.error: str | None = None

    def write(self, frame: bytes | memoryview) -> None:
        if self.error:
            return
        now = time.time()
        length = len(frame)
        kept = min(length, SNAPLEN)
        try:
            self.file.write(struct.pack("<IIII", int(now), int(now % 1 * 1_000_000), kept, length))
            self.file.write(frame[:kept])
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return
        self.frames += 1
        self.bytes += 16 + kept

    def close(self) -> None:
        try:
            self.file.close()  # flushes: the last write may fail here
        except OSError as exc:
            self.error = self.error or exc.strerror or str(exc)

    def stats(self) -> dict:
        return {"path": str(self.path), "frames": self.frames, "bytes": self.bytes}
