"""Topologies from other labs' files: containerlab topologies (.clab.yml) and
GNS3 projects (.gns3). What has no equivalent here is reported, one line per
element, never dropped silently.

Both formats wire machines together with cables; here a guest NIC links to a
hub (kinds.SLOTS). So every broadcast domain becomes a hub: a containerlab
bridge, a GNS3 hub or switch, and each cable between two machines (a hub of
two ports). Cables between two such domains merge them into one hub."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qnet_tui.model.export_clab import FORWARDING_SYSCTLS, LABEL_PREFIX
from qnet_tui.model.kinds import FIELD_BY_NAME, GUEST_FIELD, NIC_MODELS, Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.values import IFNAME_MAX, RESERVED_IFNAMES, ifname_problem, mac_problem, normalize_mac

CLAB_SUFFIXES = (".clab.yml", ".clab.yaml", ".yml", ".yaml")
GNS3_SUFFIXES = (".gns3",)
_ID_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class ImportFailed(Exception):
    """The file cannot be read as the format at all; str() says what and where."""

    def at(self, source: str) -> str:
        """The message after the file's name: SOURCE:LINE:COL: ... when placed, else SOURCE: ..."""
        text = str(self)
        return f"{source}:{text}" if text[:1].isdigit() else f"{source}: {text}"


@dataclass
class Imported:
    """A topology read from another format, what was left out (one line per
    element), and comments for the file written: above it, and above a node."""

    topology: Topology
    report: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    comments: dict[str, str] = field(default_factory=dict)


def format_of(path: str | Path) -> str | None:
    """'clab', 'gns3', or None for a name of neither format."""
    name = str(path).lower()
    if name.endswith(GNS3_SUFFIXES):
        return "gns3"
    if name.endswith(CLAB_SUFFIXES):
        return "clab"
    return None


def import_file(path: str | Path, text: str) -> Imported:
    """The topology in text, read as the format path's name says; raises
    ImportFailed for a name of no known format or text that does not parse."""
    kind = format_of(path)
    if kind == "gns3":
        return import_gns3(text)
    if kind == "clab":
        return import_clab(text)
    raise ImportFailed(
        f"{path}: not a format import reads: a containerlab topology ends in "
        f"{', '.join(CLAB_SUFFIXES)}, a GNS3 project in .gns3"
    )


def import_path(path: Path) -> Imported:
    """import_file of the file at path; a file that cannot be read raises ImportFailed too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return import_file(path, text)


def short(value: Any, most: int = 60) -> str:
    """A value as a report line shows it: JSON-like, cut short."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= most else text[: most - 3] + "..."


# -- the common part: machines, their NICs, and the broadcast domains between them --


class _Builder:
    def __init__(self, name: str) -> None:
        self.t = Topology(name=_lab_name(name))
        self.out = Imported(self.t)
        self.taken: set[str] = set()
        self.macs: set[str] = set()
        # Broadcast domains: each a hub-to-be; cables between two merge them.
        self.parent: list[int] = []
        self.domain_wanted: list[tuple[str, str | None]] = []  # (id wanted, comment)
        self.domain_vlan: dict[int, int] = {}  # a domain's VLAN, when the file says it (an export's label)
        self.ports: list[tuple[str, int]] = []  # (point node id, domain)
        self.cabled: set[str] = set()

    def report(self, line: str) -> None:
        self.out.report.append(line)

    def new_id(self, wanted: str) -> str:
        """An id made of what an interface name may hold, unique in the lab."""
        base = _ID_BAD.sub("-", wanted).strip("-.") or "node"
        if not base[0].isalnum():
            base = "n" + base
        base = base[:IFNAME_MAX]
        candidate, n = base, 2
        while candidate in self.taken or candidate in RESERVED_IFNAMES or ifname_problem(candidate):
            suffix = f"-{n}"
            candidate = base[: IFNAME_MAX - len(suffix)] + suffix
            n += 1
        self.taken.add(candidate)
        return candidate

    def add(self, kind: Kind, wanted: str, attrs: dict[str, Any] | None = None, comment: str | None = None) -> str:
        node_id = self.new_id(wanted)
        self.t.add(Node(node_id, kind, dict(attrs or {})))
        if comment:
            self.out.comments[node_id] = comment
        return node_id

    def mac(self, given: str | None, seed: str, where: str) -> str:
        """given if it is a free MAC; else one from a hash of seed: the same
        file gives the same MACs, and none twice."""
        problem = None
        if given is not None:
            problem = mac_problem(given) or ("used already" if normalize_mac(given) in self.macs else None)
        if given is not None and problem is None:
            mac = normalize_mac(given)
        else:
            digest = hashlib.sha256(seed.encode()).digest()
            n = int.from_bytes(digest[:3], "big")
            mac = _mac_of(n)
            while mac in self.macs:
                n = (n + 1) & 0xFFFFFF
                mac = _mac_of(n)
        if problem:
            self.report(f"{where}: MAC {short(given)} {problem}; {mac} instead")
        self.macs.add(mac)
        return mac

    def domain(self, wanted: str, comment: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.domain_wanted.append((wanted, comment))
        return len(self.parent) - 1

    def root(self, d: int) -> int:
        while self.parent[d] != d:
            self.parent[d] = self.parent[self.parent[d]]
            d = self.parent[d]
        return d

    def cable(self, a: tuple[str, Any], b: tuple[str, Any], what: str, wanted: str) -> None:
        """A cable between two ends, each ('point', node id) or ('domain', n);
        wanted: the id of its hub, if it needs one of its own."""
        for kind, value in (a, b):
            if kind == "point" and value in self.cabled:
                self.report(f"{what}: {value} is cabled already; a NIC takes one cable; left out")
                return
        points = [v for k, v in (a, b) if k == "point"]
        domains = [v for k, v in (a, b) if k == "domain"]
        self.cabled.update(points)
        if len(points) == 2:
            d = self.domain(wanted, f"{what}: a cable, here a hub of two ports")
            domains = [d]
        elif len(domains) == 2:
            ra, rb = self.root(domains[0]), self.root(domains[1])
            if ra == rb:
                self.report(f"{what}: both ends are on one hub already (a loop); left out")
            else:
                self.parent[max(ra, rb)] = min(ra, rb)
                first, second = self.domain_wanted[min(ra, rb)][0], self.domain_wanted[max(ra, rb)][0]
                self.report(f"{what}: joins {first} and {second} into one hub (one broadcast domain)")
        for p in points:
            self.ports.append((p, domains[0]))

    def finish(self) -> Imported:
        """The hubs of the broadcast domains, VLAN 1, 2, ... in order, and their links."""
        hub_of: dict[int, str] = {}
        roots = [d for d in range(len(self.domain_wanted)) if self.root(d) == d]
        given = {d: self.domain_vlan[d] for d in roots if d in self.domain_vlan}
        used, vlan = set(), 0
        for d in roots:
            wanted, comment = self.domain_wanted[d]
            if d in given and given[d] not in used:
                number = given[d]
            else:
                vlan += 1
                while vlan in used or vlan in given.values():
                    vlan += 1
                number = vlan
            used.add(number)
            hub_of[d] = self.add(Kind.HUB, wanted, {"vlan": number}, comment)
        for point, d in self.ports:
            self.t.links.append((point, hub_of[self.root(d)]))
        return self.out


VLAN_MAX = FIELD_BY_NAME[Kind.HUB]["vlan"].int_range[1]


def _mac_of(n: int) -> str:
    return "52:54:00:" + ":".join(f"{(n >> s) & 0xFF:02x}" for s in (16, 8, 0))


def _lab_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:32].strip("-") or "imported"


def _natural(name: str) -> list[Any]:
    """eth2 before eth10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


# -- containerlab -----------------------------------------------------------------

CLAB_HUB_KINDS = ("bridge", "ovs-bridge")
_CLAB_SPECIAL = ("host", "mgmt-net", "macvlan")  # endpoint "nodes" that are no node


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark is not None else ""
        raise ImportFailed(f"{where}not YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ImportFailed(f"not YAML: {exc}") from None


@dataclass
class _ClabNic:
    node: str
    ifname: str
    mac: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    gateway: str | None = None
    gateway6: str | None = None


class _Clab:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.b = _Builder(str(data.get("name") or "imported"))
        self.kinds: dict[str, str] = {}  # node -> containerlab kind
        self.nics: dict[tuple[str, str], _ClabNic] = {}
        self.domains: dict[str, int] = {}  # bridge node -> domain
        self.cables: list[tuple[tuple[str, str], tuple[str, str], str, int]] = []
        self.labels: dict[str, dict[str, str]] = {}  # node -> its qnet-tui.* labels (an export's)
        self.forwarding: set[str] = set()  # linux nodes whose exec turns IP forwarding on

    def run(self) -> Imported:
        b, data = self.b, self.data
        for key in data:
            if key not in ("name", "topology"):
                b.report(f"{key}: {short(data[key])}: containerlab's {key} has no equivalent; left out")
        topo = data.get("topology")
        if not isinstance(topo, dict):
            raise ImportFailed("not a containerlab topology: no 'topology:' mapping")
        nodes = topo.get("nodes") or {}
        links = topo.get("links") or []
        if not isinstance(nodes, dict):
            raise ImportFailed("topology.nodes: must be a mapping of node names")
        if not isinstance(links, list):
            raise ImportFailed("topology.links: must be a list")
        default_kind = self.defaults(topo)
        for key in topo:
            if key not in ("nodes", "links", "kinds", "defaults"):
                b.report(f"topology.{key}: {short(topo[key])}: has no equivalent; left out")
        for name, body in nodes.items():
            self.node(str(name), body if isinstance(body, dict) else {}, default_kind)
        for i, link in enumerate(links, 1):
            self.link(i, link)
        self.build(nodes)
        return b.finish()

    def defaults(self, topo: dict[str, Any]) -> str | None:
        """The kind nodes without one get; the rest of defaults and kinds is reported."""
        for key in ("defaults", "kinds"):
            if topo.get(key) and not isinstance(topo[key], dict):
                self.b.report(f"topology.{key}: {short(topo[key])}: not a mapping; left out")
        defaults = topo.get("defaults") if isinstance(topo.get("defaults"), dict) else {}
        for key, value in defaults.items():
            if key != "kind":
                self.b.report(f"topology.defaults.{key}: {short(value)}: has no equivalent; left out")
        kinds = topo.get("kinds") if isinstance(topo.get("kinds"), dict) else {}
        for kind, body in kinds.items():
            for key, value in (body or {}).items() if isinstance(body, dict) else ():
                self.b.report(f"topology.kinds.{kind}.{key}: {short(value)}: has no equivalent; left out")
        kind = defaults.get("kind")
        return str(kind) if kind else None

    def node(self, name: str, body: dict[str, Any], default_kind: str | None) -> None:
        kind = str(body.get("kind") or default_kind or "")
        self.kinds[name] = kind
        where = f"node {name}"
        if kind not in ("linux", *CLAB_HUB_KINDS):
            self.b.report(f"{where}: kind {kind or '(none)'} has no equivalent; left out")
            return
        for key, value in body.items():
            if key == "kind" or (key == "exec" and kind == "linux"):
                continue
            if key == "labels" and isinstance(value, dict):
                self.label(name, value)
                continue
            self.b.report(f"{where}: {key} {short(value)} has no equivalent; left out")
        if kind in CLAB_HUB_KINDS:
            self.domains[name] = self.b.domain(
                name,
                f"containerlab {kind} {name}: a Linux bridge that floods like a hub for a lab; here a hub",
            )
            vlan = self.labels.get(name, {}).get("vlan", "")
            if vlan.isdigit() and int(vlan) <= VLAN_MAX:
                self.b.domain_vlan[self.domains[name]] = int(vlan)

    def label(self, name: str, labels: dict[Any, Any]) -> None:
        """qnet-tui.* labels (what export wrote: NIC ids, a hub's VLAN, a hostname) are read; others reported."""
        for key, value in labels.items():
            if isinstance(key, str) and key.startswith(LABEL_PREFIX):
                self.labels.setdefault(name, {})[key.removeprefix(LABEL_PREFIX)] = str(value)
            else:
                self.b.report(f"node {name}: label {short(key)}: {short(value)} has no equivalent; left out")

    def endpoint(self, i: int, end: Any) -> tuple[str, str, str | None] | None:
        """(node, interface, mac) of one end of link i, or None (reported)."""
        if isinstance(end, str) and ":" in end:
            node, _, ifname = end.partition(":")
            return node, ifname, None
        if isinstance(end, dict) and isinstance(end.get("node"), str) and isinstance(end.get("interface"), str):
            for key in end:
                if key not in ("node", "interface", "mac"):
                    self.b.report(
                        f"link {i}: endpoint {end['node']}: {key} {short(end[key])} has no equivalent; left out"
                    )
            mac = end.get("mac")
            return end["node"], end["interface"], mac if isinstance(mac, str) else None
        self.b.report(f"link {i}: endpoint {short(end)} is neither NODE:INTERFACE nor {{node, interface}}; left out")
        return None

    def link(self, i: int, link: Any) -> None:
        b = self.b
        kind = link.get("type", "veth") if isinstance(link, dict) else None
        if kind != "veth" and kind is not None:
            b.report(f"link {i}: type {short(kind)} has no equivalent (only veth links are); left out")
            return
        if not isinstance(link, dict) or not isinstance(link.get("endpoints"), list):
            b.report(f"link {i}: {short(link)}: no endpoints list; left out")
            return
        for key, value in link.items():
            if key not in ("endpoints", "type"):
                b.report(f"link {i}: {key} {short(value)} has no equivalent; left out")
        ends = [e for e in (self.endpoint(i, end) for end in link["endpoints"]) if e is not None]
        if len(ends) != len(link["endpoints"]):
            return
        if len(ends) != 2:
            b.report(f"link {i}: {len(ends)} endpoints; a veth link has two; left out")
            return
        shown = " -- ".join(f"{n}:{f}" for n, f, _ in ends)
        for node, _, _ in ends:
            if node in _CLAB_SPECIAL:
                b.report(f"link {i} ({shown}): containerlab's {node} endpoint has no equivalent; left out")
                return
            if node not in self.kinds:
                b.report(f"link {i} ({shown}): no node {node} in topology.nodes; left out")
                return
        kept = []
        for node, ifname, mac in ends:
            if self.kinds[node] == "linux":
                nic = self.nics.setdefault((node, ifname), _ClabNic(node, ifname))
                nic.mac = nic.mac or mac
                kept.append(("nic", f"{node}:{ifname}"))
            elif self.kinds[node] in CLAB_HUB_KINDS:
                kept.append(("bridge", node))
            else:
                kept.append(("gone", node))
        if any(k == "gone" for k, _ in kept):
            gone = ", ".join(v for k, v in kept if k == "gone")
            b.report(f"link {i} ({shown}): its end {gone} is left out, so is the link")
            return
        self.cables.append((kept[0], kept[1], f"link {i} ({shown})", i))

    def exec_lines(self, name: str, lines: Any) -> None:
        if not isinstance(lines, list):
            lines = [lines]
        routes: list[tuple[str, str | None, str]] = []
        for line in lines:
            text = str(line)
            if not self.exec_line(name, text, routes):
                self.b.report(f"node {name}: exec {short(text)} has no equivalent; left out")
        for gw, dev, text in routes:
            self.route(name, gw, dev, text)

    def exec_line(self, name: str, text: str, routes: list[tuple[str, str | None, str]]) -> bool:
        """Map one exec line onto the node's NICs; False: not a line it reads."""
        try:
            words = shlex.split(text)
        except ValueError:
            return False
        if words[:2] == ["sysctl", "-w"] and words[2:] and words[2] in FORWARDING_SYSCTLS:
            self.forwarding.add(name)  # a router: the guest forwards
            return True
        if words[:1] != ["ip"]:
            return False
        words = [w for w in words[1:] if w not in ("-4", "-6")]
        if words[:2] in (["addr", "add"], ["address", "add"], ["a", "add"]) and len(words) == 5 and words[3] == "dev":
            nic = self.nic_named(name, words[4], text)
            if nic is None:
                return True
            try:
                version = ipaddress.ip_interface(words[2]).version
            except ValueError:
                return False
            if "/" not in words[2]:
                return False
            slot = "ipv4" if version == 4 else "ipv6"
            if getattr(nic, slot) is not None:
                self.b.report(
                    f"node {name}: exec {short(text)}: {words[4]} has its {slot} already; one per NIC; left out"
                )
            else:
                setattr(nic, slot, words[2])
            return True
        if words[:2] == ["link", "set"]:
            rest = words[2:]
            if rest[:1] == ["dev"]:
                rest = rest[1:]
            if len(rest) == 3 and rest[1] == "address" and not mac_problem(rest[2]):
                nic = self.nic_named(name, rest[0], text)
                if nic is not None:
                    nic.mac = rest[2]
                return True
            return False
        if words[:3] in (["route", "add", "default"], ["route", "replace", "default"]) and words[3:4] == ["via"]:
            rest = words[5:]
            if rest and (rest[0] != "dev" or len(rest) != 2):
                return False
            routes.append((words[4], rest[1] if rest else None, text))
            return True
        return False

    def nic_named(self, name: str, ifname: str, text: str) -> _ClabNic | None:
        nic = self.nics.get((name, ifname))
        if nic is None:
            self.b.report(f"node {name}: exec {short(text)}: no link of {name} has {ifname}; left out")
        return nic

    def route(self, name: str, gw: str, dev: str | None, text: str) -> None:
        try:
            router = ipaddress.ip_address(gw)
        except ValueError:
            self.b.report(f"node {name}: exec {short(text)}: {gw} is no address; left out")
            return
        slot, gslot = ("ipv4", "gateway") if router.version == 4 else ("ipv6", "gateway6")
        nics = [n for (node, _), n in self.nics.items() if node == name]
        if dev is not None:
            nics = [n for n in nics if n.ifname == dev]
        on_link = [n for n in nics if getattr(n, slot) and router in ipaddress.ip_interface(getattr(n, slot)).network]
        if not on_link:
            self.b.report(
                f"node {name}: exec {short(text)}: no NIC of {name} has an address in {gw}'s subnet; left out"
            )
        elif any(getattr(n, gslot) for (node, _), n in self.nics.items() if node == name):
            self.b.report(f"node {name}: exec {short(text)}: {name} has its default route already; left out")
        else:
            setattr(on_link[0], gslot, gw)

    def build(self, nodes: dict[str, Any]) -> None:
        b = self.b
        points: dict[str, str] = {}
        for name, body in nodes.items():
            name = str(name)
            if self.kinds.get(name) != "linux":
                continue
            if isinstance(body, dict) and "exec" in body:
                self.exec_lines(name, body["exec"])
            mine = sorted((n for (node, _), n in self.nics.items() if node == name), key=lambda n: _natural(n.ifname))
            renamed = ", ".join(f"{n.ifname} is eth{i}" for i, n in enumerate(mine) if n.ifname != f"eth{i}")
            note = f"containerlab linux node {name}" + (f"; inside it {renamed}" if renamed else "")
            labels = self.labels.get(name, {})
            # An export's lone guest NIC (guest: false): a machine of one NIC, named as the node.
            lone = labels.get("guest") == "false" and len(mine) == 1 and name not in self.forwarding
            guest = None
            if not lone:
                attrs = {"forwarding": True} if name in self.forwarding else {}
                if "hostname" in labels:
                    attrs["hostname"] = labels["hostname"]
                guest = b.add(Kind.GUEST, name, attrs, comment=note)
            for nic in mine:
                attrs = {GUEST_FIELD: guest} if guest is not None else {}
                attrs["mac"] = b.mac(nic.mac, f"{name}:{nic.ifname}", f"node {name}: {nic.ifname}")
                for key in ("ipv4", "gateway", "ipv6", "gateway6"):
                    if getattr(nic, key) is not None:
                        attrs[key] = getattr(nic, key)
                if labels.get(f"model.{nic.ifname}") in NIC_MODELS:
                    attrs["model"] = labels[f"model.{nic.ifname}"]
                wanted = name if lone else labels.get(nic.ifname, f"{name}-{nic.ifname}")
                points[f"{name}:{nic.ifname}"] = b.add(Kind.GUEST_NIC, wanted, attrs, comment=note if lone else None)
        for a, c, what, i in self.cables:
            b.cable(self.end(a, points), self.end(c, points), what, f"link{i}")

    def end(self, end: tuple[str, str], points: dict[str, str]) -> tuple[str, Any]:
        kind, value = end
        return ("point", points[value]) if kind == "nic" else ("domain", self.domains[value])


def import_clab(text: str) -> Imported:
    data = _load_yaml(text)
    if not isinstance(data, dict):
        raise ImportFailed("not a containerlab topology: the file is not a YAML mapping")
    out = _Clab(data).run()
    out.header += [
        "containerlab's linux nodes are guests; its bridges, and each veth cable between two nodes,",
        "are hubs (a containerlab bridge in a lab floods like a hub).",
    ]
    return out


# -- GNS3 -------------------------------------------------------------------------

# A project's own bookkeeping and the canvas: nothing of the network.
_GNS3_QUIET_TOP = {
    "name", "project_id", "revision", "version", "type", "topology", "auto_close", "auto_open", "auto_start",
    "scene_height", "scene_width", "zoom", "show_layers", "snap_to_grid", "show_grid", "grid_size",
    "drawing_grid_size", "show_interface_labels", "supplier", "variables",
}  # fmt: skip
_GNS3_QUIET_NODE = {
    "node_id", "name", "node_type", "properties", "compute_id", "console", "console_type", "console_auto_start",
    "x", "y", "z", "symbol", "label", "locked", "port_name_format", "port_segment_size", "first_port_name",
    "width", "height", "template_id", "custom_adapters", "aux", "aux_type",
}  # fmt: skip
_GNS3_QUIET_LINK = {"link_id", "nodes", "link_type", "link_style", "filters", "suspend"}
_GNS3_GUESTS = ("qemu", "vpcs")
_GNS3_HUBS = ("ethernet_hub", "ethernet_switch")
# Qemu node properties this import reads; the rest are reported.
_QEMU_READ = {"adapters", "adapter_type", "mac_address"}


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None


class _Gns3:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.b = _Builder(str(data.get("name") or "imported"))
        self.nodes: dict[str, dict[str, Any]] = {}  # node_id -> node
        self.domains: dict[str, int] = {}
        self.points: dict[tuple[str, int, int], str] = {}  # (node_id, adapter, port) -> node id here

    def run(self) -> Imported:
        b, data = self.b, self.data
        topo = data.get("topology")
        if not isinstance(topo, dict):
            raise ImportFailed("not a GNS3 project: no 'topology' object")
        for key, value in data.items():
            if key not in _GNS3_QUIET_TOP:
                b.report(f"{key}: {short(value)}: has no equivalent; left out")
        nodes = topo.get("nodes") or []
        links = topo.get("links") or []
        if not isinstance(nodes, list) or not isinstance(links, list):
            raise ImportFailed("topology.nodes and topology.links: must be lists")
        for key, value in topo.items():
            if key in ("drawings",) and isinstance(value, list):
                for d in value:
                    b.report(f"drawing {short(d.get('drawing_id') if isinstance(d, dict) else d)}: left out")
            elif key not in ("nodes", "links", "computes") and value:
                b.report(f"topology.{key}: {short(value)}: has no equivalent; left out")
        for node in nodes:
            if isinstance(node, dict) and isinstance(node.get("node_id"), str):
                self.nodes[node["node_id"]] = node
            else:
                b.report(f"topology.nodes: {short(node)}: no node_id; left out")
        used = self.used(links)
        for node in self.nodes.values():
            self.node(node, used.get(node["node_id"], []))
        for i, link in enumerate(links, 1):
            self.link(i, link)
        return b.finish()

    def name(self, node_id: str) -> str:
        node = self.nodes.get(node_id, {})
        return str(node.get("name") or node_id)

    def used(self, links: list[Any]) -> dict[str, list[tuple[int, int]]]:
        """Each node's (adapter, port) pairs its links use, in order."""
        out: dict[str, list[tuple[int, int]]] = {}
        for link in links:
            for end in _list(link.get("nodes")) if isinstance(link, dict) else []:
                if isinstance(end, dict) and isinstance(end.get("node_id"), str) and end["node_id"] in self.nodes:
                    a, p = end.get("adapter_number"), end.get("port_number")
                    if isinstance(a, int) and isinstance(p, int) and (a, p) not in out.setdefault(end["node_id"], []):
                        out[end["node_id"]].append((a, p))
        return out

    def node(self, node: dict[str, Any], used: list[tuple[int, int]]) -> None:
        b = self.b
        node_id, kind, name = node["node_id"], node.get("node_type"), self.name(node["node_id"])
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        where = f"node {name}"
        if kind not in (*_GNS3_GUESTS, *_GNS3_HUBS, "cloud"):
            b.report(f"{where}: node type {kind} has no equivalent; left out")
            return
        for key, value in node.items():
            if key not in _GNS3_QUIET_NODE:
                b.report(f"{where}: {key} {short(value)} has no equivalent; left out")
        if kind in _GNS3_GUESTS:
            self.guest(node_id, name, kind, props, used)
        elif kind in _GNS3_HUBS:
            comment = f"GNS3 {kind} {name}"
            if kind == "ethernet_switch":
                comment += ": a switch learns, a hub floods; its VLAN and port settings are left out"
                for port in _list(props.get("ports_mapping")):
                    if isinstance(port, dict) and (port.get("type", "access") != "access" or port.get("vlan", 1) != 1):
                        b.report(
                            f"{where}: port {port.get('port_number')} ({port.get('name')}): "
                            f"{port.get('type')} VLAN {port.get('vlan')}: a hub has no VLANs of its own; left out"
                        )
            self.domains[node_id] = b.domain(name, comment)
        else:
            self.cloud(node_id, name, props, used)

    def guest(self, node_id: str, name: str, kind: str, props: dict[str, Any], used: list[tuple[int, int]]) -> None:
        b = self.b
        where = f"node {name}"
        model = "virtio-net-pci"
        base_mac = None
        adapters = 1
        if kind == "qemu":
            for key, value in props.items():
                if key not in _QEMU_READ and value not in (None, "", [], {}):
                    b.report(f"{where}: qemu property {key} {short(value)} has no equivalent; left out")
            adapter_type = props.get("adapter_type")
            if isinstance(adapter_type, str) and adapter_type in NIC_MODELS:
                model = adapter_type
            elif adapter_type is not None:
                b.report(
                    f"{where}: adapter_type {short(adapter_type)} is no NIC model QEMU knows here; {model} instead"
                )
            base_mac = props.get("mac_address") if isinstance(props.get("mac_address"), str) else None
            adapters = props.get("adapters") if isinstance(props.get("adapters"), int) else 1
        else:
            script = props.get("startup_script")
            vpcs = _vpcs_script(script) if isinstance(script, str) else ({}, [])
            for key, value in props.items():
                if key != "startup_script" and value not in (None, "", [], {}):
                    b.report(f"{where}: vpcs property {key} {short(value)} has no equivalent; left out")
            for line in vpcs[1]:
                b.report(f"{where}: startup_script line {short(line)} has no equivalent; left out")
        renamed = []
        guest = b.add(Kind.GUEST, name, comment=f"GNS3 {kind} node {name}")
        for i, (adapter, port) in enumerate(sorted(used)):
            if adapter >= adapters or port != 0:
                b.report(f"{where}: adapter {adapter} port {port}: the node has no such port; its link is left out")
                continue
            mac = b.mac(_mac_plus(base_mac, adapter), f"{name}:{adapter}", f"{where}: adapter {adapter}")
            attrs: dict[str, Any] = {GUEST_FIELD: guest, "mac": mac}
            if kind == "qemu":
                attrs["model"] = model
            else:
                attrs.update(vpcs[0])
            if i != adapter:
                renamed.append(f"adapter {adapter} is eth{i}")
            self.points[(node_id, adapter, port)] = b.add(Kind.GUEST_NIC, f"{name}-eth{adapter}", attrs)
        if renamed:
            b.out.comments[guest] += "; inside it " + ", ".join(renamed)

    def cloud(self, node_id: str, name: str, props: dict[str, Any], used: list[tuple[int, int]]) -> None:
        """Each cabled port of a cloud: a host NIC on a bridge of its own, with
        a tap that the cable's other end reaches (a host NIC links to a bridge only)."""
        b = self.b
        ports = {
            p["port_number"]: p
            for p in _list(props.get("ports_mapping"))
            if isinstance(p, dict) and isinstance(p.get("port_number"), int)
        }
        for adapter, port in used:
            mapping = ports.get(port, {})
            ptype, iface = mapping.get("type"), mapping.get("interface")
            where = f"node {name}: port {port} ({mapping.get('name', '?')})"
            if adapter != 0 or not mapping:
                b.report(f"{where}: not in the cloud's ports_mapping; its link is left out")
                continue
            if ptype == "udp":
                b.report(f"{where}: a UDP tunnel has no equivalent; its link is left out")
                continue
            attrs: dict[str, Any] = {}
            if ptype == "ethernet" and isinstance(iface, str) and not ifname_problem(iface):
                attrs["interface"] = iface
            else:
                b.report(f"{where}: {ptype} interface {short(iface)}: an outside host stands in for it")
            label = iface if isinstance(iface, str) else f"p{port}"
            comment = f"GNS3 cloud {name}, port {mapping.get('name', port)}" + (
                f": the lab borrows {iface} with --allow-host" if "interface" in attrs else ": an outside host"
            )
            nic = b.add(Kind.HOST_NIC, f"{name}-{label}", attrs, comment)
            bridge = b.add(Kind.BRIDGE, f"{name}-br{port}")
            tap = b.add(Kind.TAP, f"{name}-tap{port}")
            b.t.links += [(nic, bridge), (bridge, tap)]
            self.points[(node_id, 0, port)] = tap

    def link(self, i: int, link: Any) -> None:
        b = self.b
        ends = link.get("nodes") if isinstance(link, dict) else None
        if not isinstance(ends, list) or len(ends) != 2 or not all(isinstance(e, dict) for e in ends):
            b.report(f"link {i}: {short(link)}: not two node ends; left out")
            return
        shown = " -- ".join(
            f"{self.name(str(e.get('node_id')))} {e.get('adapter_number')}/{e.get('port_number')}" for e in ends
        )
        what = f"link {i} ({shown})"
        for key, value in link.items():
            if key not in _GNS3_QUIET_LINK:
                b.report(f"{what}: {key} {short(value)} has no equivalent; left out")
        if link.get("filters"):
            b.report(f"{what}: filters {short(link['filters'])}: left out (impair: in the file does the like)")
        if link.get("suspend"):
            b.report(f"{what}: suspended in GNS3; linked here")
        resolved = []
        for end in ends:
            node_id = end.get("node_id")
            key = (node_id, end.get("adapter_number"), end.get("port_number"))
            if not all(isinstance(k, t) for k, t in zip(key, (str, int, int), strict=True)):
                b.report(f"{what}: an end without node_id, adapter_number and port_number; left out")
                return
            if node_id in self.domains:
                resolved.append(("domain", self.domains[node_id]))
            elif key in self.points:
                resolved.append(("point", self.points[key]))
            else:
                b.report(f"{what}: its end {self.name(str(node_id))} is left out, so is the link")
                return
        b.cable(resolved[0], resolved[1], what, f"link{i}")


def _list(value: Any) -> list[Any]:
    """value if a list, else none: a wrong shape is reported where it matters."""
    return value if isinstance(value, list) else []


def _mac_plus(mac: str | None, n: int) -> str | None:
    """GNS3 gives adapter n the node's mac_address plus n."""
    if mac is None or mac_problem(mac):
        return mac  # a wrong one is reported where it is given out
    value = (int(mac.replace(":", ""), 16) + n) & 0xFFFFFFFFFFFF
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def _vpcs_script(script: str) -> tuple[dict[str, str], list[str]]:
    """A VPCS startup script's 'ip ADDRESS/LEN [GATEWAY]' (or 'ip ADDRESS MASK
    [GATEWAY]') as NIC attributes, and the lines it does not read."""
    attrs: dict[str, str] = {}
    rest = []
    for line in script.splitlines():
        words = line.split()
        if not words or words[0].startswith("#") or words[:2] == ["set", "pcname"]:
            continue
        if words[0] == "ip" and 2 <= len(words) <= 4 and not attrs:
            try:
                if "/" in words[1]:
                    iface = ipaddress.ip_interface(words[1])
                    gw = words[2:3]
                else:
                    iface = ipaddress.ip_interface(f"{words[1]}/{words[2]}")
                    gw = words[3:4]
                if gw:
                    ipaddress.ip_address(gw[0])
            except (ValueError, IndexError):
                rest.append(line)
                continue
            attrs["ipv4" if iface.version == 4 else "ipv6"] = str(iface.with_prefixlen)
            if gw:
                attrs["gateway" if iface.version == 4 else "gateway6"] = gw[0]
            continue
        rest.append(line)
    return attrs, rest


def import_gns3(text: str) -> Imported:
    data = _load_json(text)
    if not isinstance(data, dict):
        raise ImportFailed("not a GNS3 project: the file is not a JSON object")
    out = _Gns3(data).run()
    out.header += [
        "GNS3's qemu and vpcs nodes are guests; its hubs, its switches and each cable between two",
        "nodes are hubs; a cloud's ports are host NICs, each on a bridge with a tap.",
    ]
    return out


def dumps(imported: Imported, source: str) -> str:
    """The topology file's text: the topology, a comment above saying where it
    came from, and one above each node the import has a word about."""
    from qnet_tui.model import yamlwrite

    tree = yamlwrite.to_tree(imported.topology, None)
    lines = [f"Imported from {source} by qnet-tui import.", *imported.header]
    if imported.report:
        lines.append(f"{len(imported.report)} element(s) had no equivalent: see the import's report.")
    tree.yaml_set_start_comment("\n".join(lines))
    nodes = tree["nodes"]
    for node_id, comment in imported.comments.items():
        nodes.yaml_set_comment_before_after_key(node_id, before=comment, indent=2)
    return yamlwrite.dump(tree, yamlwrite.Style())
