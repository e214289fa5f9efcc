"""The worker's side of the control socket: owner-only, non-blocking, and a
slow client loses messages rather than slowing the forwarding loop.

Nothing a client sends stops the lab: a malformed or refused message gets an
`error` reply, a client past MAX_CLIENTS (or past the process's fd limit) is
told so and closed."""

from __future__ import annotations

import array
import contextlib
import errno
import os
import select
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from qnet_tui import protocol
from qnet_tui.lab.loop import Loop

CLIENT_BACKLOG = 2 * 1024 * 1024  # bytes queued per client before messages are skipped
MAX_CLIENTS = 64
MAX_FDS = 4  # file descriptors one read of a client takes (a capture stream's pipe is one); more are closed
# accept() fails this way when the process or the machine is out of fds or memory.
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class MessageError(Exception):
    """A client message the worker refuses; the text is the client's reply."""


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = bytearray()
        self.lines = protocol.LineBuffer(protocol.MAX_CLIENT_LINE)
        self.fds: list[int] = []  # passed with its last read (SCM_RIGHTS); what no message takes is closed

    @property
    def gone(self) -> bool:
        """Its connection closed (a reply that came late has nobody to go to)."""
        return self.sock.fileno() < 0

    def take_fd(self) -> int | None:
        """The fd that came with the message being handled, now the handler's to close."""
        return self.fds.pop(0) if self.fds else None

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


class ControlServer:
    def __init__(
        self,
        loop: Loop,
        path: Path,
        on_message: Callable[[protocol.Message, Client], None],
        greeting: Callable[[], list[bytes]],
        on_fault: Callable[[str], None] = lambda text: None,
        on_drop: Callable[[Client], None] = lambda client: None,
    ) -> None:
        self.loop = loop
        self.path = path
        self.on_message = on_message  # raises MessageError to refuse a message
        self.greeting = greeting
        self.on_fault = on_fault  # a handler's own failure: the worker logs it
        self.on_drop = on_drop  # a client went: forget what it watched
        self.sock: socket.socket | None = None
        self.clients: dict[int, Client] = {}
        self._spare = -1  # an fd held back, so a client can still be told "too many"

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._spare >= 0:
            os.close(self._spare)
            self._spare = -1
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # born 0600: no window in which others may connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(8)
        self.sock = sock
        self._spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.loop.add(sock.fileno(), self._on_accept)

    def _on_accept(self, mask: int) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                self._turn_away()
            return  # ECONNABORTED and the like: that client is gone already
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid not in (0, os.geteuid()):
            conn.close()  # only the lab's owner (or root) may watch or stop it
            return
        if len(self.clients) >= MAX_CLIENTS:
            self._refuse(conn, f"too many control clients ({MAX_CLIENTS}); close one and try again")
            return
        conn.setblocking(False)
        client = Client(conn)
        self.clients[conn.fileno()] = client
        self.loop.add(conn.fileno(), lambda m, c=client: self._on_client(c, m), select.EPOLLIN | select.EPOLLRDHUP)
        for message in self.greeting():
            self._send(client, message)

    def _turn_away(self) -> None:
        """Out of fds: the pending client would keep the listener readable, and
        the loop spinning. Free the spare fd, accept it, tell it, close it."""
        if self._spare >= 0:
            os.close(self._spare)
            self._spare = -1
        try:
            conn, _ = self.sock.accept()
        except OSError:
            conn = None
        if conn is not None:
            self._refuse(conn, "the lab has no file descriptors left for another control client; try later")
        with contextlib.suppress(OSError):
            self._spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    @staticmethod
    def _refuse(conn: socket.socket, why: str) -> None:
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.send(protocol.encode(protocol.Error(why)))
        conn.close()

    def _on_client(self, client: Client, mask: int) -> None:
        if mask & select.EPOLLOUT:
            self._flush(client)
        if mask & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = self._receive(client)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            try:
                if not data:
                    self._drop(client)
                    return
                try:
                    lines = client.lines.feed(data)
                except protocol.ProtocolError as exc:
                    self._send(client, protocol.encode(protocol.Error(str(exc))))
                    self._drop(client)  # no telling where its next message starts
                    return
                for line in lines:
                    if client.sock.fileno() < 0:
                        return  # a message before this one stopped the lab
                    self._handle(client, line)
            finally:
                client.close_fds()

    @staticmethod
    def _receive(client: Client) -> bytes:
        """What the client sent, and the fds it passed with it (into client.fds)."""
        data, ancillary, _flags, _ = client.sock.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                client.fds.extend(fds)
        return data

    def _handle(self, client: Client, line: bytes) -> None:
        if len(line) > protocol.MAX_CLIENT_LINE:
            msg: protocol.Message | protocol.Malformed = protocol.Malformed(
                f"message longer than {protocol.MAX_CLIENT_LINE} bytes"
            )
        else:
            msg = protocol.decode(line, protocol.CLIENT)

        def handle() -> None:
            if isinstance(msg, protocol.Malformed):
                raise MessageError(msg.reason)
            self.on_message(msg, client)

        self.answer(client, handle, f"handling {line[:80]!r}")

    def answer(self, client: Client, handle: Callable[[], None], what: str) -> None:
        """Run handle for client: a message, or the end of one that a job
        (lab/jobs.py) finished later. A MessageError it raises is the client's
        reply; a fault of its own is said to the client too, and logged."""
        try:
            handle()
        except MessageError as exc:
            self.send(client, protocol.encode(protocol.Error(str(exc))))
        except Exception as exc:  # a fault of the handler: the client is told, the lab goes on
            self.send(client, protocol.encode(protocol.Error(f"internal error: {type(exc).__name__}: {exc}")))
            self.on_fault(what)

    def broadcast(self, message: bytes) -> None:
        for client in list(self.clients.values()):
            self._send(client, message)

    def send(self, client: Client, message: bytes) -> None:
        """A message to one client (what it asked to watch)."""
        if client.sock.fileno() >= 0:
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
        self.on_drop(client)

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
        if self._spare >= 0:
            os.close(self._spare)
            self._spare = -1
