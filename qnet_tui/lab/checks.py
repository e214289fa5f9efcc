"""Topology-aware checks: what a hub's frames say that the topology does not.

A lab knows what every MAC and address is meant to be, so each statistics
tick this module compares what a hub's ports sent (lab/conversations.py's
Sources, cumulative, counted for every frame) and the ARP and neighbour
discovery frames the hub kept (Hub.take_watched) with the topology, and
keeps per hub a bounded list of findings:

  foreign-mac    a guest NIC's port sent from a MAC other than its declared
                 one. Only guest NICs: a tap, a socket or a host NIC's side
                 carries bridged traffic (a bridge behind a tap, a QEMU VM or
                 a whole LAN behind a socket), many MACs by design.
  duplicate-mac  one source MAC seen on two or more ports of the hub.
  duplicate-ip   one source IPv4/IPv6 address sent from two or more ports
                 (0.0.0.0 and ::, what a host without an address yet sends
                 from, are no one's).
  rogue-dhcp     DHCP server messages (UDP 67 -> 68) from a port where no
                 node is declared a DHCP server (`dhcp_server: true` on the
                 guest NIC, or on a host NIC behind the tap's bridge, or on
                 the node whose MAC sent them).
  arp-conflict   an IPv4 address claimed in ARP (the sender address of a
                 request, reply or announcement) by two MACs, or by a MAC
                 other than the one of the node declaring that address.
  nd-conflict    the same for IPv6: a neighbour advertisement's target (or a
                 solicitation's source), by its link-layer option's MAC or
                 else the frame's source MAC.

A finding persists: `count` is the frames that make it (the intruder's, not
the owner's), `first` and `last` when it was first seen and last grew.
Messages name nodes (a declared MAC or address is its node's) and fall back
to the MAC or port only where the topology declares nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qnet_tui.lab.conversations import Sources, mac_text
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology

LIMIT = 64  # findings a hub keeps; the ones last seen longest ago go first
CLAIMS = 1024  # addresses whose ARP/ND claimants a hub remembers
CLAIMANTS = 8  # MACs remembered per address
REMEMBERED = 4096  # keys whose counts are remembered (forgotten all at once past this)
UNSPECIFIED = frozenset({"0.0.0.0", "::"})

Log = Callable[[str, str], None]


class Declared:
    """What the topology says: whose MAC and address is which, and who may serve DHCP."""

    def __init__(self, topology: Topology) -> None:
        self.kind: dict[str, Kind | str] = {}
        self.mac: dict[str, str] = {}  # node -> its declared MAC
        self.mac_owner: dict[str, str] = {}  # MAC -> node
        self.address_owner: dict[str, str] = {}  # IP address -> node
        self.dhcp_servers: set[str] = set()
        for node in topology.nodes.values():
            self.kind[node.id] = node.kind
            mac = node.attrs.get("mac")
            if isinstance(mac, str):
                self.mac[node.id] = mac.lower()
                self.mac_owner.setdefault(mac.lower(), node.id)
            for attr in ("ipv4", "ipv6"):
                value = node.attrs.get(attr)
                if isinstance(value, str):
                    try:
                        self.address_owner.setdefault(str(ipaddress.ip_interface(value).ip), node.id)
                    except ValueError:
                        continue
            if node.kind in (Kind.GUEST_NIC, Kind.HOST_NIC) and node.get("dhcp_server") is True:
                self.dhcp_servers.add(node.id)
        # A tap's bridge's host NICs: their outside LANs are behind the tap.
        self.behind: dict[str, set[str]] = {}
        for tap in topology.of_kind(Kind.TAP):
            for bridge in topology.neighbours(tap.id):
                if self.kind.get(bridge) is Kind.BRIDGE:
                    nics = {n for n in topology.neighbours(bridge) if self.kind.get(n) is Kind.HOST_NIC}
                    self.behind.setdefault(tap.id, set()).update(nics)

    def claimant(self, mac: str, port: str) -> str:
        """Who claimed an address: the MAC's node, and the port it came through if that is another."""
        owner = self.mac_owner.get(mac)
        if owner is None:
            return f"{mac} through {port}"
        if owner == port:
            return f"{owner} ({mac})"
        if self.kind.get(port) is Kind.GUEST_NIC:
            return f"{port} with {owner}'s MAC ({mac})"
        return f"{owner} ({mac}) through {port}"

    def may_serve_dhcp(self, port: str, mac: str) -> bool:
        owner = self.mac_owner.get(mac)
        return bool(
            port in self.dhcp_servers
            or (owner is not None and owner in self.dhcp_servers)
            or self.behind.get(port, set()) & self.dhcp_servers
        )


@dataclass(slots=True)
class Finding:
    kind: str
    message: str
    ports: list[str]
    nodes: list[str]
    mac: str | None
    address: str | None
    count: int
    first: float
    last: float

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "ports": self.ports,
            "nodes": self.nodes,
            "mac": self.mac,
            "address": self.address,
            "count": self.count,
            "first": round(self.first, 3),
            "last": round(self.last, 3),
        }


@dataclass(slots=True)
class Seen:
    """One observation this tick: a finding as the frames so far make it."""

    key: tuple
    kind: str
    message: str
    ports: list[str]
    nodes: list[str]
    count: int
    mac: str | None = None
    address: str | None = None


class Index:
    """Which ports each source MAC and address came from, kept up to date
    from what the sources saw first since the last tick (Sources.fresh), so
    a tick costs what is new, not everything a bridged LAN ever sent."""

    def __init__(self, sources: Mapping[str, Sources]) -> None:
        self.mac_ports: dict[str, set[str]] = {}
        self.ip_ports: dict[str, set[str]] = {}
        self.shared_macs: set[str] = set()  # from two ports or more
        self.shared_ips: set[str] = set()
        for port, src in sources.items():  # all of it, once
            src.fresh.clear()
            for mac, ips in src.macs.items():
                self._add(port, mac, None)
                for ip in ips:
                    self._add(port, mac, ip)

    def take(self, sources: Mapping[str, Sources]) -> None:
        for port, src in sources.items():
            if src.fresh:
                fresh, src.fresh = src.fresh, []
                for mac, ip in fresh:
                    self._add(port, mac, ip)

    def _add(self, port: str, mac: str, ip: str | None) -> None:
        if ip is None:
            ports = self.mac_ports.setdefault(mac, set())
            ports.add(port)
            if len(ports) > 1:
                self.shared_macs.add(mac)
        elif ip not in UNSPECIFIED:
            ports = self.ip_ports.setdefault(ip, set())
            ports.add(port)
            if len(ports) > 1:
                self.shared_ips.add(ip)


class HubChecks:
    """The findings of one hub, updated once per statistics tick."""

    def __init__(self, hub: str, log: Log) -> None:
        self.hub = hub
        self.log = log
        self.findings: dict[tuple, Finding] = {}
        self.index: Index | None = None  # made from the sources at the first tick (and after a change)
        self.counted: dict[tuple, int] = {}  # key -> its count when last updated
        self.logged: set[tuple] = set()
        # address -> {MAC: [port it last came through, claims]}, the least recently claimed address first
        self.claims: dict[str, dict[str, list]] = {}

    def update(
        self,
        sources: Mapping[str, Sources],
        watched: Iterable[tuple[str, bytes]],
        declared: Declared,
        now: float,
    ) -> None:
        for port, frame in watched:
            self._claim(port, frame)
        if self.index is None:
            self.index = Index(sources)
        else:
            self.index.take(sources)
        seen = [
            *foreign_macs(sources, declared),
            *duplicate_macs(sources, self.index, declared),
            *duplicate_addresses(sources, self.index, declared),
            *rogue_dhcp(sources, declared),
            *self._conflicts(declared),
        ]
        if len(self.counted) > REMEMBERED:
            self.counted = {key: self.counted[key] for key in self.findings if key in self.counted}
        if len(self.logged) > REMEMBERED:
            self.logged &= self.findings.keys()
        for s in seen:
            if s.count <= self.counted.get(s.key, 0):
                continue  # nothing new since it was last counted (or since it was let go)
            self.counted[s.key] = s.count
            finding = self.findings.get(s.key)
            if finding is None:
                finding = self.findings[s.key] = Finding(s.kind, "", [], [], None, None, 0, now, now)
            finding.message, finding.ports, finding.nodes = s.message, s.ports, s.nodes
            finding.mac, finding.address, finding.count, finding.last = s.mac, s.address, s.count, now
            if s.key not in self.logged:
                self.logged.add(s.key)
                self.log("warning", f"{self.hub}: {s.kind}: {s.message}")
        # What all this tick's frames and the topology no longer make goes: the topology now
        # says it is right (every source above is cumulative, so the rest is made again each tick).
        made = {s.key for s in seen}
        ranked = sorted(
            ((key, f) for key, f in self.findings.items() if key in made), key=lambda item: item[1].last, reverse=True
        )
        self.findings = dict(ranked[:LIMIT])

    def snapshot(self) -> list[dict[str, Any]]:
        """The findings, the latest first."""
        return [f.row() for f in sorted(self.findings.values(), key=lambda f: f.last, reverse=True)]

    # -- ARP and neighbour discovery --------------------------------------------------

    def _claim(self, port: str, frame: bytes) -> None:
        claimed = read_claim(frame)
        if claimed is None:
            return
        address, mac = claimed
        macs = self.claims.pop(address, None) or {}
        self.claims[address] = macs  # to the end: the most recently claimed
        if len(self.claims) > CLAIMS:
            del self.claims[next(iter(self.claims))]
        entry = macs.get(mac)
        if entry is None:
            if len(macs) >= CLAIMANTS:
                return
            entry = macs[mac] = [port, 0]
        entry[0] = port
        entry[1] += 1

    def _conflicts(self, declared: Declared) -> Iterable[Seen]:
        for address, macs in self.claims.items():
            owner = declared.address_owner.get(address)
            rightful = declared.mac.get(owner) if owner is not None else None
            if rightful is None:
                if len(macs) < 2:
                    continue
                rightful = next(iter(macs))  # nobody declares its MAC: the first claimant stands
            others = [mac for mac in macs if mac != rightful]
            if not others:
                continue
            kind, how = ("arp-conflict", "ARP") if ":" not in address else ("nd-conflict", "neighbour discovery")
            by = " and ".join(declared.claimant(mac, macs[mac][0]) for mac in others)
            if owner is not None:
                message = f"{address}, {owner}'s address, is claimed in {how} by {by}"
            else:
                first = declared.claimant(rightful, macs[rightful][0])
                message = f"{address} is claimed in {how} by {first} and by {by}"
            ports = sorted({entry[0] for entry in macs.values()})
            yield Seen(
                (kind, address),
                kind,
                message,
                ports,
                _nodes(owner, *(declared.mac_owner.get(mac) for mac in macs), *ports),
                sum(macs[mac][1] for mac in others),
                mac=others[-1],
                address=address,
            )


# -- what the sources say ---------------------------------------------------------------


def foreign_macs(sources: Mapping[str, Sources], declared: Declared) -> Iterable[Seen]:
    for port, src in sources.items():
        own = declared.mac.get(port)
        if declared.kind.get(port) is not Kind.GUEST_NIC or own is None:
            continue  # taps, sockets, host NICs: bridged traffic, many MACs (see the module's docstring)
        for mac in src.macs:
            if mac == own:
                continue
            owner = declared.mac_owner.get(mac)
            whose = f"{owner}'s MAC" if owner else f"not its own {own}"
            yield Seen(
                ("foreign-mac", port, mac),
                "foreign-mac",
                f"{port} sends from {mac}, {whose}",
                [port],
                _nodes(port, owner),
                src.frames.get(mac, 0),
                mac=mac,
            )


def duplicate_macs(sources: Mapping[str, Sources], index: Index, declared: Declared) -> Iterable[Seen]:
    return _duplicates("duplicate-mac", "MAC", index.shared_macs, index.mac_ports, declared.mac_owner, sources)


def duplicate_addresses(sources: Mapping[str, Sources], index: Index, declared: Declared) -> Iterable[Seen]:
    return _duplicates("duplicate-ip", "address", index.shared_ips, index.ip_ports, declared.address_owner, sources)


def _duplicates(
    kind: str,
    what: str,
    shared: Iterable[str],
    ports_of: Mapping[str, Iterable[str]],
    owners: Mapping[str, str],
    sources: Mapping[str, Sources],
) -> Iterable[Seen]:
    """One MAC (what="MAC") or address sent from several ports: who sent it, and how much the intruders did."""
    for value in shared:
        owner = owners.get(value)
        counts = {
            port: (sources[port].frames if what == "MAC" else sources[port].ip_frames).get(value, 0)
            for port in ports_of[value]
        }
        home = _home(counts, owner)
        ports = sorted(counts)
        yield Seen(
            (kind, value),
            kind,
            f"{value}{_whose(owner, what)} is sent from {_and(ports)}",
            ports,
            _nodes(owner, *ports),
            sum(n for port, n in counts.items() if port != home),
            **({"mac": value} if what == "MAC" else {"address": value}),
        )


def rogue_dhcp(sources: Mapping[str, Sources], declared: Declared) -> Iterable[Seen]:
    for port, src in sources.items():
        for mac in src.dhcp:
            if declared.may_serve_dhcp(port, mac):
                continue
            owner = declared.mac_owner.get(mac)
            sender = port if owner in (None, port) else f"{owner} (through {port})"
            yield Seen(
                ("rogue-dhcp", port, mac),
                "rogue-dhcp",
                f"{sender} answers DHCP from {mac}; no node there is declared a DHCP server (dhcp_server: true)",
                [port],
                _nodes(port, owner),
                src.dhcp_frames.get(mac, 0),
                mac=mac,
            )


def _home(counts: dict[str, int], owner: str | None) -> str:
    """Of the ports a MAC or address came from (with its frames from each),
    the one it belongs to: its owner's port, else the one that sent the most."""
    return owner if owner in counts else max(counts, key=lambda port: (counts[port], port))


def _whose(owner: str | None, what: str) -> str:
    return f", {owner}'s {what}," if owner else ""


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _nodes(*names: str | None) -> list[str]:
    return sorted({name for name in names if name})


# -- decoding ARP and neighbour discovery ------------------------------------------------


def read_claim(frame: bytes) -> tuple[str, str] | None:
    """The (address, MAC) an ARP or neighbour discovery frame claims, or
    None: another frame, an address probe (from 0.0.0.0 or ::), or a frame
    too short or malformed to say."""
    if len(frame) < 14:
        return None
    off = 12
    if frame[12:14] == b"\x81\x00":
        off = 16
    ethertype = int.from_bytes(frame[off : off + 2], "big")
    body = frame[off + 2 :]
    if ethertype == 0x0806:
        return _arp_claim(body)
    if ethertype == 0x86DD:
        return _nd_claim(body, mac_text(frame[6:12]))
    return None


def _arp_claim(arp: bytes) -> tuple[str, str] | None:
    # Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4, op, sha, spa, tha, tpa.
    if len(arp) < 28 or arp[0:6] != b"\x00\x01\x08\x00\x06\x04":
        return None
    address = str(ipaddress.IPv4Address(arp[14:18]))
    if address == "0.0.0.0":
        return None  # a probe (RFC 5227): it claims nothing yet
    return address, mac_text(arp[8:14])


def _nd_claim(ip6: bytes, source_mac: str) -> tuple[str, str] | None:
    if len(ip6) < 40 + 24 or ip6[6] != 58 or ip6[0] >> 4 != 6:
        return None
    icmp = ip6[40:]
    kind = icmp[0]
    if kind == 136:  # advertisement: the target, by its target link-layer option
        address, option = ipaddress.IPv6Address(icmp[8:24]), 2
    elif kind == 135:  # solicitation: its source, by the source link-layer option
        address, option = ipaddress.IPv6Address(ip6[8:24]), 1
    else:
        return None
    if address.is_unspecified or address.is_multicast:
        return None  # duplicate address detection: a probe
    return str(address), _link_option(icmp[24:], option) or source_mac


def _link_option(options: bytes, wanted: int) -> str | None:
    """The MAC of the first link-layer option of type wanted; None if there is none."""
    while len(options) >= 8:
        kind, size = options[0], options[1] * 8
        if size == 0 or size > len(options):
            return None  # malformed (a zero length would never end)
        if kind == wanted and size >= 8:
            return mac_text(options[2:8])
        options = options[size:]
    return None


class Checks:
    """Every hub's checks in a lab: what stats.py calls once per tick and hub."""

    def __init__(self, topology: Topology, log: Log) -> None:
        self.log = log
        self.declared = Declared(topology)
        self.hubs: dict[str, HubChecks] = {}

    def topology_changed(self, topology: Topology, hubs: Iterable[str]) -> None:
        self.declared = Declared(topology)
        keep = set(hubs)
        self.hubs = {name: checks for name, checks in self.hubs.items() if name in keep}
        for checks in self.hubs.values():
            checks.index = None  # a hub made anew has sources anew: read them whole

    def run(self, hub: Any, now: float) -> list[dict[str, Any]]:
        """hub: a ports.Hub whose conversations were just counted this tick."""
        checks = self.hubs.get(hub.name)
        if checks is None:
            checks = self.hubs[hub.name] = HubChecks(hub.name, self.log)
        checks.update(hub.conversations.sources, hub.take_watched(), self.declared, now)
        return checks.snapshot()
