"""Validation rules: every problem of a topology as a Diagnostic with a place."""

from __future__ import annotations

import difflib
import gc
import ipaddress
import os
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from qnet_tui.model import guests, owners, placement, scenario, values
from qnet_tui.model.diagnostics import Diagnostic, Severity, sort_key
from qnet_tui.model.impairment import Impairment, ImpairmentError
from qnet_tui.model.kinds import FIELD_BY_NAME, FIELDS, HOST_FIELD, NIC_MODELS, Kind, peers_phrase, slot_for
from qnet_tui.model.topology import Link, Node, SourceMap, Topology, components

ERROR, WARNING = Severity.ERROR, Severity.WARNING
WORKER_KINDS = (Kind.HUB, Kind.TAP, Kind.GUEST_NIC, Kind.SOCKET)  # link ends the worker forwards for
# How many node ids "did you mean" may compare, in all, per validation: each
# comparison is a difflib ratio, and a file of 20,000 links to unknown nodes
# must not cost 20,000 scans of every id.
HINT_BUDGET = 50_000
_PEER_CHECKED = frozenset({Kind.HUB, Kind.TAP, Kind.SOCKET})  # unconnected() looks at their neighbours' kinds
VM_ONLY = ("memory", "cpus", "kernel", "initrd", "append", "disk", "disk_format")
_ADDRESS_FIELDS = {"ipv4": 4, "ipv6": 6}  # of the kinds that have them: guest NIC, host NIC, bridge


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class LinkRules:
    """The link rules, with what the links seen so far have taken: no self
    link, kinds that may connect, no link twice, and each limited slot's
    count. The editor asks about one new link after taking every existing
    one, right or wrong (a refused link in the file is still there); the
    validator takes each link only when it passes, so one bad link is
    reported once and does not refuse the next."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.seen: set[frozenset[str]] = set()
        self.taken: dict[tuple[str, str], list[str]] = defaultdict(list)  # (node, slot) -> its peers so far

    def problem(self, a: str, b: str) -> str | None:
        """Why a-b breaks a rule, or None. Both ends must be nodes."""
        if a == b:
            return f"{a} cannot connect to itself"
        nodes = self.nodes
        ka, kb = nodes[a].kind, nodes[b].kind
        if not isinstance(ka, Kind) or not isinstance(kb, Kind):
            return None  # the unknown kind is reported on its node
        first = slot_for(ka, kb)
        if first is None:
            return f"a {ka.title} cannot connect to a {kb.title} ({peers_phrase(ka)})"
        if frozenset((a, b)) in self.seen:
            return f"{a} and {b} are already linked"
        for this, slot in ((a, first), (b, slot_for(kb, ka))):
            if slot.most is None:
                continue  # only limited slots are counted
            peers = self.taken.get((this, slot.what), ())
            if len(peers) >= slot.most:
                return (
                    f"{this} already connects to {', '.join(peers)}; "
                    f"a {nodes[this].kind.title} takes at most {slot.most} {slot.what}"
                )
        return None

    def take(self, a: str, b: str) -> None:
        """Count a-b as there; a link between unknown nodes or kinds takes nothing."""
        nodes = self.nodes
        if a == b or a not in nodes or b not in nodes:
            return
        ka, kb = nodes[a].kind, nodes[b].kind
        if not isinstance(ka, Kind) or not isinstance(kb, Kind) or slot_for(ka, kb) is None:
            return
        self.seen.add(frozenset((a, b)))
        for this, other, slot in ((a, b, slot_for(ka, kb)), (b, a, slot_for(kb, ka))):
            if slot is not None and slot.most is not None:  # only limited slots are counted
                self.taken[(this, slot.what)].append(other)


def link_problem(topology: Topology, a: str, b: str) -> str | None:
    """Why the link a-b cannot be added, or None. The editor asks this
    before it connects two nodes."""
    nodes = topology.nodes
    for end in (a, b):
        if end not in nodes:
            return f"unknown node '{end}'{did_you_mean(str(end), nodes)}"
    rules = LinkRules(nodes)
    for x, y in topology.links:
        rules.take(x, y)
    return rules.problem(a, b)


class _Checker:
    def __init__(self, topology: Topology, smap: SourceMap | None) -> None:
        self.t = topology
        self.smap = smap or SourceMap()
        self.out: list[Diagnostic] = []
        self.bad_links: set[int] = set()  # indices of links with an error
        self.hints: dict[str, str] = {}
        self.hint_budget = HINT_BUDGET
        name = topology.name
        # The lab's name as its runtime folder will have it; None when that is unknown.
        self.lab = name if isinstance(name, str) and not values.lab_name_problem(name) else None
        self.binds: list[_Bind] = []  # the socket paths and ports the lab would bind, in file order
        self.targets: list[_Bind] = []  # where its connect and dgram sockets send
        self.ips: list[tuple[str, str, ipaddress.IPv4Address | ipaddress.IPv6Address]] = []  # node, field, address
        self.segment: dict[str, int] = {}  # node -> its broadcast domain, once addresses() needed them
        self.guest_names: list[str] | None = None  # the guests' ids, once a hint needs them
        self.guest_hints: dict[str, str] = {}
        self.machines: dict[str, str] | None = None  # node -> its machine, once a rule needs it

    def node_hint(self, word: str) -> str:
        """did_you_mean among the node ids, within the budget."""
        if word not in self.hints:
            nodes = self.t.nodes
            if len(nodes) <= self.hint_budget:
                self.hint_budget -= len(nodes)
                self.hints[word] = did_you_mean(word, nodes)
            else:
                self.hints[word] = ""
        return self.hints[word]

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
        links = self.valid_links()
        self.placement(links)
        self.unique_macs()
        self.unique_vlans()
        self.unique_interfaces()
        self.unique_binds()
        if self.t.impair:
            self.impairments(links)
        self.addresses(links)
        self.guests(links)
        self.vms()
        self.unconnected()
        self.loops(links)
        if self.t.scenarios is not None:
            self.out.extend(scenario.read(self.t, self.smap)[1])
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
            if spec is None and node.kind is Kind.HUB and name == HOST_FIELD:
                self.at_node(
                    ERROR,
                    node.id,
                    f"{node.id}: a hub has no host: it is on every machine with one of its ports "
                    "(and stitched between them)",
                    field=name,
                )
                continue
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
            if name in _ADDRESS_FIELDS and isinstance(value, str):
                # Read once: addresses() needs the address, not only the verdict.
                ip, problem = values.host_address(value, _ADDRESS_FIELDS[name])
                if ip is not None:
                    self.ips.append((node.id, name, ip))
            else:
                problem = spec.problem(value)
            if problem:
                self.at_node(ERROR, node.id, f"{node.id}: {name} {problem}", field=name)
        for spec in FIELDS[node.kind]:
            if spec.required and spec.name not in node.attrs:
                self.at_node(ERROR, node.id, f"{node.id}: missing '{spec.name}' ({spec.help})")
        if node.kind is Kind.GUEST_NIC:
            if node.is_qemu_vm:
                self.vm_socket(node)
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

    def vm_socket(self, node: Node) -> None:
        """A QEMU guest NIC's socket lives in the lab's folder, named after the node."""
        path = values.qemu_socket(node.id)
        if problem := values.lab_path_problem(path, self.lab):
            self.at_node(
                ERROR,
                node.id,
                f"{node.id}: the lab serves this QEMU guest NIC at {path} in its runtime folder, which {problem}: "
                "give the node another id",
                field="qemu",
            )
        else:
            self.binds.append(_Bind(node.id, "qemu", "VM socket", ("unix", path), stream=True))

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
        if isinstance(address, str) and values.is_multicast(address) and transport != "dgram":
            self.at_node(
                ERROR, node.id, f"{node.id}: multicast address {address} needs transport dgram", field="address"
            )
        if family == "unix":
            self.unix_paths(node, transport)
        else:
            self.inet_addresses(node, transport)

    def unix_paths(self, node: Node, transport: str) -> None:
        """Relative paths live in the lab's runtime folder and stay there;
        absolute ones only where the node says external: true."""
        a = node.attrs
        external = node.get("external") is True
        relative = []
        for name in ("address", "local"):
            value = a.get(name)
            if not isinstance(value, str):
                continue
            binds = name == "local" or (transport == "stream" and a.get("mode") == "listen")
            absolute = os.path.isabs(value)
            problem = values.unix_path_problem(value)
            if problem is None and absolute:
                problem = (
                    values.external_path_problem(value, self.lab, binds)
                    if external
                    else "is an absolute path, outside the lab's runtime folder: set 'external: true' if another "
                    "program serves or uses that socket, or give a path relative to the lab's folder"
                )
            elif problem is None and external:
                relative.append(f"{name} {values.describe(value)}")
                continue
            elif problem is None:
                problem = values.lab_path_problem(value, self.lab)
            if problem:
                self.at_node(ERROR, node.id, f"{node.id}: {name} {values.describe(value)} {problem}", field=name)
                continue
            norm = values.normalize_unix_path(value)
            where = ("unix-abs" if absolute else "unix", norm)
            if binds:
                self.binds.append(_Bind(node.id, name, name, where, stream=transport == "stream"))
            else:
                self.targets.append(_Bind(node.id, name, name, where, stream=transport == "stream"))
        if relative:
            self.at_node(
                ERROR,
                node.id,
                f"{node.id}: external: true says this socket's paths are absolute, outside the lab's folder, "
                f"but {' and '.join(relative)} {'is' if len(relative) == 1 else 'are'} relative "
                "(a relative path lives in the lab's own folder): "
                "make it absolute, or drop external",
                field="external",
            )

    def inet_addresses(self, node: Node, transport: str) -> None:
        a = node.attrs
        if "external" in a:
            self.at_node(
                ERROR,
                node.id,
                f"{node.id}: external is for unix sockets: an inet address names its host itself",
                field="external",
            )
        multicast = isinstance(a.get("address"), str) and values.is_multicast(a["address"])
        for name in ("address", "local"):
            value = a.get(name)
            if not isinstance(value, str):
                continue
            if problem := values.inet_problem(value):
                self.at_node(ERROR, node.id, f"{node.id}: {name} {values.describe(value)} {problem}", field=name)
                continue
            endpoint = values.inet_endpoint(value)
            if endpoint is None:
                continue
            where = (transport, *endpoint)
            if multicast:
                continue  # a group is shared by design; its local names an interface, not a port
            if name == "local" or a.get("mode") == "listen":
                self.binds.append(_Bind(node.id, name, name, where, stream=transport == "stream"))
            else:
                self.targets.append(_Bind(node.id, name, name, where, stream=transport == "stream"))

    def links(self) -> None:
        """Every link's problem, in one pass (link_problem() takes all links
        for each one it is asked about, right for one edit, too slow for a file)."""
        nodes = self.t.nodes
        rules = LinkRules(nodes)
        for i, (a, b) in enumerate(self.t.links):
            for end, name in enumerate((a, b)):
                if name not in nodes:
                    self.at_link(ERROR, i, f"link {a} - {b}: unknown node '{name}'{self.node_hint(str(name))}", end=end)
            if a not in nodes or b not in nodes:
                continue
            if problem := rules.problem(a, b):
                self.at_link(ERROR, i, f"link {a} - {b}: {problem}")
                self.bad_links.add(i)
            else:
                rules.take(a, b)

    def impairments(self, links: list[tuple[int, Link]]) -> None:
        """Each impaired link's text forms parse, and the worker is on the link
        (a hub, tap, guest NIC or socket end): bridge to host NIC is all kernel."""
        impair, nodes = self.t.impair, self.t.nodes
        for i, (a, b) in links:
            ways = [(x, y) for x, y in ((a, b), (b, a)) if (x, y) in impair]
            if not ways:
                continue
            if not any(nodes[n].kind in WORKER_KINDS for n in (a, b)):
                self.add(
                    ERROR,
                    f"link {a} - {b}: impair needs the lab's worker on the link (a hub, tap, guest NIC or socket "
                    "end); between a bridge and a host NIC frames never leave the kernel",
                    ("options", i),
                    ("link", i),
                    link=i,
                )
                continue
            for x, y in ways:
                spec = impair[(x, y)]
                try:
                    Impairment.parse(spec) if isinstance(spec, str) else None
                except ImpairmentError as exc:
                    self.add(ERROR, f"link {a} - {b}: impair towards {y}: {exc}", ("options", i), ("link", i), link=i)

    def placement(self, links: list[tuple[int, Link]]) -> None:
        """The hosts section, what nodes' host: names, and that what must run
        on one machine does: a bridge and what it connects, a guest and its
        NICs, a guest NIC and the tap or socket it peers with."""
        known, problems = placement.read_hosts(self.t)
        for problem in problems:
            self.add(ERROR, problem.message, *problem.keys)
        named = placement.host_names(self.t)
        placed = False
        for node in self.t.nodes.values():
            host = placement.named_host(node)
            if host is None:
                continue
            placed = True
            if host in named:
                continue
            if named:
                where = f"{did_you_mean(host, named)}; hosts are {', '.join(named)}"
            elif self.t.hosts is None:
                where = ": the file has no hosts: section"
            else:
                where = ": the file's hosts: section names none"
            self.at_node(ERROR, node.id, f"{node.id}: host '{host}' names no host in hosts:{where}", field=HOST_FIELD)
        if not placed:
            return  # all on this machine: nothing can be apart
        machines = self.machines = placement.machine_of(self.t)
        nodes = self.t.nodes
        for node_id, anchor in placement.ties(self.t, [link for _, link in links]):
            here, there = machines[node_id], machines[anchor]
            if here == there or not {here, there} <= {placement.THIS, *known}:
                continue  # together, or a host that is not there (reported above)
            kind = nodes[anchor].kind
            why = {
                Kind.BRIDGE: "a bridge and what it connects run on one machine",
                Kind.GUEST: "a guest and its NICs run on one machine",
            }.get(kind, f"a guest NIC and the {kind.title} it peers with run on one machine")
            self.at_node(
                ERROR,
                node_id,
                f"{node_id} is on {placement.where(here)} but its {kind.title} {anchor} is on "
                f"{placement.where(there)}: {why}",
                field=HOST_FIELD if HOST_FIELD in nodes[node_id].attrs else None,
            )

    def unique_macs(self) -> None:
        for node, mac, owner in owners.clashes(owners.macs(self.t)):
            here = self.machines.get(node.id, placement.THIS) if self.machines else placement.THIS
            there = self.machines.get(owner, placement.THIS) if self.machines else placement.THIS
            apart = f" (on {placement.where(there)}, {node.id} on {placement.where(here)})" if here != there else ""
            self.at_node(ERROR, node.id, f"{node.id}: MAC {mac} is already used by {owner}{apart}", field="mac")

    def unique_vlans(self) -> None:
        for hub, vlan, owner in owners.clashes(owners.vlans(self.t)):
            self.at_node(ERROR, hub.id, f"{hub.id}: VLAN {vlan} is already hub {owner}", field="vlan")

    def unique_interfaces(self) -> None:
        """Two host NICs cannot both borrow one real interface."""
        for nic, name, owner in owners.clashes(owners.interfaces(self.t)):
            self.at_node(
                ERROR,
                nic.id,
                f"{nic.id}: interface {name} is already attached by {owner}; a real interface can join the lab once",
                field="interface",
            )

    def unique_binds(self) -> None:
        """Two sockets of a lab cannot bind one unix path (nor one port)."""
        owners: dict[tuple, _Bind] = {}
        for bind in self.binds:
            first = owners.setdefault(bind.where, bind)
            if first is bind:
                continue
            what = "unix path" if bind.where[0].startswith("unix") else "address"
            self.at_node(
                ERROR,
                bind.node,
                f"{bind.node}: {bind.what} {bind.shown} is the same {what} as {first.node}'s {first.what}: "
                "two sockets of a lab cannot bind one",
                field=bind.field,
            )

    def valid_links(self) -> list[tuple[int, Link]]:
        """The links without an error, with their index in the file."""
        nodes = self.t.nodes
        return [
            (i, (a, b))
            for i, (a, b) in enumerate(self.t.links)
            if i not in self.bad_links
            and a in nodes
            and b in nodes
            and isinstance(nodes[a].kind, Kind)
            and isinstance(nodes[b].kind, Kind)
        ]

    def segment_name(self, comp: list[str]) -> str:
        vlans = sorted(str(n.get("vlan")) for c in comp if (n := self.t.nodes[c]).kind is Kind.HUB)
        if vlans:
            return f"VLAN {vlans[0]}" if len(vlans) == 1 else f"VLANs {', '.join(vlans)}"
        return "the same segment"

    def addresses(self, links: list[tuple[int, Link]]) -> None:
        """No address twice in one broadcast domain (a connected component)."""
        if not self.ips:
            return
        adj: dict[str, list[str]] = {n: [] for n in self.t.nodes}
        for _, (a, b) in links:
            adj[a].append(b)
            adj[b].append(a)
        comps = components(adj)
        segment = self.segment = {n: i for i, comp in enumerate(comps) for n in comp}
        names: dict[int, str] = {}
        owners: dict[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address], str] = {}
        for node_id, name, ip in self.ips:  # in file order: the first one owns it
            key = (segment[node_id], ip)
            if key not in owners:
                owners[key] = node_id
                continue
            if key[0] not in names:
                names[key[0]] = self.segment_name(comps[key[0]])
            self.at_node(
                ERROR,
                node_id,
                f"{node_id}: {name} {ip} is already the address of {owners[key]} on {names[key[0]]}",
                field=name,
            )

    def unconnected(self) -> None:
        # Degree and neighbour kinds per node, from one pass over the links (not a scan per node).
        nodes = self.t.nodes
        degree: dict[str, int] = defaultdict(int)
        around: dict[str, set[Kind | str]] = defaultdict(set)  # of the kinds below that need it
        for a, b in self.t.links:
            degree[a] += 1
            degree[b] += 1
            if a in nodes and b in nodes:
                ka, kb = nodes[a].kind, nodes[b].kind
                if ka in _PEER_CHECKED:
                    around[a].add(kb)
                if kb in _PEER_CHECKED:
                    around[b].add(ka)
        for node in nodes.values():
            if node.kind is Kind.GUEST:
                continue  # a machine has no links of its own; guests() warns of one without NICs
            if not degree.get(node.id):
                self.at_node(WARNING, node.id, f"{node.id}: not connected to anything")
            elif node.kind is Kind.HUB and around[node.id].isdisjoint((Kind.GUEST_NIC, Kind.SOCKET)):
                self.at_node(
                    WARNING,
                    node.id,
                    f"{node.id}: hub of VLAN {values.describe(node.get('vlan'))} has no "
                    "guest NIC (nor a socket to a QEMU VM)",
                )
            elif node.kind is Kind.HUB and around[node.id].isdisjoint((Kind.TAP, Kind.SOCKET)):
                # QEMU says it too: "hub N is not connected to host network".
                self.at_node(
                    WARNING,
                    node.id,
                    f"{node.id}: hub of VLAN {values.describe(node.get('vlan'))} is not "
                    "connected to the host network (no tap or socket)",
                )
            elif node.kind in (Kind.TAP, Kind.SOCKET) and around[node.id].isdisjoint((Kind.HUB, Kind.GUEST_NIC)):
                # QEMU: "netdev X has no peer": frames that reach it go nowhere.
                self.at_node(WARNING, node.id, f"{node.id}: has no peer (no hub or guest NIC): its frames go nowhere")

    def guests(self, links: list[tuple[int, Link]]) -> None:
        """What `guest:` names, and what a machine's NICs may not share: a
        default route (one per guest and IP version), an address. Two NICs on
        one hub only get a warning: QEMU allows it."""
        nodes = self.t.nodes
        held = guests.members(self.t)
        for nic in self.t.of_kind(Kind.GUEST_NIC):
            name = guests.named_guest(nic)
            if name is None:
                continue
            target = nodes.get(name)
            if target is None:
                self.at_node(ERROR, nic.id, f"{nic.id}: unknown guest '{name}'{self.guest_hint(name)}", field="guest")
            elif target.kind is not Kind.GUEST:
                what = target.kind.title if isinstance(target.kind, Kind) else "node of unknown kind"
                self.at_node(ERROR, nic.id, f"{nic.id}: guest {name} is a {what}, not a guest", field="guest")
            elif nic.is_qemu_vm:
                self.at_node(
                    ERROR,
                    nic.id,
                    f"{nic.id}: a qemu: true guest NIC is a VM of its own, outside the lab: "
                    f"it cannot also be a NIC of guest {name}",
                    field="guest",
                )
        for nic in self.t.of_kind(Kind.GUEST_NIC):
            self.gateways(nic)
        hub_of: dict[str, str] = {}
        for _, (a, b) in links:
            if nodes[a].kind is Kind.GUEST_NIC and nodes[b].kind is Kind.HUB:
                hub_of[a] = b
            elif nodes[b].kind is Kind.GUEST_NIC and nodes[a].kind is Kind.HUB:
                hub_of[b] = a
        ips: dict[str, list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]]] = defaultdict(list)
        for node_id, field, ip in self.ips:
            ips[node_id].append((field, ip))
        for guest, nics in held.items():
            if not nics:
                self.at_node(WARNING, guest, f"{guest}: guest has no guest NICs (a NIC joins it with 'guest: {guest}')")
                continue
            on_hub: dict[str, str] = {}
            gateway: dict[str, str] = {}
            owner: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
            subnet: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
            for nic in nics:
                hub = hub_of.get(nic)
                if hub is not None and on_hub.setdefault(hub, nic) != nic:
                    self.at_node(
                        WARNING,
                        nic,
                        f"{nic}: on {hub} as {on_hub[hub]} is: two NICs of guest {guest} on one hub "
                        "each get every frame of its VLAN",
                    )
                for field in ("gateway", "gateway6"):
                    if field in nodes[nic].attrs and gateway.setdefault(field, nic) != nic:
                        self.at_node(
                            ERROR,
                            nic,
                            f"{nic}: guest {guest} already has its default route from {gateway[field]}'s {field}: "
                            "one per guest",
                            field=field,
                        )
                for field, ip in ips.get(nic, ()):
                    first = owner.setdefault(ip, nic)
                    same_segment = self.segment.get(first) == self.segment.get(nic)
                    if first != nic and not same_segment:  # on one segment addresses() said it already
                        self.at_node(
                            ERROR,
                            nic,
                            f"{nic}: {field} {ip} is already the address of {first}, another NIC of guest {guest}",
                            field=field,
                        )
                        continue
                    net = ipaddress.ip_interface(nodes[nic].attrs[field]).network
                    first = subnet.setdefault(net, nic)
                    if first != nic and self.segment.get(first) != self.segment.get(nic):
                        self.at_node(
                            WARNING,
                            nic,
                            f"{nic}: {field} subnet {net} is also {first}'s, on another segment: guest {guest} "
                            f"routes {net} out of one NIC only",
                            field=field,
                        )

    def vms(self) -> None:
        """A VM guest's boot fields: only on a VM, a kernel or a disk, not both."""
        for guest in self.t.of_kind(Kind.GUEST):
            a = guest.attrs
            if guest.get("vm") is not True:
                for name in VM_ONLY:
                    if name in a:
                        self.at_node(ERROR, guest.id, f"{guest.id}: {name} is for a VM guest: set vm: true", field=name)
                continue
            if "kernel" in a and "disk" in a:
                self.at_node(ERROR, guest.id, f"{guest.id}: boots a kernel or a disk, not both", field="disk")
            for name in ("initrd", "append"):
                if name in a and "kernel" not in a:
                    self.at_node(ERROR, guest.id, f"{guest.id}: {name} goes with a kernel: set kernel too", field=name)
            if "disk_format" in a and "disk" not in a:
                self.at_node(
                    ERROR, guest.id, f"{guest.id}: disk_format goes with a disk: set disk too", field="disk_format"
                )

    def guest_hint(self, name: str) -> str:
        """did_you_mean among the guests, within the hint budget."""
        if name not in self.guest_hints:
            if self.guest_names is None:
                self.guest_names = guests.guest_ids(self.t)
            if len(self.guest_names) <= self.hint_budget:
                self.hint_budget -= len(self.guest_names)
                self.guest_hints[name] = did_you_mean(name, self.guest_names)
            else:
                self.guest_hints[name] = ""
        return self.guest_hints[name]

    def gateways(self, nic: Node) -> None:
        """A default route's router must be on the NIC's own subnet."""
        for field, address in (("gateway", "ipv4"), ("gateway6", "ipv6")):
            value = nic.attrs.get(field)
            if not isinstance(value, str) or FIELD_BY_NAME[Kind.GUEST_NIC][field].problem(value):
                continue  # none, or reported as a bad value
            router = ipaddress.ip_address(value)
            own = nic.attrs.get(address)
            if field == "gateway6" and router.is_link_local:
                continue  # a link-local router is on every IPv6 link
            if own is None:
                self.at_node(
                    ERROR, nic.id, f"{nic.id}: {field} {value} needs an {address} address on this NIC", field=field
                )
                continue
            if not isinstance(own, str) or values.host_address(own, 6 if address == "ipv6" else 4)[1]:
                continue  # the address itself is reported
            iface = ipaddress.ip_interface(own)
            if router not in iface.network:
                self.at_node(
                    ERROR,
                    nic.id,
                    f"{nic.id}: {field} {value} is outside {address} {own}'s subnet {iface.network}: "
                    "a router must be on the NIC's own link",
                    field=field,
                )
            elif router == iface.ip:
                self.at_node(ERROR, nic.id, f"{nic.id}: {field} {value} is this NIC's own address", field=field)

    def served_pairs(self) -> list[tuple[str, str, str]]:
        """Sockets of this lab that reach each other: a connect socket and the
        listen socket (or QEMU guest NIC) it dials, a dgram socket and the one
        whose local address it sends to. Frames cross such a pair as they
        cross a link. (a, b, how) each."""
        bound: dict[tuple, _Bind] = {}
        for bind in self.binds:
            bound.setdefault(bind.where, bind)
        pairs = []
        for target in self.targets:
            for where in _reaches(target.where):
                peer = bound.get(where)
                if peer is not None and peer.node != target.node and peer.stream == target.stream:
                    pairs.append(
                        (target.node, peer.node, f"{target.node} sends to {peer.node}'s {peer.what} {peer.shown}")
                    )
                    break
        return pairs

    def loops(self, links: list[tuple[int, Link]]) -> None:
        """A cycle through hubs and bridges floods every broadcast forever,
        unless a bridge on it runs STP. Stripping leaves repeatedly leaves the
        2-core: exactly the nodes on or between cycles. Two sockets the lab
        serves to each other count as a link."""
        pairs = self.served_pairs()
        adj: dict[str, set[str]] = defaultdict(set)
        for _, (a, b) in links:
            adj[a].add(b)
            adj[b].add(a)
        for a, b, _ in pairs:
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
        comps = components(adj)
        loop_of = {n: i for i, comp in enumerate(comps) for n in comp}
        first: dict[int, int] = {}  # loop -> the first link on it
        for i, (a, b) in links:
            loop = loop_of.get(a)
            if loop is not None and loop == loop_of.get(b):
                first.setdefault(loop, i)
        how: dict[int, list[str]] = defaultdict(list)
        for a, b, text in pairs:
            if a in loop_of and loop_of[a] == loop_of.get(b):
                how[loop_of[a]].append(text)
        rank = {n: i for i, n in enumerate(self.t.nodes)}
        for loop, comp in enumerate(comps):
            bridges = [self.t.nodes[n] for n in comp if self.t.nodes[n].kind is Kind.BRIDGE]
            if any(bridge.get("stp") is True for bridge in bridges):
                continue
            order = sorted(comp, key=rank.__getitem__)
            shown = ", ".join(order[:6]) + (f" and {len(order) - 6} more" if len(order) > 6 else "")
            served = f" ({'; '.join(how[loop][:3])}, both served by this lab)" if how[loop] else ""
            fix = (
                "turn on stp on a bridge in the loop, or remove a link" if bridges else "hubs run no STP: remove a link"
            )
            message = f"loop through {shown}{served}: broadcasts circle forever ({fix})"
            if loop in first:
                self.at_link(WARNING, first[loop], message)
            else:
                self.at_node(WARNING, order[0], message)


@dataclass(frozen=True, slots=True)
class _Bind:
    """A unix path or inet address a node of the lab binds, or sends to."""

    node: str
    field: str  # the attribute that says it
    what: str  # how a message names it
    where: tuple  # ("unix" | "unix-abs", normalized path) or (transport, host, port)
    stream: bool  # a stream socket's (else a dgram socket's)

    @property
    def shown(self) -> str:
        if self.where[0].startswith("unix"):
            return self.where[1]
        host = self.where[1]
        return f"[{host}]:{self.where[2]}" if ":" in host else f"{host}:{self.where[2]}"


def _reaches(where: tuple) -> list[tuple]:
    """Where a socket sending to `where` may arrive: the address itself, and
    for a local host the same port bound on 'any' or loopback."""
    if where[0].startswith("unix"):
        return [where]
    transport, host, port = where
    if not values.is_local_host(host):
        return [where]
    return [where] + [(transport, h, port) for h in ("0.0.0.0", "::", "127.0.0.1", "::1") if h != host]


def validate(topology: Topology, smap: SourceMap | None = None) -> list[Diagnostic]:
    # The checker makes a few objects per node and link, and no cycles: the
    # collector, woken by them, would only walk the loaded file's (possibly
    # huge) tree again and again, a third of the time on a 4 MiB file.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _Checker(topology, smap).run()
    finally:
        if paused:
            gc.enable()
