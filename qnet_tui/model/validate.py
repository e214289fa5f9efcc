"""Validation rules: every problem of a topology as a Diagnostic with a place."""

from __future__ import annotations

import difflib
import ipaddress
from collections import defaultdict, deque
from collections.abc import Iterable

from qnet_tui.model import values
from qnet_tui.model.diagnostics import Diagnostic, Severity, sort_key
from qnet_tui.model.kinds import FIELD_BY_NAME, FIELDS, NIC_MODELS, Kind, peers_phrase, slot_for
from qnet_tui.model.topology import Link, Node, SourceMap, Topology, components

ERROR, WARNING = Severity.ERROR, Severity.WARNING


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def link_problem(topology: Topology, a: str, b: str) -> str | None:
    """Why the link a-b cannot be added, or None. The editor asks this
    before it connects two nodes."""
    nodes = topology.nodes
    for end in (a, b):
        if end not in nodes:
            return f"unknown node '{end}'{did_you_mean(str(end), nodes)}"
    if a == b:
        return f"{a} cannot connect to itself"
    ka, kb = nodes[a].kind, nodes[b].kind
    if not isinstance(ka, Kind) or not isinstance(kb, Kind):
        return None  # the unknown kind is reported on its node
    if slot_for(ka, kb) is None:
        return f"a {ka.title} cannot connect to a {kb.title} ({peers_phrase(ka)})"
    for link in topology.links:
        if {a, b} == set(link):
            return f"{a} and {b} are already linked"
    for this, other in ((a, b), (b, a)):
        kind = nodes[this].kind
        slot = slot_for(kind, nodes[other].kind)
        if slot is None or slot.most is None:
            continue
        taken = [
            n
            for link in topology.links
            if this in link
            for n in link
            if n != this and n in nodes and nodes[n].kind in slot.peers
        ]
        if len(taken) >= slot.most:
            return (
                f"{this} already connects to {', '.join(taken)}; a {kind.title} takes at most {slot.most} {slot.what}"
            )
    return None


class _Checker:
    def __init__(self, topology: Topology, smap: SourceMap | None) -> None:
        self.t = topology
        self.smap = smap or SourceMap()
        self.out: list[Diagnostic] = []
        self.bad_links: set[int] = set()  # indices of links with an error

    def add(
        self,
        severity: Severity,
        message: str,
        *keys: tuple,
        node: str | None = None,
        link: int | None = None,
        field: str | None = None,
    ) -> None:
        line, col = self.smap.find(*keys)
        self.out.append(Diagnostic(severity, message, line, col, node=node, link=link, field=field))

    def at_node(self, severity: Severity, node: str, message: str, field: str | None = None) -> None:
        keys = [("value", node, field), ("field", node, field)] if field else []
        self.add(severity, message, *keys, ("node", node), node=node, field=field)

    def at_link(self, severity: Severity, index: int, message: str, end: int | None = None) -> None:
        keys = [("end", index, end)] if end is not None else []
        self.add(severity, message, *keys, ("link", index), link=index)

    # -- rules ---------------------------------------------------------------

    def run(self) -> list[Diagnostic]:
        if self.t.name is None:
            self.add(ERROR, "missing 'name': the lab's name, which its namespaces carry", ("top", "name"))
        elif not isinstance(self.t.name, str):
            self.add(
                ERROR,
                f"lab name must be a string, not {values.describe(self.t.name)}",
                ("top-value", "name"),
                ("top", "name"),
            )
        elif problem := values.lab_name_problem(self.t.name):
            self.add(
                ERROR, f"lab name {values.describe(self.t.name)} {problem}", ("top-value", "name"), ("top", "name")
            )
        for node in self.t.nodes.values():
            self.node(node)
        self.links()
        self.unique_macs()
        self.unique_vlans()
        self.addresses()
        self.unconnected()
        self.loops()
        return sorted(self.out, key=sort_key)

    def node(self, node: Node) -> None:
        problem = values.ifname_problem(node.id)
        if problem:
            self.at_node(ERROR, node.id, f"node id '{node.id}' {problem}")
        if node.kind is None:
            return  # reported by the loader: a missing kind
        if not isinstance(node.kind, Kind):
            kinds = [k.value for k in Kind]
            self.at_node(
                ERROR,
                node.id,
                f"{node.id}: unknown kind {values.describe(node.kind)}"
                f"{did_you_mean(str(node.kind), kinds)}; kinds are {', '.join(kinds)}",
                field="kind",
            )
            return
        fields = FIELD_BY_NAME[node.kind]
        for name, value in node.attrs.items():
            spec = fields.get(name)
            if spec is None:
                known = [f.name for f in FIELDS[node.kind]]
                hint = did_you_mean(name, known) or (
                    f"; a {node.kind.title} has {', '.join(known)}"
                    if known
                    else f"; a {node.kind.title} has no attributes"
                )
                self.add(
                    ERROR,
                    f"{node.id}: unknown key '{name}'{hint}",
                    ("field", node.id, name),
                    ("node", node.id),
                    node=node.id,
                    field=name,
                )
                continue
            problem = spec.problem(value)
            if problem:
                self.at_node(ERROR, node.id, f"{node.id}: {name} {problem}", field=name)
        for spec in FIELDS[node.kind]:
            if spec.required and spec.name not in node.attrs:
                self.at_node(ERROR, node.id, f"{node.id}: missing '{spec.name}' ({spec.help})")
        if node.kind is Kind.GUEST_NIC:
            model = node.attrs.get("model")
            if isinstance(model, str) and model not in NIC_MODELS:
                self.at_node(
                    WARNING,
                    node.id,
                    f"{node.id}: QEMU knows no NIC model '{model}'{did_you_mean(model, NIC_MODELS)}",
                    field="model",
                )
        elif node.kind is Kind.HOST_NIC and "interface" in node.attrs:
            for name in ("ipv4", "ipv6", "mac"):
                if name in node.attrs:
                    self.at_node(
                        ERROR,
                        node.id,
                        f"{node.id}: {name} belongs to the outside host, but a host NIC that attaches "
                        f"a real interface has none: {node.attrs['interface']} keeps its own",
                        field=name,
                    )
        elif node.kind is Kind.SOCKET:
            self.socket(node)

    def socket(self, node: Node) -> None:
        a = node.attrs
        transport, family, address = a.get("transport"), node.get("family"), a.get("address")
        if transport not in ("stream", "dgram") or family not in ("unix", "inet"):
            return  # already reported as a bad field
        if transport == "stream" and "mode" not in a:
            self.at_node(ERROR, node.id, f"{node.id}: a stream socket needs 'mode' (listen or connect)")
        if transport == "dgram" and "mode" in a:
            self.at_node(
                ERROR,
                node.id,
                f"{node.id}: mode is for stream sockets; a dgram socket sends to 'address' and binds 'local'",
                field="mode",
            )
        if transport == "stream" and "local" in a:
            self.at_node(ERROR, node.id, f"{node.id}: local is for dgram sockets", field="local")
        check = values.unix_path_problem if family == "unix" else values.inet_problem
        for name in ("address", "local"):
            value = a.get(name)
            if isinstance(value, str) and (problem := check(value)):
                self.at_node(ERROR, node.id, f"{node.id}: {name} {values.describe(value)} {problem}", field=name)
        if isinstance(address, str) and values.is_multicast(address) and transport != "dgram":
            self.at_node(
                ERROR, node.id, f"{node.id}: multicast address {address} needs transport dgram", field="address"
            )

    def links(self) -> None:
        """Every link's problem, in one pass: link_problem() rescans all links,
        which is right for one edit and too slow for a whole file."""
        nodes = self.t.nodes
        seen: set[frozenset[str]] = set()
        taken: dict[tuple[str, str], list[str]] = defaultdict(list)  # (node, slot) -> peers so far
        for i, (a, b) in enumerate(self.t.links):
            for end, name in enumerate((a, b)):
                if name not in nodes:
                    self.at_link(
                        ERROR, i, f"link {a} - {b}: unknown node '{name}'{did_you_mean(str(name), nodes)}", end=end
                    )
            if a not in nodes or b not in nodes:
                continue
            ka, kb = nodes[a].kind, nodes[b].kind
            if a == b:
                problem: str | None = f"{a} cannot connect to itself"
            elif not isinstance(ka, Kind) or not isinstance(kb, Kind):
                continue  # the unknown kind is reported on its node
            elif slot_for(ka, kb) is None:
                problem = f"a {ka.title} cannot connect to a {kb.title} ({peers_phrase(ka)})"
            elif frozenset((a, b)) in seen:
                problem = f"{a} and {b} are already linked"
            else:
                problem = None
                for this, other in ((a, b), (b, a)):
                    slot = slot_for(nodes[this].kind, nodes[other].kind)
                    peers = taken[(this, slot.what)]
                    if slot.most is not None and len(peers) >= slot.most and problem is None:
                        problem = (
                            f"{this} already connects to {', '.join(peers)}; "
                            f"a {nodes[this].kind.title} takes at most {slot.most} {slot.what}"
                        )
                if problem is None:
                    seen.add(frozenset((a, b)))
                    taken[(a, slot_for(ka, kb).what)].append(b)
                    taken[(b, slot_for(kb, ka).what)].append(a)
            if problem:
                self.at_link(ERROR, i, f"link {a} - {b}: {problem}")
                self.bad_links.add(i)

    def unique_macs(self) -> None:
        owners: dict[str, str] = {}
        for node in self.t.nodes.values():
            mac = node.attrs.get("mac")
            if not isinstance(mac, str) or values.mac_problem(mac):
                continue
            key = values.normalize_mac(mac)
            if key in owners:
                self.at_node(ERROR, node.id, f"{node.id}: MAC {mac} is already used by {owners[key]}", field="mac")
            else:
                owners[key] = node.id

    def unique_vlans(self) -> None:
        owners: dict[int, str] = {}
        for hub in self.t.of_kind(Kind.HUB):
            vlan = hub.attrs.get("vlan")
            if not isinstance(vlan, int) or isinstance(vlan, bool):
                continue
            if vlan in owners:
                self.at_node(ERROR, hub.id, f"{hub.id}: VLAN {vlan} is already hub {owners[vlan]}", field="vlan")
            else:
                owners[vlan] = hub.id

    def valid_links(self) -> list[Link]:
        nodes = self.t.nodes
        return [
            (a, b)
            for i, (a, b) in enumerate(self.t.links)
            if i not in self.bad_links
            and a in nodes
            and b in nodes
            and isinstance(nodes[a].kind, Kind)
            and isinstance(nodes[b].kind, Kind)
        ]

    def segments(self) -> list[list[str]]:
        """Connected components: one Ethernet broadcast domain each."""
        adj: dict[str, list[str]] = {n: [] for n in self.t.nodes}
        for a, b in self.valid_links():
            adj[a].append(b)
            adj[b].append(a)
        return components(adj)

    def segment_name(self, comp: list[str]) -> str:
        vlans = sorted(str(n.get("vlan")) for c in comp if (n := self.t.nodes[c]).kind is Kind.HUB)
        if vlans:
            return f"VLAN {vlans[0]}" if len(vlans) == 1 else f"VLANs {', '.join(vlans)}"
        return "the same segment"

    def addresses(self) -> None:
        for comp in self.segments():
            owners: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
            members = set(comp)
            for node_id in (n for n in self.t.nodes if n in members):  # file order: first one owns it
                node = self.t.nodes[node_id]
                for name, version in (("ipv4", 4), ("ipv6", 6)):
                    value = node.attrs.get(name)
                    if not isinstance(value, str) or node.kind not in (Kind.GUEST_NIC, Kind.HOST_NIC, Kind.BRIDGE):
                        continue
                    try:
                        ip = values.interface_address(value, version).ip
                    except ValueError:
                        continue
                    if ip in owners:
                        self.at_node(
                            ERROR,
                            node_id,
                            f"{node_id}: {name} {ip} is already the address of "
                            f"{owners[ip]} on {self.segment_name(comp)}",
                            field=name,
                        )
                    else:
                        owners[ip] = node_id

    def unconnected(self) -> None:
        # Neighbour kinds per node, from one pass over the links (not a scan per node).
        around: dict[str, list[Kind]] = defaultdict(list)
        for a, b in self.t.links:
            if a in self.t.nodes and b in self.t.nodes:
                around[a].append(self.t.nodes[b].kind)
                around[b].append(self.t.nodes[a].kind)
        degree: dict[str, int] = defaultdict(int)
        for a, b in self.t.links:
            degree[a] += 1
            degree[b] += 1
        for node in self.t.nodes.values():
            kinds = around[node.id]
            if degree[node.id] == 0:
                self.at_node(WARNING, node.id, f"{node.id}: not connected to anything")
            elif node.kind is Kind.HUB and not any(k in (Kind.GUEST_NIC, Kind.SOCKET) for k in kinds):
                self.at_node(
                    WARNING,
                    node.id,
                    f"{node.id}: hub of VLAN {values.describe(node.get('vlan'))} has no "
                    "guest NIC (nor a socket to a QEMU VM)",
                )
            elif node.kind is Kind.HUB and not any(k in (Kind.TAP, Kind.SOCKET) for k in kinds):
                # QEMU says it too: "hub N is not connected to host network".
                self.at_node(
                    WARNING,
                    node.id,
                    f"{node.id}: hub of VLAN {values.describe(node.get('vlan'))} is not "
                    "connected to the host network (no tap or socket)",
                )
            elif node.kind in (Kind.TAP, Kind.SOCKET) and not any(k in (Kind.HUB, Kind.GUEST_NIC) for k in kinds):
                # QEMU: "netdev X has no peer": frames that reach it go nowhere.
                self.at_node(WARNING, node.id, f"{node.id}: has no peer (no hub or guest NIC): its frames go nowhere")

    def loops(self) -> None:
        """A cycle through hubs and bridges floods every broadcast forever,
        unless a bridge on it runs STP. Stripping leaves repeatedly leaves the
        2-core: exactly the nodes on or between cycles."""
        links = self.valid_links()
        adj: dict[str, set[str]] = defaultdict(set)
        for a, b in links:
            adj[a].add(b)
            adj[b].add(a)
        leaves = deque(n for n, peers in adj.items() if len(peers) < 2)
        while leaves:
            n = leaves.popleft()
            for m in adj.pop(n, ()):
                if m in adj:
                    adj[m].discard(n)
                    if len(adj[m]) < 2:
                        leaves.append(m)
        for comp in map(set, components(adj)):
            if any(self.t.nodes[n].kind is Kind.BRIDGE and self.t.nodes[n].get("stp") is True for n in comp):
                continue
            order = [n for n in self.t.nodes if n in comp]
            shown = ", ".join(order[:6]) + (f" and {len(order) - 6} more" if len(order) > 6 else "")
            first = next(i for i, (a, b) in enumerate(self.t.links) if a in comp and b in comp)
            self.at_link(
                WARNING,
                first,
                f"loop through {shown}: broadcasts circle forever "
                "(turn on stp on a bridge in the loop, or remove a link)",
            )


def validate(topology: Topology, smap: SourceMap | None = None) -> list[Diagnostic]:
    return _Checker(topology, smap).run()
