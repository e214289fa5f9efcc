"""Unix socket paths of a lab: where a node's path is, whether the worker
may bind there, and removing exactly the socket files it made.

A relative path lives in the lab's private runtime folder and must stay
there; an absolute one is used only on a node marked `external`. The worker
runs as root, so it never takes over a path someone else serves, never
unlinks a file it did not make, and keeps a record of every path it binds
(in the state file: before the bind, then with the file's device and inode)
so that a stop, the watchdog or the next run removes that very file and no
other."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qnet_tui.model.values import LAB_FILES  # the worker's own files, in the lab's folder
from qnet_tui.model.values import UNIX_PATH_MAX as SUN_PATH_MAX


class PathError(Exception):
    """A path the worker will not use; the message names the node and the path."""


def _inside(folder: str, real: str) -> bool:
    return real != folder and os.path.commonpath([folder, real]) == folder


def unix_path(node: str, text: str, runtime_dir: Path, external: bool = False) -> str:
    """The path node's `text` means: relative in the lab's folder, absolute
    only when the node says external. Refuses a path that leads out of the
    folder (`..`, a symlink), one of the lab's own files, and one too long
    for a unix socket address."""
    if not text or "\0" in text:
        raise PathError(f"{node}: {text!r} is not a usable unix socket path")
    folder = os.path.realpath(runtime_dir)
    if os.path.isabs(text):
        if not external:
            raise PathError(
                f"{node}: {text} is outside the lab's folder; set external: true if another program serves "
                "or uses it, or give a relative path (it lives in the lab's folder)"
            )
        path = text
    else:
        path = os.path.join(runtime_dir, text)
        # realpath follows every symlink on the way, the last one too: a
        # socket path must not lead to a file elsewhere.
        if not _inside(folder, os.path.realpath(path)):
            raise PathError(f"{node}: {text} leads out of the lab's folder {runtime_dir}; keep it inside")
    real = os.path.realpath(path)
    if os.path.dirname(real) == folder and os.path.basename(real) in LAB_FILES:
        raise PathError(f"{node}: {text} is the lab's own {os.path.basename(real)}; choose another name")
    size = len(os.fsencode(path))
    if size > SUN_PATH_MAX:
        raise PathError(
            f"{node}: the socket path {path} is {size} bytes long; a unix socket path holds at most {SUN_PATH_MAX}"
        )
    return path


def _peer(probe: socket.socket) -> str:
    """Who serves the socket probe is connected to, as far as the kernel says."""
    pid, _, _ = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if pid <= 0:  # a datagram socket tells no peer
        return "another program"
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f"{f.read().strip()} (pid {pid})"
    except OSError:
        return f"pid {pid}"


def served_by(path: str) -> str | None:
    """Who serves the unix socket at path (stream, datagram or seqpacket), or
    None when nobody does (a stale socket file)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        with socket.socket(socket.AF_UNIX, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC) as probe:
            err = probe.connect_ex(path)
            if err == errno.EPROTOTYPE:
                continue  # served, but as another type: try it
            if err in (errno.ECONNREFUSED, errno.ENOENT):
                return None
            if err in (0, errno.EAGAIN, errno.EINPROGRESS):  # EAGAIN: its backlog is full
                return _peer(probe) if err == 0 else "another program"
            return f"another program ({os.strerror(err)})"  # cannot tell: assume someone
    return "another program"


def _matches(path: str, record: dict[str, Any]) -> bool:
    """The file at path is the socket the record says the lab made."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError):  # ValueError: a NUL in a damaged state file's path
        return False
    return (
        stat.S_ISSOCK(st.st_mode)
        and st.st_uid == os.geteuid()
        and (st.st_dev, st.st_ino) == (record.get("dev"), record.get("ino"))
    )


class SocketFiles:
    """The unix socket files of one run of a lab. `records` is the list the
    state file holds; on_record saves it."""

    def __init__(self, runtime_dir: Path, records: list[dict[str, Any]], on_record: Callable[[], None]) -> None:
        self.runtime_dir = runtime_dir
        self.records = records
        self.on_record = on_record

    def path(self, node: str, text: str, external: bool = False) -> str:
        return unix_path(node, text, self.runtime_dir, external)

    def bind(self, node: str, sock: socket.socket, path: str) -> None:
        """Bind sock to path (from path()), recorded; PathError if the path is
        not free for this lab, OSError if bind fails."""
        self._clear(node, path)
        # Recorded before it exists, as namespaces are; the inode once it does.
        record: dict[str, Any] = {"node": node, "path": path, "dev": None, "ino": None}
        self.records.append(record)
        self.on_record()
        try:
            sock.bind(path)
        except OSError:
            self.records.remove(record)  # nothing was made
            self.on_record()
            raise
        st = os.lstat(path)
        record["dev"], record["ino"] = st.st_dev, st.st_ino
        self.on_record()

    def _clear(self, node: str, path: str) -> None:
        """Make sure nothing is at path, removing only a stale socket in the lab's own folder."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        mine = next((r for r in self.records if _matches(path, r)), None)
        if mine is not None:
            raise PathError(f"{node}: {path} is already the socket of {mine['node']} in this lab")
        if not stat.S_ISSOCK(st.st_mode):
            raise PathError(f"{node}: {path} exists and is not a socket; choose another path")
        who = served_by(path)
        if who is not None:
            raise PathError(f"{node}: {path} is already served by {who}; stop it or choose another path")
        if _inside(os.path.realpath(self.runtime_dir), os.path.realpath(path)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale, and the folder is the lab's alone
            return
        raise PathError(
            f"{node}: {path} is a socket this lab did not make and nobody serves; "
            "remove it yourself if it is stale, or choose another path"
        )

    def release(self, node: str, path: str) -> None:
        """Unlink the socket file node bound at path if it is still the one
        it made; forget it either way."""
        for record in [r for r in self.records if r["node"] == node and r["path"] == path]:
            if _matches(path, record):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self.records.remove(record)
            self.on_record()

    def release_all(self) -> None:
        for record in list(self.records):
            self.release(record["node"], record["path"])


def remove_recorded(records: Any, log: Callable[[str], None] | None = None) -> list[str]:
    """After a crash: unlink each recorded socket file that is still the very
    one the dead run made (a socket, same device and inode). Returns the paths removed."""
    removed = []
    for record in records if isinstance(records, list) else []:
        path = record.get("path") if isinstance(record, dict) else None
        if not isinstance(path, str):
            continue
        if _matches(path, record):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError as exc:  # the rest of the clean-up goes on
                if log:
                    log(f"cannot remove {path}: {exc.strerror}")
        elif record.get("ino") is None and os.path.lexists(path) and log:
            log(f"left {path} alone: a killed run was binding it but had not yet recorded which file it made")
    return removed
