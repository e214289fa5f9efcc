"""Remote ports: a hub's frames to and from another machine of the lab, in
VXLAN (RFC 7348), so a Linux `vxlan` device or containerlab's vxlan links
interoperate.

One UDP socket per worker (VxlanEndpoint), bound to the machine's underlay
address, carries every remote port of every hub: a datagram is an 8-byte
header (flags with I set, the VNI) and an Ethernet frame without FCS. A
kernel vxlan device sends from a source port hashed from the inner flow, so
datagrams are taken from any source port of the peer and dispatched by (VNI,
sender address); frames go to the peer's port.

Path MTU. Everything is sent with don't-fragment, so an underlay that cannot
carry a frame drops it (and may say so with ICMP: the kernel then refuses
bigger sends with EMSGSIZE) instead of fragmenting it silently. Each port
probes the path at start and every PROBE_EVERY_S: a probe is a datagram whose
header has the I flag clear and PROBE in its reserved bytes (a kernel vxlan
device drops it: flags without I), padded to the IP datagram size tried; a
qnet-tui endpoint answers with a short REPLY saying the size it got. The
search first tries PROBE_FLOOR (does the peer answer at all?), then the
route's MTU, then bisects between the largest size that arrived and the
smallest that did not, on the event loop. A frame bigger than the path
allows is dropped as `mtu`, never fragmented. A port whose probes go
unanswered tries again after 1 s, doubling up to PROBE_EVERY_S, and at once
when a probe from its peer arrives (the peer just started).

Super-frames. On a hub whose taps carry virtio-net headers (every member on
every machine can have them: lab/realize.py), a tap hands the worker 64 KiB
TCP super-frames (GSO) and frames whose checksum the guest left to its NIC
(NEEDS_CSUM). To a peer known to be qnet-tui (it answered a probe: `probed`)
such a frame goes whole, virtio-net header and all, in chunks: each datagram
a SUPER_HEAD (I flag clear, SUPER in the reserved bytes: a kernel vxlan
device drops it), the VNI, the super-frame's sequence number, the chunk's
index and the count, then its part of (header + frame), sized so that each
datagram fills the probed path MTU. All chunks go in one sendmsg with UDP GSO
(UDP_SEGMENT; one sendto per chunk if the kernel refuses, found out once and
remembered). The receiving endpoint has UDP GRO on, so one read may hold many
datagrams of one sender: it splits them, reassembles each super-frame by
(port, sequence) and index, and hands header + frame to the hub as a tap
would: its taps' kernels segment it or pass it to the guest whole, and its
counters count the wire frames it stands for. At most IN_FLIGHT incomplete
super-frames are kept per port: one older than a newer complete one, or than
LOST_AFTER_S, or pushed out, is dropped as `lost` (one per super-frame). The
path MTU bounds frames sent whole, not the wire frames of a super-frame, as a
Linux bridge passes a GSO frame to a vxlan device whatever its MTU.

Until the peer is known (the first answer, within a second of both ends
running; a kernel vxlan device never answers), a GSO super-frame cannot go,
and is dropped as `mtu` (said once in the log); a NEEDS_CSUM frame that fits
gets its checksum completed here and goes as plain VXLAN, as does every
frame without offloads. A port of a hub without virtio-net headers (a
socket or a QEMU VM among its members) sends plain VXLAN only, and drops
chunks it receives as `malformed`."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import BATCH, READ_SIZE, Port
from qnet_tui.lab.tap import VNET_HDR_LEN

Log = Callable[[str, str], None]  # (level, message)

VXLAN_PORT = 4789  # IANA's
FLAGS_I = 0x08000000  # the header's first word: the I flag (a valid VNI), nothing else
HEADER = struct.Struct("!II")
# Probe and reply: the first word has the I flag clear and a magic in the reserved bytes.
PROBE = 0x00716E50  # "\0qnP"
REPLY = 0x00716E52  # "\0qnR"
PROBE_HEAD = struct.Struct("!III")  # word, VNI << 8, nonce
REPLY_MSG = struct.Struct("!IIII")  # word, VNI << 8, nonce, UDP payload bytes received
# A chunk of a super-frame: the same kind of word, then the VNI, the
# super-frame's sequence number, the chunk's index and the count of chunks.
SUPER = 0x00716E53  # "\0qnS"
SUPER_HEAD = struct.Struct("!IIIHH")
SEQ_MASK, SEQ_HALF = 0xFFFFFFFF, 1 << 31
IN_FLIGHT = 4  # incomplete super-frames kept per port
LOST_AFTER_S = 1.0  # an incomplete super-frame this old is lost
# UDP GSO: a sendmsg carries at most UDP_MAX_SEGMENTS datagrams (64 on older
# kernels, 128 on newer) and one UDP datagram's worth of bytes before it is cut.
GSO_SEGMENTS = 64
GSO_BYTES = 65000

# Outer headers a frame travels in: IP + UDP 8 + VXLAN 8 (the outer Ethernet
# header, 14 more, is not part of the IP MTU): 1500 -> frames up to 1464.
INNER = {socket.AF_INET: 20 + 8 + 8, socket.AF_INET6: 40 + 8 + 8}
UDP_IP = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}
PROBE_FLOOR = 1280  # IPv6's minimum MTU: the first size tried
PROBE_TRIES = 2  # sends per size before it counts as lost
PROBE_WAIT_S = 0.5  # for an answer, until one round trip is known
PROBE_WAIT_MIN_S, PROBE_WAIT_MAX_S = 0.05, 1.0
PROBE_EVERY_S = 60.0
PROBE_RETRY_S = 1.0  # the first wait after an unanswered search; doubles up to PROBE_EVERY_S
RECV_SIZE = 1 << 17  # one read: a datagram, or (UDP GRO) up to 64 KiB of them
BUFFER = 4 * 1024 * 1024  # socket buffers: bursts of a TCP window across the stitch

# Linux socket options Python does not name everywhere.
IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_MTU = 23, 2, 24
IPV6_DONTFRAG = getattr(socket, "IPV6_DONTFRAG", 62)
SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104
GRO_CMSG = socket.CMSG_SPACE(4)  # UDP_GRO's: the size of the datagrams a read holds
GSO_REFUSED = (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO)  # UDP GSO unsupported (or not on this route)


def _host(address: str) -> str:
    """An address as the sockets give it back: compressed, without a scope."""
    return ipaddress.ip_address(address.split("%", 1)[0]).compressed


class VxlanEndpoint:
    """One UDP socket per worker (machine), bound to (local_address, port),
    shared by every remote port of every hub: received datagrams are
    dispatched by (VNI, sender IP) to the remote port, in batches to
    port.hub.forward(port, frames)."""

    def __init__(self, loop: Loop, log: Log, local_address: str, port: int = VXLAN_PORT) -> None:
        try:
            self.local = _host(local_address)
        except ValueError:
            raise ValueError(f"VXLAN endpoint: {local_address!r} is not an IP address") from None
        self.family = socket.AF_INET6 if ":" in self.local else socket.AF_INET
        self.loop, self.log = loop, log
        self.port = port
        self.ports: dict[tuple[int, str], VxlanPort] = {}
        self.sock: socket.socket | None = None
        self.route: socket.socket | None = None  # connected to a peer now and then, to read the route's MTU
        # Datagrams no port takes: not VXLAN (or a flag we do not speak), and
        # from an unknown (VNI, peer); the first few unknown ones are logged.
        self.malformed = self.unknown = 0
        self._told: set[tuple[int, str]] = set()
        # UDP GSO for a super-frame's chunks: None until a send tells, False once refused.
        self.udp_gso: bool | None = None
        self.gro = False  # UDP GRO on the socket: reads may hold several datagrams
        self._buffer = bytearray(RECV_SIZE)
        self._view = memoryview(self._buffer)

    def start(self) -> None:
        """Bind the socket (in the namespace this thread is in)."""
        sock = socket.socket(self.family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        route = socket.socket(self.family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            if self.family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, BUFFER)
            sock.bind((self.local, self.port))
            self.port = sock.getsockname()[1]  # port 0: the one the kernel chose
        except OSError as exc:
            sock.close()
            route.close()
            why = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                why += " (another worker, or a kernel vxlan device of this machine, has that port)"
            elif exc.errno == errno.EADDRNOTAVAIL:
                why += " (no interface of this machine has that address)"
            where = f"[{self.local}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.local}:{self.port}"
            raise OSError(exc.errno, f"cannot listen for VXLAN on {where}: {why}") from None
        try:
            sock.setsockopt(SOL_UDP, UDP_GRO, 1)
            self.gro = True
        except OSError:  # before Linux 5.0: one datagram a read
            self.gro = False
        self.sock, self.route = sock, route
        self.loop.add(sock.fileno(), self._on_readable)
        for port in self.ports.values():
            port.probe()

    def add(self, port: VxlanPort) -> None:
        if port.family != self.family:
            raise ValueError(
                f"{port.name}: peer {port.peer} is not an address of the underlay's family (endpoint {self.local})"
            )
        key = (port.vni, port.peer)
        if key in self.ports and self.ports[key] is not port:
            raise ValueError(f"{port.name}: VNI {port.vni} with peer {port.peer} is {self.ports[key].name}'s already")
        self.ports[key] = port
        port.endpoint = self
        if self.sock is not None:
            port.probe()

    def remove(self, port: VxlanPort) -> None:
        if self.ports.get((port.vni, port.peer)) is port:
            del self.ports[(port.vni, port.peer)]
        port.stop_probing()

    def close(self) -> None:
        for port in self.ports.values():
            port.stop_probing()
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.route is not None:
            self.route.close()
            self.route = None

    def stats(self) -> dict:
        return {"malformed": self.malformed, "unknown": self.unknown}

    def send_chunks(self, parts: list, segment: int, address: tuple) -> None:
        """Send (header, chunk) pairs as datagrams to address: one sendmsg
        with UDP GSO cutting it every `segment` bytes (all pairs that long
        but the last), or, where the kernel refuses that, one send per pair.
        OSError (BlockingIOError, EMSGSIZE) is the caller's."""
        sock = self.sock
        refused = None
        if len(parts) > 2 and self.udp_gso is not False:
            try:
                sock.sendmsg(parts, [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", segment))], 0, address)
            except OSError as exc:
                if exc.errno not in GSO_REFUSED:
                    raise
                refused = exc
            else:
                self.udp_gso = True
                return
        for i in range(0, len(parts), 2):
            sock.sendmsg(parts[i : i + 2], (), 0, address)
        if refused is not None:  # the chunks went one by one: GSO itself was refused, not their size
            self.udp_gso = False
            why = refused.strerror or refused
            self.log("info", f"VXLAN: the kernel refuses UDP GSO ({why}); super-frames go a datagram at a time")

    def route_mtu(self, peer: str, port: int) -> int:
        """The MTU of the route to peer, the path MTU the kernel learned (ICMP) included."""
        route = self.route
        route.connect((peer, port))  # UDP: a route lookup, nothing sent
        try:
            if self.family == socket.AF_INET:
                return route.getsockopt(socket.IPPROTO_IP, IP_MTU)
            return route.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
        finally:
            route.connect(("0.0.0.0", 0) if self.family == socket.AF_INET else ("::", 0))

    # -- receiving -----------------------------------------------------------------

    def _on_readable(self, mask: int) -> None:
        sock, ports, unpack, buffer, view = self.sock, self.ports, HEADER.unpack_from, self._buffer, self._view
        buffers, v6 = [buffer], self.family == socket.AF_INET6
        batches: dict[VxlanPort, list[bytes]] = {}
        for _ in range(BATCH):
            try:
                size, ancillary, _flags, sender = sock.recvmsg_into(buffers, GRO_CMSG)
            except OSError:  # EAGAIN: drained (an ICMP error queued on the socket: the same)
                break
            step = size
            for level, kind, data in ancillary:  # UDP GRO: datagrams of `step` bytes each, the last maybe less
                if level == SOL_UDP and kind == UDP_GRO and len(data) >= 4:
                    step = struct.unpack("=i", data[:4])[0] or size
            host = sender[0]
            for start in range(0, size, step) if 0 < step < size else (0,):
                end = min(start + step, size)
                if end - start < 8:
                    self.malformed += 1
                    continue
                word, vni = unpack(buffer, start)
                port = ports.get((vni >> 8, host))
                if port is None and v6:
                    port = ports.get((vni >> 8, _host(host)))
                if word == FLAGS_I and not vni & 0xFF:
                    if port is None:
                        self._stray(vni >> 8, host)
                        continue
                    batch = batches.get(port)
                    if batch is None:
                        batch = batches[port] = []
                    frame = view[start + 8 : end]
                    batch.append(port.header_in + frame if port.vnet else bytes(frame))
                elif word == SUPER and port is not None:
                    frame = port.chunk(view[start:end])
                    if frame is not None:
                        batch = batches.get(port)
                        if batch is None:
                            batch = batches[port] = []
                        batch.append(frame)
                elif word == PROBE and port is not None:
                    self._answer(bytes(view[start:end]), sender)
                    if not port.probed and not port.searching:  # the peer just started: we learn it now
                        port.probe()
                elif word == REPLY and port is not None and end - start >= REPLY_MSG.size:
                    port.answered(*REPLY_MSG.unpack_from(buffer, start)[2:])
                elif port is not None:
                    port.drop_malformed += 1
                else:
                    self.malformed += 1
        for port, frames in batches.items():
            if port.hub is not None:
                port.hub.forward(port, frames)

    def _stray(self, vni: int, sender: str) -> None:
        self.unknown += 1
        if (vni, sender) not in self._told and len(self._told) < 16:
            self._told.add((vni, sender))
            self.log("warning", f"VXLAN: datagrams for VNI {vni} from {sender}: no remote port takes them (dropped)")

    def _answer(self, probe: bytes, sender: tuple) -> None:
        if len(probe) < PROBE_HEAD.size:
            return
        _, vni, nonce = PROBE_HEAD.unpack_from(probe)
        with contextlib.suppress(OSError):  # the prober tries again
            self.sock.sendto(REPLY_MSG.pack(REPLY, vni, nonce, len(probe)), sender)


class VxlanPort(Port):
    """A hub's port to the same hub on another machine: its frames to the
    peer's endpoint in VXLAN, the peer's frames from it."""

    kind = "vxlan"
    remote = True

    def __init__(
        self, name: str, endpoint: VxlanEndpoint, vni: int, peer: str, peer_port: int = VXLAN_PORT, vnet: bool = False
    ) -> None:
        super().__init__(name)
        if not 0 <= vni < 1 << 24:
            raise ValueError(f"{name}: VNI {vni} is out of range (0-16777215)")
        try:
            self.peer = _host(peer)
        except ValueError:
            raise ValueError(f"{name}: peer {peer!r} is not an IP address") from None
        self.family = socket.AF_INET6 if ":" in self.peer else socket.AF_INET
        self.endpoint = endpoint
        self.vni = vni
        self.address = (self.peer, peer_port)
        self.header = HEADER.pack(FLAGS_I, vni << 8)
        # A hub of taps with virtio-net headers: plain frames in get an empty
        # one (a whole frame, checksums done), plain frames out lose theirs;
        # super-frames keep theirs (see the module's docstring).
        self.vnet = vnet
        self.header_in = bytes(VNET_HDR_LEN)
        self.tx_superframes = self.rx_superframes = 0  # sent in chunks, reassembled
        self.partial: dict[int, _Partial] = {}  # incomplete super-frames by sequence number
        self._seq = 0
        self.gso_told = False  # the log said GSO super-frames wait for the peer
        # The largest IP datagram the path carries: the route's MTU (to the
        # peer, as the kernel knows it) until a probe is answered (probed).
        self.pmtu: int | None = None
        self.probed = False
        self.route: int | None = None
        self.max_frame = 0  # the largest frame sent: nothing until the path is known
        self.told: tuple[int, bool] | None = None  # what the log last said
        self.no_route_told = False
        self._probing = 0  # the current search; a timer of an older one does nothing
        self.searching = False
        self._retry = PROBE_RETRY_S
        self._good = self._bad = self._size = self._tries = self._nonce = 0
        self._sent_at = 0.0
        self._wait = PROBE_WAIT_S

    # -- frames ------------------------------------------------------------------

    def send(self, frame: bytes, segments: int, length: int) -> None:
        off0 = len(frame) - length
        if off0 and (frame[0] & 1 or frame[1]):  # NEEDS_CSUM or a gso_type: work left to the NIC
            if self.probed and (frame[1] or length <= self.max_frame):
                self._send_super(frame, segments, length)  # a qnet-tui peer: whole, header and all
                return
            if frame[1]:  # GSO to a peer not known to be qnet-tui: it cannot be cut up here
                self.dropped("mtu", segments, length)
                if not self.gso_told:
                    self.gso_told = True
                    self.endpoint.log(
                        "warning",
                        f"{self.name}: TCP super-frames are dropped as 'mtu' until {self.peer} answers a probe "
                        "(a qnet-tui peer does once it runs; a kernel vxlan device never does)",
                    )
                return
            if length <= self.max_frame:
                frame = _complete_checksum(frame, off0)
        if length > self.max_frame:
            self.dropped("mtu", segments, length)
            return
        if off0:
            frame = memoryview(frame)[off0:]
        try:
            self.endpoint.sock.sendmsg((self.header, frame), (), 0, self.address)
        except BlockingIOError:
            self.dropped("full", segments, length)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:  # the kernel learned a smaller path MTU (ICMP)
                self.dropped("mtu", segments, length)
                self._learned()
            else:
                self.dropped("gone", segments, length)

    def _send_super(self, frame: bytes, segments: int, length: int) -> None:
        """header + frame in chunks that fill the path MTU, UDP GSO cutting them."""
        chunk = self.pmtu - UDP_IP[self.family] - SUPER_HEAD.size
        count = -(-len(frame) // chunk)
        self._seq = seq = (self._seq + 1) & SEQ_MASK
        view, pack, vni = memoryview(frame), SUPER_HEAD.pack, self.vni << 8
        parts: list = []
        for i in range(count):
            parts += (pack(SUPER, vni, seq, i, count), view[i * chunk : (i + 1) * chunk])
        per = 2 * max(1, min(GSO_SEGMENTS, GSO_BYTES // (SUPER_HEAD.size + chunk)))  # parts per sendmsg
        try:
            for first in range(0, len(parts), per):
                self.endpoint.send_chunks(parts[first : first + per], SUPER_HEAD.size + chunk, self.address)
        except BlockingIOError:
            self.dropped("full", segments, length)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                self.dropped("mtu", segments, length)
                self._learned()
            else:
                self.dropped("gone", segments, length)
        else:
            self.tx_superframes += 1

    def chunk(self, datagram: memoryview) -> bytes | None:
        """A chunk of a super-frame from the peer; the super-frame (virtio-net
        header + frame) when this one completes it."""
        if not self.vnet or len(datagram) < SUPER_HEAD.size:  # plain frames here: nothing to give a header to
            self.drop_malformed += 1
            return None
        _, _, seq, index, count = SUPER_HEAD.unpack_from(datagram)
        body = datagram[SUPER_HEAD.size :]
        if index >= count:
            self.drop_malformed += 1
            return None
        if count == 1:
            self.rx_superframes += 1
            return bytes(body)
        partial = self.partial.get(seq)
        if partial is None:
            now = time.monotonic()
            self.expire(now)
            if len(self.partial) >= IN_FLIGHT:  # the oldest makes room
                del self.partial[min(self.partial, key=lambda s: self.partial[s].since)]
                self.drop_lost += 1
            partial = self.partial[seq] = _Partial(count, now)
        elif partial.count != count:
            self.drop_malformed += 1
            return None
        if partial.chunks[index] is not None:  # a duplicate
            return None
        partial.chunks[index] = bytes(body)
        partial.have += 1
        partial.size += len(body)
        if partial.size > READ_SIZE:
            del self.partial[seq]
            self.drop_malformed += 1
            return None
        if partial.have < count:
            return None
        del self.partial[seq]
        for older in [s for s in self.partial if (seq - s) & SEQ_MASK < SEQ_HALF]:
            del self.partial[older]  # a newer one is whole: the rest of this one is not coming
            self.drop_lost += 1
        self.rx_superframes += 1
        return b"".join(partial.chunks)

    def expire(self, now: float) -> None:
        """Incomplete super-frames older than LOST_AFTER_S are lost."""
        for seq in [s for s, p in self.partial.items() if now - p.since > LOST_AFTER_S]:
            del self.partial[seq]
            self.drop_lost += 1

    def _learned(self) -> None:
        """The route's MTU (the kernel's path MTU to the peer) went down: follow it."""
        try:
            self.route = self.endpoint.route_mtu(*self.address)
        except OSError:
            return
        if self.pmtu is None or self.route < self.pmtu:
            self._settle(self.route, self.probed)

    # -- path MTU probing -------------------------------------------------------------

    def probe(self) -> None:
        """Search the path MTU now (and again every PROBE_EVERY_S)."""
        self._probing += 1
        self.searching = True
        try:
            self.route = self.endpoint.route_mtu(*self.address)
        except OSError as exc:
            if not self.no_route_told:
                self.no_route_told = True
                why = exc.strerror or exc
                self.endpoint.log("warning", f"{self.name}: no route to {self.peer} ({why}); trying again later")
            self._again()
            return
        self.no_route_told = False
        if not self.probed:
            self._settle(self.route, False)  # the route's MTU until a probe is answered
        self._good, self._bad = 0, self.route + 1
        self._try(min(PROBE_FLOOR, self.route))

    def stop_probing(self) -> None:
        self._probing += 1
        self.searching = False

    def _try(self, size: int) -> None:
        self._size, self._tries = size, 0
        self._send_probe()

    def _send_probe(self) -> None:
        sock = self.endpoint.sock
        if sock is None:
            return
        self._tries += 1
        self._nonce = int.from_bytes(os.urandom(4), "big")
        body = PROBE_HEAD.pack(PROBE, self.vni << 8, self._nonce)
        payload = self._size - UDP_IP[self.family]
        self._sent_at = time.monotonic()
        try:
            sock.sendto(body + bytes(max(0, payload - len(body))), self.address)
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:  # EMSGSIZE: the kernel knows already it cannot pass
                self._again()
                return
            self._lost()
            return
        probing, tries = self._probing, self._tries
        self.endpoint.loop.call_later(self._wait, lambda: self._timeout(probing, tries))

    def answered(self, nonce: int, received: int) -> None:
        """A reply from the peer's endpoint: the probe of the size tried arrived whole."""
        if nonce != self._nonce or received != self._size - UDP_IP[self.family]:
            return  # a late answer to an earlier try
        self._nonce = -1
        rtt = time.monotonic() - self._sent_at
        self._wait = min(PROBE_WAIT_MAX_S, max(PROBE_WAIT_MIN_S, 4 * rtt))
        self._good = self._size
        self._next()

    def _timeout(self, probing: int, tries: int) -> None:
        if probing != self._probing or tries != self._tries or self._nonce == -1:
            return
        if self._tries < PROBE_TRIES:
            self._send_probe()
        else:
            self._lost()

    def _lost(self) -> None:
        self._nonce = -1
        if not self._good:  # not even the floor: no qnet-tui endpoint answers there (a kernel vxlan device?)
            self._settle(self.route, False)
            self._again()
            return
        self._bad = self._size
        self._next()

    def _next(self) -> None:
        good, bad = self._good, self._bad
        if bad - good <= 1:
            self._settle(good, True)
            self._again()
        elif bad == self.route + 1 and good < self.route:
            self._try(self.route)  # most paths carry what the route does: one probe
        else:
            self._try((good + bad) // 2)

    def _again(self) -> None:
        """The search is over: the next one after PROBE_EVERY_S, sooner while no probe is answered."""
        self.searching = False
        probing = self._probing
        if self.probed:
            self._retry, delay = PROBE_RETRY_S, PROBE_EVERY_S
        else:
            delay, self._retry = self._retry, min(PROBE_EVERY_S, 2 * self._retry)

        def again() -> None:
            if probing == self._probing and self.endpoint.sock is not None:
                self.probe()

        self.endpoint.loop.call_later(delay, again)

    def _settle(self, mtu: int, probed: bool) -> None:
        """The path MTU is mtu: the largest frame follows; said when it changes."""
        self.pmtu, self.probed = mtu, probed
        self.max_frame = mtu - INNER[self.family]
        if (mtu, probed) != self.told:
            self.told = (mtu, probed)
            how = "" if probed else " (the route's; no probe answered)"
            self.endpoint.log("info", f"{self.name} path MTU {mtu}{how}: frames up to {self.max_frame} bytes")

    def stats(self) -> dict:
        self.expire(time.monotonic())  # a lost super-frame shows within a tick
        s = super().stats()
        s.update(
            peer=self.peer,
            vni=self.vni,
            pmtu=self.pmtu,
            probed=self.probed,
            tx_superframes=self.tx_superframes,
            rx_superframes=self.rx_superframes,
        )
        return s


@dataclass(slots=True)
class _Partial:
    """A super-frame some of whose chunks have come."""

    count: int
    since: float
    chunks: list[bytes | None] = field(init=False)
    have: int = 0
    size: int = 0

    def __post_init__(self) -> None:
        self.chunks = [None] * self.count


def _complete_checksum(frame: bytes, off0: int) -> bytes:
    """The frame with the checksum its virtio-net header left to the NIC done:
    the one's complement sum from csum_start on, at csum_start + csum_offset
    (which holds the pseudo-header's sum already)."""
    start = off0 + (frame[6] | frame[7] << 8)
    at = start + (frame[8] | frame[9] << 8)
    if at + 2 > len(frame):
        return frame
    data = bytearray(frame)
    body = bytes(data[start:]) + (b"\0" if (len(data) - start) % 2 else b"")
    total = sum(struct.unpack(f"!{len(body) // 2}H", body))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    data[at : at + 2] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(data)
