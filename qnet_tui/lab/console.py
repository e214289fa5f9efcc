"""A VM guest's serial console in the worker: the one connection to QEMU's
console socket (QEMU serves one peer at a time), the last SCROLLBACK bytes,
and the control clients watching it. Everything the console printed is also
in QEMU's own log file next to the socket (logfile=), whoever watched.

QEMU's socket goes back to listening when its peer hangs up, and a
restarted VM serves a new one: the relay redials until it is ended."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

from qnet_tui import protocol
from qnet_tui.lab.control import Client
from qnet_tui.lab.loop import Loop

SCROLLBACK = 64 * 1024
REDIAL_S = 0.2
Send = Callable[[Client, bytes], None]


class ConsoleRelay:
    def __init__(
        self, loop: Loop, guest: str, path: str, send: Send, on_output: Callable[[bytes], None] = lambda data: None
    ) -> None:
        self.loop, self.guest, self.path, self.send = loop, guest, path, send
        self.on_output = on_output  # the VM's state follows what it prints (booting, then ready)
        self.sock: socket.socket | None = None
        self.scrollback = bytearray()
        self.watchers: set[Client] = set()
        self.ended = False

    def start(self) -> None:
        self._dial()

    def _dial(self) -> None:
        if self.ended or self.sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)  # local: connects or fails at once
        except OSError:
            sock.close()
            self.loop.call_later(REDIAL_S, self._dial)  # the VM is (re)starting
            return
        sock.setblocking(False)
        self.sock = sock
        self.loop.add(sock.fileno(), self._on_readable)

    def _on_readable(self, mask: int) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._hang_up()
            self.loop.call_later(REDIAL_S, self._dial)
            return
        self.scrollback += data
        del self.scrollback[:-SCROLLBACK]
        self.on_output(data)
        message = protocol.encode(protocol.ConsoleOutput.of(self.guest, data))
        for client in list(self.watchers):
            self.send(client, message)

    def _hang_up(self) -> None:
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def watch(self, client: Client, on: bool) -> None:
        if not on:
            self.watchers.discard(client)
        elif client not in self.watchers:
            self.watchers.add(client)
            if self.scrollback:
                self.send(client, protocol.encode(protocol.ConsoleOutput.of(self.guest, bytes(self.scrollback))))

    def type(self, data: bytes) -> bool:
        """Bytes typed into the console; False if it is not connected."""
        if self.sock is None:
            return False
        try:
            self.sock.sendall(data)  # keys, a line: the guest's UART takes them at once
        except BlockingIOError:
            return False
        except OSError:
            self._hang_up()
            self.loop.call_later(REDIAL_S, self._dial)
            return False
        return True

    def end(self) -> None:
        self.ended = True
        self._hang_up()
        self.watchers.clear()
