"""Following a conversation: the payload of one TCP or UDP flow, in order,
as Wireshark's "Follow stream" shows it.

A Follower sees every frame of its hub while it runs (it is one of the
hub's capture sinks: the forwarding path hands it frames as it hands a
capture), keeps those of its flow, and puts each direction's payload in
order: TCP by sequence number (retransmitted bytes once, segments that came
early held until the gap is filled), UDP datagram by datagram. Bounded: at
most LIMIT bytes per direction are kept, after which it says it stopped."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from qnet_tui.lab.capture import Sink
from qnet_tui.segments import TCP, UDP, Segment, parse

LIMIT = 256 * 1024  # payload bytes kept per direction
HELD_LIMIT = 64  # TCP segments held past a gap, per direction


class FlowError(ValueError):
    pass


@dataclass(frozen=True)
class Flow:
    proto: int  # 6 or 17
    a: str
    a_port: int
    b: str
    b_port: int

    @classmethod
    def of(cls, proto: str | None, a: str | None, a_port: int | None, b: str | None, b_port: int | None) -> Flow:
        """A flow as a client names it (protocol.Follow); FlowError says what is wrong."""
        number = {"tcp": TCP, "udp": UDP}.get(proto or "")
        if number is None:
            raise FlowError(f"follow: proto is {proto!r}; give tcp or udp")
        ends = []
        for name, address, port in (("a", a, a_port), ("b", b, b_port)):
            try:
                ip = ipaddress.ip_address(address or "")
            except ValueError:
                raise FlowError(f"follow: {name} is {address!r}, not an IPv4 or IPv6 address") from None
            if port is None or not 0 <= port <= 0xFFFF:
                raise FlowError(f"follow: {name}_port is {port!r}; give a port from 0 to 65535")
            ends.append((ip, port))
        if ends[0][0].version != ends[1][0].version:
            raise FlowError("follow: a and b are of two families (IPv4 and IPv6)")
        return cls(number, str(ends[0][0]), ends[0][1], str(ends[1][0]), ends[1][1])

    def text(self) -> str:
        return f"{'tcp' if self.proto == TCP else 'udp'} {self.a}:{self.a_port} <> {self.b}:{self.b_port}"

    def direction(self, src: str, sport: int, dst: str, dport: int) -> int | None:
        """0: a -> b, 1: b -> a, None: another flow."""
        if (src, sport, dst, dport) == (self.a, self.a_port, self.b, self.b_port):
            return 0
        if (src, sport, dst, dport) == (self.b, self.b_port, self.a, self.a_port):
            return 1
        return None


@dataclass
class Direction:
    """One direction's payload, in order."""

    next_seq: int | None = None  # TCP: the sequence number of the next byte wanted
    held: dict[int, bytes] = field(default_factory=dict)  # TCP segments past a gap, by sequence number
    kept: int = 0
    full: bool = False


class Follower:
    def __init__(self, flow: Flow, limit: int = LIMIT) -> None:
        self.flow = flow
        self.limit = limit
        self.ways = (Direction(), Direction())
        self.chunks: list[tuple[int, bytes]] = []  # (direction, bytes) not yet taken
        self.frames = 0

    def feed(self, frame: bytes | memoryview) -> None:
        """A frame the hub forwarded; kept if it is the flow's."""
        seg = parse(frame)
        if seg is None or seg.proto != self.flow.proto:
            return
        way = self.flow.direction(seg.src, seg.sport, seg.dst, seg.dport)
        if way is None:
            return
        self.frames += 1
        if seg.proto == UDP:
            self._keep(way, seg.payload)
        else:
            self._tcp(way, seg)

    def _tcp(self, way: int, seg: Segment) -> None:
        d = self.ways[way]
        if seg.syn:
            d.next_seq = (seg.seq + 1) & 0xFFFFFFFF
            d.held.clear()
            return
        if d.next_seq is None:  # joined after the handshake: start where we are
            d.next_seq = seg.seq
        if not seg.payload:
            return
        ahead = (seg.seq - d.next_seq) & 0xFFFFFFFF
        if ahead >= 1 << 31:  # starts before what we have: keep only the new part
            overlap = (d.next_seq - seg.seq) & 0xFFFFFFFF
            if overlap >= len(seg.payload):
                return  # a retransmission of what we have
            seg.payload, seg.seq, ahead = seg.payload[overlap:], d.next_seq, 0
        if ahead:
            if len(d.held) < HELD_LIMIT:
                d.held.setdefault(seg.seq, seg.payload)
            return
        self._keep(way, seg.payload)
        d.next_seq = (d.next_seq + len(seg.payload)) & 0xFFFFFFFF
        while d.next_seq in d.held:  # what came early follows on now
            data = d.held.pop(d.next_seq)
            self._keep(way, data)
            d.next_seq = (d.next_seq + len(data)) & 0xFFFFFFFF

    def _keep(self, way: int, data: bytes) -> None:
        d = self.ways[way]
        room = self.limit - d.kept
        if room <= 0 or not data:
            d.full = d.full or room <= 0
            return
        if len(data) > room:
            data, d.full = data[:room], True
        d.kept += len(data)
        if self.chunks and self.chunks[-1][0] == way:
            self.chunks[-1] = (way, self.chunks[-1][1] + data)
        else:
            self.chunks.append((way, data))

    def take(self) -> list[tuple[int, bytes]]:
        out, self.chunks = self.chunks, []
        return out

    @property
    def full(self) -> bool:
        return all(d.full for d in self.ways)


class FollowSink(Sink):
    """A Follower as one of a hub's capture sinks: it writes no pcapng, it
    feeds the follower the frames that crossed the hub (not those a fault dropped)."""

    kind = "follow"

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.follower = Follower(flow)

    def start(self, hub: str, ports: Any) -> None:
        self.hub = hub

    def packet(self, port: str, ts: int, frame: bytes | memoryview, options: bytes, dropped: bool = False) -> None:
        if not dropped:
            self.follower.feed(frame)

    def take(self) -> tuple[list[dict[str, Any]], int, list[bool]]:
        """What the protocol's Followed carries: chunks, frames, which ways are full."""
        chunks = [{"way": way, "data": base64.b64encode(data).decode()} for way, data in self.follower.take()]
        return chunks, self.follower.frames, [d.full for d in self.follower.ways]
