"""QEMU's language: the arguments that attach a real QEMU VM to a topology's
socket node, and a topology read from QEMU networking arguments."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from qnet_tui.model.edit import mac_candidates
from qnet_tui.model.kinds import NIC_MODELS, Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.values import ifname_problem, is_multicast, normalize_mac, qemu_socket, split_host_port


class QemuArgsError(Exception):
    pass


def _inet(prefix: str, address: str) -> str:
    host, port = split_host_port(address)
    return f"{prefix}.type=inet,{prefix}.host={host},{prefix}.port={port}"


def vm_args(t: Topology, node_id: str, runtime_dir: Path) -> list[str]:
    """The exact arguments for the QEMU VM that is guest NIC node_id. QEMU
    listens and the lab dials (and redials): QEMU 7.2's stream client never
    reconnects, so the other way round a lab restart would cut the VM off."""
    node = t.nodes[node_id]
    path = runtime_dir / qemu_socket(node_id)
    return [
        "-netdev",
        f"stream,id={node_id},server=on,addr.type=unix,addr.path={path}",
        *device_args(node_id, str(node.get("model")), str(node.attrs["mac"])),
    ]


def netdev_args(t: Topology, node_id: str, runtime_dir: Path, netdev_id: str | None = None) -> list[str]:
    """The -netdev a QEMU VM needs to plug into socket node node_id: the
    other end of what the lab serves (the lab listens, QEMU connects, and
    the other way round; a dgram's local and remote swap)."""
    node = t.nodes.get(node_id)
    if node is None:
        raise QemuArgsError(f"no node '{node_id}'")
    if node.kind is not Kind.SOCKET:
        raise QemuArgsError(
            f"{node_id} is a {getattr(node.kind, 'title', node.kind)}: qemu-args attaches VMs to socket nodes"
        )
    netdev_id = netdev_id or node_id
    a = node.attrs
    family, address = node.get("family"), str(a["address"])
    if family == "unix" and not os.path.isabs(address):
        address = str(runtime_dir / address)
    if a["transport"] == "stream":
        server = "off" if a.get("mode") == "listen" else "on"
        addr = f"addr.type=unix,addr.path={address}" if family == "unix" else _inet("addr", address)
        return ["-netdev", f"stream,id={netdev_id},server={server},{addr}"]
    # dgram: QEMU sends to our local address and binds our remote one.
    if family == "unix":
        local = a.get("local")
        if not local:
            raise QemuArgsError(f"{node_id}: a unix dgram socket needs 'local', the path QEMU sends to")
        local = local if os.path.isabs(local) else str(runtime_dir / local)
        return [
            "-netdev",
            f"dgram,id={netdev_id},local.type=unix,local.path={address},remote.type=unix,remote.path={local}",
        ]
    if is_multicast(address):
        return ["-netdev", f"dgram,id={netdev_id},{_inet('remote', address)}"]
    if not a.get("local"):
        raise QemuArgsError(f"{node_id}: a UDP socket needs 'local', the address QEMU sends to")
    return ["-netdev", f"dgram,id={netdev_id},{_inet('local', address)},{_inet('remote', str(a['local']))}"]


def device_args(netdev_id: str, model: str = "virtio-net-pci", mac: str | None = None) -> list[str]:
    return ["-device", f"{model},netdev={netdev_id}" + (f",mac={mac}" if mac else "")]


# -- import ----------------------------------------------------------------------

NET_OPTIONS = ("-net", "-netdev", "-nic", "-device")
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def parse_opts(text: str) -> tuple[str, dict[str, str]]:
    """'tap,id=n0,ifname=tap0' -> ('tap', {'id': 'n0', 'ifname': 'tap0'}); QEMU's ',,' is a comma."""
    parts = [p.replace("\0", ",") for p in text.replace(",,", "\0").split(",")]
    kind = parts[0] if parts and "=" not in parts[0] else ""
    opts = {}
    for part in parts[1:] if kind else parts:
        key, _, value = part.partition("=")
        opts[key] = value
    return kind, opts


class _Importer:
    def __init__(self) -> None:
        self.t = Topology(name="imported")
        self.problems: list[str] = []
        self.notes: list[str] = []  # what was imported as asked but deserves a word
        self.netdevs: dict[str, str] = {}  # QEMU netdev id -> node id
        self.hubports: dict[str, int] = {}  # hubport netdev id -> hub id
        self.counter = 0
        self.linked: set[frozenset[str]] = set()
        self.macs: set[str] = set()  # every MAC given out or written so far
        self.defaults = (f"52:54:00:12:34:{n:02x}" for n in range(0x56, 0x100))  # QEMU's own, counting up
        self.spares: Iterator[str] | None = None  # past them: the editor's order (edit.mac_candidates)

    def problem(self, index: int, option: str, value: str, why: str) -> None:
        self.problems.append(f"argument {index} ({option} {value}): {why}")

    def number(self, index: int, option: str, value: str, o: dict[str, str], key: str) -> int | None:
        """A hub number option (vlan=, hubid=; 0 when absent), or None and a problem."""
        text = o.get(key) or "0"
        if text.isdigit() and int(text) <= 4095:
            return int(text)
        self.problem(index, option, value, f"{key}={text} is not a number from 0 to 4095: left out")
        return None

    def new_id(self, wanted: str | None, prefix: str) -> str:
        base = "".join(c if c in _ID_CHARS else "-" for c in (wanted or ""))[:15].strip("-.")
        if base and base not in self.t.nodes and ifname_problem(base) is None:
            return base
        while True:
            self.counter += 1
            candidate = f"{prefix}{self.counter}"
            if candidate not in self.t.nodes:
                return candidate

    def add(self, kind: Kind, wanted: str | None, prefix: str, attrs: dict) -> str:
        node_id = self.new_id(wanted, prefix)
        self.t.add(Node(node_id, kind, attrs))
        return node_id

    def socket(self, attrs: dict[str, str], wanted: str | None) -> str:
        """A socket node. QEMU's absolute unix paths stay where they are, which
        the topology must say (external: true), and the person importing should know."""
        node_id = self.add(Kind.SOCKET, wanted, "sock", attrs)
        if attrs.get("family") == "unix":
            outside = [attrs[k] for k in ("address", "local") if os.path.isabs(attrs.get(k) or "")]
            if outside:
                attrs["external"] = True
                paths = " and ".join(outside)
                self.notes.append(f"{node_id}: unix path {paths} is outside the lab's folder: marked external: true")
        return node_id

    def hub(self, hub_id: int) -> str:
        node_id = f"hub{hub_id}"
        if node_id not in self.t.nodes:
            self.t.add(Node(node_id, Kind.HUB, {"vlan": hub_id}))
        return node_id

    def link(self, a: str, b: str) -> None:
        if frozenset((a, b)) not in self.linked:
            self.linked.add(frozenset((a, b)))
            self.t.links.append((a, b))

    def mac(self, given: str | None) -> str:
        """The MAC given, or the next free one: each candidate is tried once, however many NICs."""
        if given:
            self.macs.add(normalize_mac(given))
            return normalize_mac(given)
        for mac in self.defaults:
            if mac not in self.macs:
                self.macs.add(mac)
                return mac
        if self.spares is None:
            self.spares = mac_candidates()
        for mac in self.spares:
            if mac not in self.macs:
                self.macs.add(mac)
                return mac
        raise QemuArgsError("every MAC address in 52:54:00:xx:xx:xx is taken")

    def backend(
        self, index: int, option: str, value: str, kind: str, o: dict[str, str], name: str | None
    ) -> str | None:
        """A host-side netdev (tap, bridge, socket, stream, dgram) as a node; None if unsupported."""
        if kind == "tap":
            if o.get("fd") or o.get("fds"):
                self.problem(index, option, value, "a tap given by file descriptor cannot be recreated")
                return None
            tap = self.add(Kind.TAP, o.get("ifname") or name, "tap", {})
            if o.get("br"):
                bridge = o["br"] if o["br"] in self.t.nodes else self.add(Kind.BRIDGE, o["br"], "br", {})
                self.link(bridge, tap)
            return tap
        if kind == "bridge":
            tap = self.add(Kind.TAP, name, "tap", {})
            br = o.get("br", "br0")
            bridge = br if br in self.t.nodes else self.add(Kind.BRIDGE, br, "br", {})
            self.link(bridge, tap)
            return tap
        if kind == "socket":
            return self.socket_legacy(index, option, value, o, name)
        if kind == "stream":
            server = o.get("server", "off") in ("on", "yes", "true")
            attrs = {"transport": "stream", "mode": "connect" if server else "listen"}
            if o.get("addr.type") == "unix":
                attrs |= {"family": "unix", "address": o.get("addr.path", "")}
            elif o.get("addr.type") == "inet":
                attrs |= {"family": "inet", "address": f"{o.get('addr.host') or '127.0.0.1'}:{o.get('addr.port')}"}
            else:
                self.problem(index, option, value, f"stream address type {o.get('addr.type')!r} is not supported")
                return None
            return self.socket(attrs, name)
        if kind == "dgram":
            return self.dgram(index, option, value, o, name)
        if kind == "user":
            self.problem(
                index,
                option,
                value,
                "user-mode networking (slirp) lives inside QEMU and has no node here; "
                "attach that QEMU through a socket node instead",
            )
            return None
        self.problem(index, option, value, f"netdev type {kind!r} is not supported")
        return None

    def socket_legacy(self, index: int, option: str, value: str, o: dict[str, str], name: str | None) -> str | None:
        def addr(text: str) -> str:
            host, _, port = text.rpartition(":")
            return f"{host or '127.0.0.1'}:{port}"

        if "listen" in o:  # QEMU listens: the lab connects
            attrs = {"transport": "stream", "family": "inet", "mode": "connect", "address": addr(o["listen"])}
        elif "connect" in o:
            attrs = {"transport": "stream", "family": "inet", "mode": "listen", "address": addr(o["connect"])}
        elif "mcast" in o:
            attrs = {"transport": "dgram", "family": "inet", "address": addr(o["mcast"])}
        elif "udp" in o and "localaddr" in o:  # QEMU sends to udp= from localaddr=: the lab the other way round
            attrs = {"transport": "dgram", "family": "inet", "address": addr(o["localaddr"]), "local": addr(o["udp"])}
        else:
            self.problem(index, option, value, "a socket netdev needs listen=, connect=, mcast= or udp=/localaddr=")
            return None
        return self.socket(attrs, name)

    def dgram(self, index: int, option: str, value: str, o: dict[str, str], name: str | None) -> str | None:
        def where(prefix: str) -> str | None:
            kind = o.get(f"{prefix}.type")
            if kind == "inet":
                return f"{o.get(f'{prefix}.host')}:{o.get(f'{prefix}.port')}"
            if kind == "unix":
                return o.get(f"{prefix}.path")
            return None

        remote, local = where("remote"), where("local")
        family = "unix" if "unix" in (o.get("remote.type"), o.get("local.type")) else "inet"
        if remote and is_multicast(remote):
            attrs = {"transport": "dgram", "family": family, "address": remote}
        elif remote and local:
            attrs = {"transport": "dgram", "family": family, "address": local, "local": remote}
        else:
            self.problem(index, option, value, "a dgram netdev needs remote= and local= (or a multicast remote)")
            return None
        return self.socket(attrs, name)

    def nic(self, model: str, o: dict[str, str], wanted: str | None) -> str:
        return self.add(
            Kind.GUEST_NIC, wanted, "vm", {"model": model, "mac": self.mac(o.get("mac") or o.get("macaddr"))}
        )

    def run(self, argv: list[str]) -> None:
        i = 0
        while i < len(argv):
            option = argv[i]
            if option in NET_OPTIONS and i + 1 < len(argv):
                self.one(i + 1, option, argv[i + 1])
                i += 2
                continue
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else ""
            self.problem(i + 1, option, value, "not a networking argument: left out")
            i += 2 if value else 1

    def one(self, index: int, option: str, value: str) -> None:
        kind, o = parse_opts(value)
        if option == "-net":
            vlan = self.number(index, option, value, o, "vlan")
            if vlan is None:
                return
            if kind == "nic":
                self.link(self.hub(vlan), self.nic(o.get("model", "e1000"), o, o.get("name") or o.get("id")))
            elif kind != "none":
                node = self.backend(index, option, value, kind, o, o.get("name") or o.get("id"))
                if node:
                    self.link(self.hub(vlan), node)
        elif option == "-netdev":
            netdev = o.get("id", "")
            if not netdev:
                self.problem(index, option, value, "a -netdev needs id=")
            elif kind == "hubport":
                hubid = self.number(index, option, value, o, "hubid")
                if hubid is None:
                    return
                hub = self.hub(hubid)
                self.hubports[netdev] = hubid
                if o.get("netdev") in self.netdevs:
                    self.link(hub, self.netdevs[o["netdev"]])
            else:
                node = self.backend(index, option, value, kind, o, netdev)
                if node:
                    self.netdevs[netdev] = node
        elif option == "-device":
            if kind not in NIC_MODELS:
                self.problem(index, option, value, f"{kind!r} is not a NIC model QEMU knows: left out")
                return
            peer = o.get("netdev")
            guest = self.nic(kind, o, o.get("id"))
            if peer in self.hubports:
                self.link(self.hub(self.hubports[peer]), guest)
            elif peer in self.netdevs:
                self.link(self.netdevs[peer], guest)
            elif peer:
                self.problem(
                    index,
                    option,
                    value,
                    f"netdev {peer!r} is not defined (or not supported); the NIC is kept, unconnected",
                )
        elif option == "-nic":
            if kind == "none":
                return
            node = self.backend(index, option, value, kind, o, o.get("id"))
            if node:
                self.link(node, self.nic(o.get("model", "e1000"), o, None))


def import_args(argv: list[str], notes: list[str] | None = None) -> tuple[Topology, list[str]]:
    """QEMU networking arguments -> a topology, and what could not be mapped,
    by argument (nothing is dropped silently). notes, if given, gets what was
    mapped but deserves a word (a socket path outside the lab's folder)."""
    importer = _Importer()
    importer.run(argv)
    if notes is not None:
        notes += importer.notes
    return importer.t, importer.problems


def export_args(t: Topology, runtime_dir: Path) -> list[str]:
    """The topology's QEMU side as QEMU arguments: hubs as hubports, guest NICs
    as -device, taps and sockets as -netdev. Import reads them back to the same
    topology; bridges and host NICs have no QEMU form and are left out."""
    argv: list[str] = []
    for node in t.nodes.values():
        if node.kind is Kind.TAP:
            argv += ["-netdev", f"tap,id={node.id},ifname={node.id},script=no,downscript=no"]
        elif node.kind is Kind.SOCKET:
            argv += netdev_args(t, node.id, runtime_dir)
    for node in t.nodes.values():
        if node.kind is not Kind.HUB:
            continue
        vlan = node.attrs["vlan"]
        for peer in t.neighbours(node.id):
            if t.nodes[peer].kind in (Kind.TAP, Kind.SOCKET):
                argv += ["-netdev", f"hubport,id=hp-{peer},hubid={vlan},netdev={peer}"]
    for node in t.nodes.values():
        if node.kind is not Kind.GUEST_NIC:
            continue
        peers = t.neighbours(node.id)
        peer = peers[0] if peers else None
        if peer and t.nodes[peer].kind is Kind.HUB:
            argv += ["-netdev", f"hubport,id=hp-{node.id},hubid={t.nodes[peer].attrs['vlan']}"]
            netdev = f"hp-{node.id}"
        else:
            netdev = peer
        device = f"{node.get('model')},id={node.id},mac={node.attrs['mac']}" + (f",netdev={netdev}" if netdev else "")
        argv += ["-device", device]
    return argv
