"""Socket ports that speak QEMU's wire formats, so a real QEMU plugs in:

- stream (unix or TCP; `-netdev stream` / `-netdev socket,listen|connect`):
  each frame preceded by its length, 4 bytes big-endian;
- dgram (UDP unicast or multicast, or unix datagrams; `-netdev dgram` /
  `-netdev socket,mcast|udp`): one frame per datagram.

A peer that hangs up, sends an impossible length or garbage is dropped with a
logged reason; the port then waits for (or dials) the next one."""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
from collections.abc import Callable, Iterator

from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import BATCH, Port
from qnet_tui.lab.unixpaths import PathError, SocketFiles
from qnet_tui.model.values import split_host_port

MAX_FRAME = 69632  # QEMU's NET_BUFSIZE: the largest frame its stream reader takes
OUT_LIMIT = 4 * 1024 * 1024  # bytes queued for a slow stream peer before frames drop
RECONNECT_S = 1.0
Log = Callable[[str, str], None]  # (level, message)

IN = select.EPOLLIN | select.EPOLLRDHUP
OUT = select.EPOLLOUT


def inet_address(text: str, kind: int) -> tuple[int, tuple]:
    """'HOST:PORT' -> (family, sockaddr), resolving names once, at start."""
    host, port = split_host_port(text)
    info = socket.getaddrinfo(host, port, type=kind)
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr


class StreamPort(Port):
    kind = "stream"

    def __init__(
        self,
        name: str,
        loop: Loop,
        log: Log,
        family: str,
        mode: str,
        address: str,
        files: SocketFiles,
        external: bool = False,
    ) -> None:
        super().__init__(name)
        self.loop, self.log = loop, log
        self.files = files
        self.mode = mode
        self.address_text = address
        self.connected = False
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.path: str | None = None
        self.bound = False  # self.path is a socket file this port made
        if family == "unix":
            self.path = files.path(name, address, external)
            self.family, self.sockaddr = socket.AF_UNIX, self.path
        else:
            self.family, self.sockaddr = inet_address(address, socket.SOCK_STREAM)
        self._dial_failed_logged = False

    # -- set-up ----------------------------------------------------------------

    def start(self) -> None:
        if self.mode == "listen":
            sock = socket.socket(self.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            try:
                if self.path:
                    self.files.bind(self.name, sock, self.path)
                    self.bound = True
                else:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(self.sockaddr)
                sock.listen(4)
            except PathError:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                self._unbind()
                where = self.path or self.address_text
                raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}") from None
            self.listener = sock
            self.loop.add(sock.fileno(), self._on_accept)
        else:
            self._dial()

    def _on_accept(self, mask: int) -> None:
        try:
            conn, peer = self.listener.accept()
        except BlockingIOError:
            return
        if self.conn is not None:
            # QEMU's stream server too serves one peer at a time.
            self.log("warning", f"{self.name}: refused a second peer while one is connected")
            conn.close()
            return
        self._attach(conn, f"peer {peer or 'on ' + self.address_text} connected")

    def _dial(self) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        err = sock.connect_ex(self.sockaddr)
        if err in (0, errno.EINPROGRESS):
            self.conn = sock
            self.loop.add(sock.fileno(), self._on_connect_done, OUT)
            return
        sock.close()
        self._retry(os.strerror(err))

    def _on_connect_done(self, mask: int) -> None:
        sock = self.conn
        self.loop.remove(sock.fileno())
        self.conn = None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            sock.close()
            self._retry(os.strerror(err))
            return
        self._dial_failed_logged = False
        self._attach(sock, f"connected to {self.address_text}")

    def _retry(self, reason: str) -> None:
        if not self._dial_failed_logged:
            self.log(
                "warning",
                f"{self.name}: cannot connect to {self.address_text} ({reason}); retrying every {RECONNECT_S:g} s",
            )
            self._dial_failed_logged = True
        self.loop.call_later(RECONNECT_S, self._dial_if_idle)

    def _dial_if_idle(self) -> None:
        if self.conn is None and self.loop.running:
            self._dial()

    def _attach(self, conn: socket.socket, message: str) -> None:
        conn.setblocking(False)  # accept() may hand back a blocking socket
        self.conn = conn
        self.connected = True
        self.inbuf.clear()
        self.outbuf.clear()
        self.loop.add(conn.fileno(), self._on_event, IN)
        self.log("info", f"{self.name}: {message}")

    def drop_peer(self, reason: str, level: str = "warning") -> None:
        if self.conn is None:
            return
        self.loop.remove(self.conn.fileno())
        self.conn.close()
        self.conn = None
        self.connected = False
        self.inbuf.clear()
        self.outbuf.clear()
        self.log(level, f"{self.name}: peer dropped: {reason}")
        if self.mode == "connect" and self.loop.running:
            self.loop.call_later(RECONNECT_S, self._dial_if_idle)

    # -- frames ------------------------------------------------------------------

    def send(self, frame: bytes, segments: int, length: int) -> None:
        conn = self.conn
        if conn is None or not self.connected:
            self.dropped("gone", segments, length)
            return
        if length > MAX_FRAME:
            self.dropped("oversized", segments, length)
            return
        data = struct.pack(">I", length) + frame
        if self.outbuf:
            if len(self.outbuf) > OUT_LIMIT:
                self.dropped("full", segments, length)
                return
            self.outbuf += data
        else:
            try:
                sent = conn.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.dropped("gone", segments, length)
                self.drop_peer(f"send failed: {exc.strerror}")
                return
            if sent < len(data):
                self.outbuf += data[sent:]
                self.loop.modify(conn.fileno(), IN | OUT)

    def _on_event(self, mask: int) -> None:
        if mask & OUT:
            self._flush()
        if mask & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
            self._read()

    def _flush(self) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            sent = conn.send(self.outbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self.drop_peer(f"send failed: {exc.strerror}")
            return
        del self.outbuf[:sent]
        if not self.outbuf:
            self.loop.modify(conn.fileno(), IN)

    def _read(self) -> None:
        conn = self.conn
        for _ in range(BATCH):
            try:
                data = conn.recv(262144)
            except BlockingIOError:
                break
            except OSError as exc:
                self.drop_peer(f"receive failed: {exc.strerror}")
                return
            if not data:
                self.drop_peer("it hung up", level="info")
                return
            self.inbuf += data
            if not self._parse():
                return

    def _parse(self) -> bool:
        buf, pos, frames = self.inbuf, 0, []
        end = len(buf)
        ok = True
        while end - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length > MAX_FRAME:
                self.drop_malformed += 1
                ok = False
                break
            if end - pos - 4 < length:
                break
            frames.append(bytes(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        del buf[:pos]
        if frames:
            self.hub.forward(self, frames)
        if not ok:
            self.drop_peer(f"frame length {length} is over {MAX_FRAME}: not QEMU's stream framing")
        return ok

    def close(self) -> None:
        if self.conn is not None:
            self.loop.remove(self.conn.fileno())
            self.conn.close()
            self.conn = None
        if self.listener is not None:
            self.loop.remove(self.listener.fileno())
            self.listener.close()
            self.listener = None
        self._unbind()

    def _unbind(self) -> None:
        if self.bound:
            self.files.release(self.name, self.path)
            self.bound = False


class DgramPort(Port):
    kind = "dgram"

    def __init__(
        self,
        name: str,
        loop: Loop,
        log: Log,
        family: str,
        address: str,
        local: str | None,
        files: SocketFiles,
        external: bool = False,
    ) -> None:
        super().__init__(name)
        self.loop, self.log = loop, log
        self.files = files
        self.address_text = address
        self.multicast = False
        self.bound_path: str | None = None  # a socket file this port made
        if family == "unix":
            self.family = socket.AF_UNIX
            # Frames go to this path only: outside the lab's folder only when the node says external.
            self.dest = files.path(name, address, external)
            self.local = files.path(name, local, external) if local else None
        else:
            self.family, self.dest = inet_address(address, socket.SOCK_DGRAM)
            self.multicast = ipaddress.ip_address(self.dest[0]).is_multicast
            self.local = inet_address(local, socket.SOCK_DGRAM)[1] if local else None
        self.sock: socket.socket | None = None
        self.own: object = None

    def start(self) -> None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if self.family == socket.AF_UNIX:
                if self.local:
                    self.files.bind(self.name, sock, self.local)
                    self.bound_path = self.local
            elif self.multicast:
                # As QEMU's mcast: bind the group's port, join, loop back so that
                # several QEMUs on this host share the VLAN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                group, port = self.dest[0], self.dest[1]
                sock.bind(("", port) if self.family == socket.AF_INET else ("::", port))
                if self.family == socket.AF_INET:
                    iface = socket.inet_aton(self.local[0]) if self.local else socket.inet_aton("0.0.0.0")
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + iface)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                    if self.local:
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
                else:
                    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", 0)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            elif self.local:
                sock.bind(self.local)
            # Our own multicast sends come back to us: know our address to skip them.
            if self.multicast:
                probe = socket.socket(self.family, socket.SOCK_DGRAM)
                probe.connect(self.dest)
                self.own = (probe.getsockname()[0], None)
                probe.close()
        except PathError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            self._unbind()
            raise OSError(
                exc.errno, f"cannot open dgram socket for {self.address_text}: {exc.strerror or exc}"
            ) from None
        self.sock = sock
        self.loop.add(sock.fileno(), self._on_readable)

    def send(self, frame: bytes, segments: int, length: int) -> None:
        if length > 65507:
            self.dropped("oversized", segments, length)
            return
        try:
            self.sock.sendto(frame, self.dest)
        except BlockingIOError:
            self.dropped("full", segments, length)
            return
        except OSError:
            # No listener yet (ECONNREFUSED, ENOENT): the frame is lost, as on a wire.
            self.dropped("gone", segments, length)
            return
        if self.multicast:
            self.own = (self.own[0], self.sock.getsockname()[1])

    def _on_readable(self, mask: int) -> None:
        self.hub.forward(self, self._frames())

    def _frames(self) -> Iterator[bytes]:
        sock = self.sock
        for _ in range(BATCH):
            try:
                frame, sender = sock.recvfrom(MAX_FRAME)
            except OSError:  # EAGAIN: drained
                return
            if not (self.multicast and sender[:2] == self.own):
                yield frame

    def close(self) -> None:
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self._unbind()

    def _unbind(self) -> None:
        if self.bound_path:
            self.files.release(self.name, self.bound_path)
            self.bound_path = None
