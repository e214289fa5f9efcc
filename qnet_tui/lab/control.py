"""The worker's side of the control socket: owner-only, non-blocking, and a
slow client loses messages rather than slowing the forwarding loop."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from qnet_tui import protocol
from qnet_tui.lab.loop import Loop

CLIENT_BACKLOG = 2 * 1024 * 1024  # bytes queued per client before messages are skipped


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = bytearray()
        self.lines = protocol.LineBuffer()


class ControlServer:
    def __init__(
        self, loop: Loop, path: Path, on_message: Callable[[dict], None], greeting: Callable[[], list[bytes]]
    ) -> None:
        self.loop = loop
        self.path = path
        self.on_message = on_message
        self.greeting = greeting
        self.sock: socket.socket | None = None
        self.clients: dict[int, Client] = {}

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # born 0600: no window in which others may connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(8)
        self.sock = sock
        self.loop.add(sock.fileno(), self._on_accept)

    def _on_accept(self, mask: int) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid not in (0, os.geteuid()):
            conn.close()  # only the lab's owner (or root) may watch or stop it
            return
        conn.setblocking(False)
        client = Client(conn)
        self.clients[conn.fileno()] = client
        self.loop.add(conn.fileno(), lambda m, c=client: self._on_client(c, m), select.EPOLLIN | select.EPOLLRDHUP)
        for message in self.greeting():
            self._send(client, message)

    def _on_client(self, client: Client, mask: int) -> None:
        if mask & select.EPOLLOUT:
            self._flush(client)
        if mask & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop(client)
                return
            try:
                for line in client.lines.feed(data):
                    self.on_message(protocol.decode(line, protocol.CLIENT_TYPES))
            except protocol.ProtocolError:
                self._drop(client)

    def broadcast(self, message: bytes) -> None:
        for client in list(self.clients.values()):
            self._send(client, message)

    def _send(self, client: Client, message: bytes) -> None:
        if client.out:
            if len(client.out) < CLIENT_BACKLOG:
                client.out += message
            return  # a client that does not read misses messages; the next stats line is whole again
        try:
            sent = client.sock.send(message)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(client)
            return
        if sent < len(message):
            client.out += message[sent:]
            self.loop.modify(client.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLOUT)

    def _flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        del client.out[:sent]
        if not client.out:
            self.loop.modify(client.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)

    def _drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        self.loop.remove(fd)
        self.clients.pop(fd, None)
        client.sock.close()

    def close(self) -> None:
        for client in list(self.clients.values()):
            with contextlib.suppress(OSError):
                client.sock.setblocking(True)
                client.sock.settimeout(0.5)
                if client.out:
                    client.sock.sendall(client.out)
            self._drop(client)
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            self.sock.close()
            self.sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
