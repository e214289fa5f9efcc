"""A QMP client on the worker's loop: QEMU's machine protocol over a unix
socket, JSON objects one per line. Non-blocking, like everything the worker
does: a command's answer comes to its callback, events to on_event.

The session: QEMU greets ({"QMP": ...}), we send qmp_capabilities, and from
then on every command carries an id that its return (or error) echoes."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
from collections.abc import Callable
from typing import Any

from qnet_tui.lab.loop import Loop

Reply = Callable[[dict[str, Any] | None, str | None], None]  # (return value, error text)
MAX_LINE = 1 << 20


class Qmp:
    def __init__(
        self,
        loop: Loop,
        path: str,
        on_event: Callable[[str, dict[str, Any]], None],
        on_close: Callable[[str], None],
    ) -> None:
        self.loop, self.path = loop, path
        self.on_event, self.on_close = on_event, on_close
        self.sock: socket.socket | None = None
        self.ready = False  # capabilities negotiated: commands may go
        self.buf = bytearray()
        self.waiting: dict[int, Reply] = {}
        self.queued: list[bytes] = []  # commands asked for before the session was ready
        self._ids = itertools.count(1)

    def connect(self) -> None:
        """Raises OSError if QEMU does not serve the socket (yet)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)  # a local socket: connects or fails at once
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self.loop.add(sock.fileno(), self._on_readable)

    def command(self, name: str, arguments: dict[str, Any] | None = None, reply: Reply | None = None) -> None:
        ident = next(self._ids)
        msg: dict[str, Any] = {"execute": name, "id": ident}
        if arguments:
            msg["arguments"] = arguments
        if reply is not None:
            self.waiting[ident] = reply
        line = json.dumps(msg).encode() + b"\n"
        if self.ready:
            self._send(line)
        else:
            self.queued.append(line)

    def _send(self, line: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(line)  # a few hundred bytes into an idle local socket
        except OSError as exc:
            self.close(f"QMP send failed: {exc.strerror}")

    def _on_readable(self, mask: int) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            data, why = b"", exc.strerror
        else:
            why = "QEMU closed its QMP socket"
        if not data:
            self.close(why)
            return
        self.buf += data
        *lines, rest = self.buf.split(b"\n")
        if len(rest) > MAX_LINE:
            self.close("a QMP message too long")
            return
        self.buf = bytearray(rest)
        for line in lines:
            if line.strip():
                self._on_message(line)

    def _on_message(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return  # not ours to judge QEMU's JSON; skip it
        if not isinstance(msg, dict):
            return
        if "QMP" in msg:
            self.command("qmp_capabilities", reply=self._negotiated)
            self._send(self.queued.pop())  # the capabilities command goes first
        elif "event" in msg:
            self.on_event(str(msg["event"]), msg.get("data") or {})
        elif "id" in msg:
            reply = self.waiting.pop(msg["id"], None)
            if reply is not None:
                error = msg.get("error")
                reply(msg.get("return"), f"{error.get('class')}: {error.get('desc')}" if error else None)

    def _negotiated(self, value: dict[str, Any] | None, error: str | None) -> None:
        if error:
            self.close(f"QMP refused capabilities: {error}")
            return
        self.ready = True
        queued, self.queued = self.queued, []
        for line in queued:
            self._send(line)

    def close(self, why: str = "closed") -> None:
        if self.sock is None:
            return
        self.loop.remove(self.sock.fileno())
        with contextlib.suppress(OSError):
            self.sock.close()
        self.sock, self.ready = None, False
        waiting, self.waiting = self.waiting, {}
        for reply in waiting.values():
            reply(None, why)
        self.on_close(why)
