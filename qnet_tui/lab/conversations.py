"""Conversations of a hub: who talks to whom, counted for every frame.

The forwarding path (ports.Hub.forward; bpf.py's filter for hubs the kernel
forwards) counts each frame under a *key* made of the frame's own bytes and
nothing more: the MACs, the EtherType, and for IP the protocol, the
addresses and, for TCP and UDP, the ports. Once per statistics tick this
module takes those counts from every port, reads the keys, and adds them to
two tables per hub: MAC pairs, and IP flows (protocol, addresses, ports). A
conversation is both directions of one pair or flow; its `a` side is the one
seen sending first, as far as ticks tell: the counts carry no time, so when
both ends send within the tick a conversation starts in, the port read first
(the hub's order of ports) is `a`.

Memory is bounded: a table keeps at most LIMIT conversations; past that the
ones with the fewest bytes are let go into an "others" count. What the
panes and `run --json` get is the TOP by bytes, with the rest summed.

Keys, as Hub.forward makes them. A TCP or UDP frame's is a tuple of its
header fields, unpacked in one call: for IPv4 (MACs, version and header
length, fragment field, protocol, addresses and ports), for IPv6 (MACs,
next header, addresses and ports); the ports count only when the IPv4 header
has no options and the frame is no later fragment. Any other frame's is its
bytes, sliced: dst MAC, src MAC, [802.1Q tag], EtherType, then for IP the
protocol byte and the addresses (4 + 4 or 16 + 16 bytes). A short frame
makes a short key: read as far as it goes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from qnet_tui.protocol import IP_PROTOCOLS

SEGMENTS_SHIFT = 40  # a key's count: wire frames above these bits, bytes below
SIZE_MASK = (1 << SEGMENTS_SHIFT) - 1
LIMIT = 1024  # conversations a table keeps
TOP = 50  # of those, what a snapshot lists
DECODED_LIMIT = 65536  # keys remembered read; forgotten all at once past this

PORTED = {6, 17}  # protocols whose first four bytes are the ports
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class Read:
    """What a key says: the MAC pair, and the IP flow if it is IP."""

    src_mac: str
    dst_mac: str
    ethertype: int
    proto: int | None = None  # IP protocol / IPv6 next header
    src_ip: str | None = None
    dst_ip: str | None = None
    sport: int | None = None
    dport: int | None = None


def read_key(key: bytes | tuple) -> Read | None:
    """A key as Hub.forward makes it; None if it is too short to name a pair."""
    if isinstance(key, tuple):
        return _read_fields(key)
    if len(key) < 14:
        return None
    dst, src = mac_text(key[0:6]), mac_text(key[6:12])
    off = 12
    if key[12:14] == b"\x81\x00" and len(key) >= 18:
        off = 16
    ethertype = int.from_bytes(key[off : off + 2], "big")
    rest = key[off + 2 :]
    if ethertype == 0x0800:
        width = 4
    elif ethertype == 0x86DD:
        width = 16
    else:
        return Read(src, dst, ethertype)
    if len(rest) < 1 + 2 * width:
        return Read(src, dst, ethertype)
    proto = rest[0]
    make = ipaddress.IPv4Address if width == 4 else ipaddress.IPv6Address
    src_ip, dst_ip = str(make(rest[1 : 1 + width])), str(make(rest[1 + width : 1 + 2 * width]))
    ports = rest[1 + 2 * width : 5 + 2 * width]
    sport = dport = None
    if proto in PORTED and len(ports) == 4:
        sport, dport = int.from_bytes(ports[0:2], "big"), int.from_bytes(ports[2:4], "big")
    return Read(src, dst, ethertype, proto, src_ip, dst_ip, sport, dport)


def _read_fields(key: tuple) -> Read:
    """A TCP or UDP frame's key, its header fields as Hub.forward unpacks them."""
    macs = key[0]
    dst, src = mac_text(macs[0:6]), mac_text(macs[6:12])
    if len(key) == 5:  # IPv4: version and header length, fragment field, protocol, addresses and ports
        verihl, frag, proto, rest = key[1], key[2], key[3], key[4]
        src_ip, dst_ip = str(ipaddress.IPv4Address(rest[0:4])), str(ipaddress.IPv4Address(rest[4:8]))
        if verihl != 0x45 or frag & 0x1FFF:  # options before the ports, or a later fragment: none
            return Read(src, dst, 0x0800, proto, src_ip, dst_ip)
        return Read(src, dst, 0x0800, proto, src_ip, dst_ip, *_ports(rest[8:12]))
    proto, rest = key[1], key[2]  # IPv6: next header, addresses and ports
    src_ip, dst_ip = str(ipaddress.IPv6Address(rest[0:16])), str(ipaddress.IPv6Address(rest[16:32]))
    return Read(src, dst, 0x86DD, proto, src_ip, dst_ip, *_ports(rest[32:36]))


def _ports(raw: bytes) -> tuple[int, int]:
    return int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")


def proto_name(proto: int) -> str:
    return IP_PROTOCOLS.get(proto, f"ip-{proto}")


@dataclass(slots=True)
class Conversation:
    a: str
    b: str
    proto: str | None
    a_port: int | None
    b_port: int | None
    first: float
    frames: int = 0
    bytes: int = 0
    last: float = 0.0
    fps: float = 0.0
    bps: float = 0.0
    tick_frames: int = 0  # counted since the last tick
    tick_bytes: int = 0


@dataclass(slots=True)
class Rest:
    count: int = 0
    frames: int = 0
    bytes: int = 0

    def row(self, fps: float = 0.0, bps: float = 0.0) -> dict[str, Any]:
        return {"count": self.count, "frames": self.frames, "bytes": self.bytes, "fps": fps, "bps": bps}


class Table:
    """One kind of conversation (pairs or flows) of one hub."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.entries: dict[tuple, Conversation] = {}
        self.gone = Rest()  # conversations let go to keep the table bounded

    def add(
        self,
        ident: tuple,
        a: str,
        b: str,
        proto: str | None,
        a_port: int | None,
        b_port: int | None,
        frames: int,
        size: int,
        now: float,
    ) -> None:
        conv = self.entries.get(ident)
        if conv is None:
            conv = self.entries[ident] = Conversation(a, b, proto, a_port, b_port, first=now)
        conv.tick_frames += frames
        conv.tick_bytes += size

    def tick(self, now: float, elapsed: float) -> None:
        """Close a tick: totals, rates over it, last seen; then bound the table."""
        for conv in self.entries.values():
            frames, size = conv.tick_frames, conv.tick_bytes
            conv.fps = round(frames / elapsed, 1) if elapsed > 0 else 0.0
            conv.bps = round(size * 8 / elapsed, 1) if elapsed > 0 else 0.0
            if frames:
                conv.frames += frames
                conv.bytes += size
                conv.last = now
                conv.tick_frames = conv.tick_bytes = 0
        if len(self.entries) > self.limit:
            ranked = sorted(self.entries.items(), key=lambda item: item[1].bytes, reverse=True)
            for ident, conv in ranked[self.limit :]:
                self.gone.count += 1
                self.gone.frames += conv.frames
                self.gone.bytes += conv.bytes
                del self.entries[ident]

    def top(self, n: int = TOP) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        ranked = sorted(self.entries.values(), key=lambda conv: conv.bytes, reverse=True)
        shown, rest = ranked[:n], ranked[n:]
        others = Rest(self.gone.count + len(rest), self.gone.frames, self.gone.bytes)
        fps = bps = 0.0
        for conv in rest:
            others.frames += conv.frames
            others.bytes += conv.bytes
            fps += conv.fps
            bps += conv.bps
        rows = [
            {
                "a": c.a,
                "b": c.b,
                "proto": c.proto,
                "a_port": c.a_port,
                "b_port": c.b_port,
                "frames": c.frames,
                "bytes": c.bytes,
                "fps": c.fps,
                "bps": c.bps,
                "first": round(c.first, 3),
                "last": round(c.last, 3),
            }
            for c in shown
        ]
        return rows, others.row(round(fps, 1), round(bps, 1))


@dataclass
class Sources:
    """What one port's frames came from: source MACs, and the IP addresses
    each sent from (the topology-aware checks read these)."""

    macs: dict[str, set[str]] = field(default_factory=dict)
    dhcp: set[str] = field(default_factory=set)  # MACs that sent DHCP server messages (UDP 67 -> 68)
    # Frames counted under each of those (a source MAC, a source address, a
    # DHCP server's MAC): the checks tell a finding still growing from an old one.
    frames: dict[str, int] = field(default_factory=dict)
    ip_frames: dict[str, int] = field(default_factory=dict)
    dhcp_frames: dict[str, int] = field(default_factory=dict)
    # What was first seen since the checks last took it: (MAC, None) for a new
    # source MAC, (MAC, address) for a new address from it. Bounded as macs is.
    fresh: list[tuple[str, str | None]] = field(default_factory=list)


class Conversations:
    """A hub's two tables, fed per tick with each port's counts by key."""

    def __init__(self) -> None:
        self.pairs = Table()
        self.flows = Table()
        self.decoded: dict[bytes, Read | None] = {}
        self.sources: dict[str, Sources] = {}  # by port
        self.then: float | None = None

    def add(self, port: str, counts: Mapping[bytes | tuple, int], now: float) -> None:
        """One port's counts since the last tick: key -> wire frames << SEGMENTS_SHIFT | bytes."""
        decoded = self.decoded
        if len(decoded) > DECODED_LIMIT:
            decoded.clear()
        sources = self.sources.get(port) or self.sources.setdefault(port, Sources())
        for key, packed in counts.items():
            frames, size = packed >> SEGMENTS_SHIFT, packed & SIZE_MASK
            read = decoded.get(key, False)
            if read is False:
                read = decoded[key] = read_key(key)
            if read is None:
                continue
            self._add(read, frames, size, now)
            ips = sources.macs.get(read.src_mac)
            if ips is None and len(sources.macs) < 256:
                ips = sources.macs[read.src_mac] = set()
                sources.fresh.append((read.src_mac, None))
            if ips is not None:
                sources.frames[read.src_mac] = sources.frames.get(read.src_mac, 0) + frames
                if read.src_ip is not None and (read.src_ip in ips or len(ips) < 64):
                    if read.src_ip not in ips:
                        ips.add(read.src_ip)
                        sources.fresh.append((read.src_mac, read.src_ip))
                    sources.ip_frames[read.src_ip] = sources.ip_frames.get(read.src_ip, 0) + frames
            server = read.proto == 17 and read.sport == 67 and read.dport == 68
            if server and (read.src_mac in sources.dhcp or len(sources.dhcp) < 64):
                sources.dhcp.add(read.src_mac)
                sources.dhcp_frames[read.src_mac] = sources.dhcp_frames.get(read.src_mac, 0) + frames

    def _add(self, r: Read, frames: int, size: int, now: float) -> None:
        pair = (r.src_mac, r.dst_mac) if r.src_mac <= r.dst_mac else (r.dst_mac, r.src_mac)
        self.pairs.add(pair, r.src_mac, r.dst_mac, None, None, None, frames, size, now)
        if r.src_ip is None:
            return
        ends = ((r.src_ip, r.sport), (r.dst_ip, r.dport))
        ident = (r.proto, *sorted(ends, key=lambda end: (end[0], end[1] or 0)))
        self.flows.add(ident, r.src_ip, r.dst_ip, proto_name(r.proto), r.sport, r.dport, frames, size, now)

    def tick(self, now: float) -> None:
        elapsed = now - self.then if self.then is not None else 0.0
        self.then = now
        self.pairs.tick(now, elapsed)
        self.flows.tick(now, elapsed)

    def snapshot(self, names: Mapping[str, str]) -> dict[str, Any]:
        """The top conversations, each side named by the topology's node where it has one."""
        pairs, pairs_rest = self.pairs.top()
        flows, flows_rest = self.flows.top()
        for row in (*pairs, *flows):
            row["a_node"] = end_name(names, row["a"])
            row["b_node"] = end_name(names, row["b"])
        return {"pairs": pairs, "flows": flows, "others": {"pairs": pairs_rest, "flows": flows_rest}}


def node_names(nodes: Iterable[Any]) -> dict[str, str]:
    """MACs and IP addresses the topology declares -> the node declaring them;
    the broadcast MAC as `broadcast`."""
    names = {BROADCAST: "broadcast"}
    for node in nodes:
        attrs = getattr(node, "attrs", {}) or {}
        mac = attrs.get("mac")
        if isinstance(mac, str):
            names[mac.lower()] = node.id
            local = link_local(mac)
            if local is not None:
                names[local] = node.id
        for attr in ("ipv4", "ipv6"):
            value = attrs.get(attr)
            if isinstance(value, str):
                try:
                    names[str(ipaddress.ip_interface(value).ip)] = node.id
                except ValueError:
                    continue
    return names


def link_local(mac: str) -> str | None:
    """The IPv6 link-local address Linux gives a NIC with this MAC (EUI-64,
    its default outside stable-privacy set-ups), as text; None for no MAC."""
    try:
        octets = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        return None
    if len(octets) != 6:
        return None
    eui = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


GROUPS = frozenset({"broadcast", "multicast"})  # the names of addresses no node owns


def end_name(names: Mapping[str, str], address: str) -> str | None:
    """What a conversation's end is called: the node declaring it, or a group's name."""
    return names.get(address) or group_name(address)


@lru_cache(maxsize=4096)  # every tick asks again for the same unnamed ends: parse each once
def group_name(address: str) -> str | None:
    """`multicast` for a group MAC or a multicast IP address, `broadcast` for
    IPv4's limited broadcast: no node owns them (the broadcast MAC is named
    with the nodes)."""
    if address == "255.255.255.255":
        return "broadcast"
    try:
        if len(address) == 17 and address[2] == ":":  # a MAC: the group bit
            return "multicast" if int(address[:2], 16) & 1 else None
        return "multicast" if ipaddress.ip_address(address).is_multicast else None
    except ValueError:
        return None
