"""Replacing a file whole or not at all: a topology's save and the lab's
state file both go through here."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class WriteFailed(Exception):
    """The file was not replaced and is as it was; str() says why."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace the file at path (a link itself, not what it points to) with
    data: a temporary file in the same folder, fsync, rename, fsync the
    folder. The new file keeps the old one's mode; a new one gets the
    umask's. Raises WriteFailed, leaving no temporary file behind."""
    path = Path(path)
    folder = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as exc:
        raise WriteFailed(exc.strerror or str(exc)) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WriteFailed(f"{exc.strerror} (in folder {folder})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise WriteFailed(exc.strerror or str(exc)) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename happened; some file systems cannot fsync a folder


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
