"""The cpio "newc" format (SVR4, no CRC), the one the kernel unpacks as an
initramfs, written in Python so that no cpio program is needed.

Each entry is a 110-byte ASCII header ("070701" and thirteen 8-digit hex
fields), the path and a NUL padded to a multiple of 4, then the data padded to
a multiple of 4; a "TRAILER!!!" entry ends the archive. Times are 0 and owners
root, so the same input gives the same bytes."""

from __future__ import annotations

import stat
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    path: str  # relative, no leading "/" ("init", "bin/busybox")
    mode: int  # type and permission bits, as st_mode
    data: bytes = b""  # a file's content, a symlink's target
    rdev: tuple[int, int] = (0, 0)  # a device node's major, minor


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, mode: int, nlink: int, size: int, rdev: tuple[int, int], namesize: int) -> bytes:
    # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], namesize, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _member(ino: int, entry: Entry, nlink: int) -> bytes:
    name = entry.path.encode() + b"\0"
    head = _header(ino, entry.mode, nlink, len(entry.data), entry.rdev, len(name)) + name
    return head + _pad(len(head)) + entry.data + _pad(len(entry.data))


def archive(entries: list[Entry]) -> bytes:
    """A newc archive of entries, in order (a directory before what it holds)."""
    out = []
    for ino, entry in enumerate(entries, start=1):
        if entry.path.startswith("/") or not entry.path or "\0" in entry.path:
            raise ValueError(f"cpio: bad path {entry.path!r}")
        if entry.data and not (stat.S_ISREG(entry.mode) or stat.S_ISLNK(entry.mode)):
            raise ValueError(f"cpio: {entry.path}: only files and symlinks carry data")
        out.append(_member(ino, entry, 2 if stat.S_ISDIR(entry.mode) else 1))
    out.append(_member(0, Entry(TRAILER, 0), 1))
    return b"".join(out)
