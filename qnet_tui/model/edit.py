"""Editing a topology: checked operations with undo and redo, and the defaults
a new node starts from.

The Editor changes the Topology it was given in place (undo and redo too),
because a Document holds that object and saves it back into its YAML tree.
Each edit is checked before anything changes; a refused edit raises EditError
and leaves the topology as it was."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qnet_tui.model import guests, owners, placement, values
from qnet_tui.model.impairment import Impairment, ImpairmentError
from qnet_tui.model.kinds import FIELD_BY_NAME, FIELDS, GUEST_FIELD, HOST_FIELD, Kind
from qnet_tui.model.topology import Link, Node, Topology
from qnet_tui.model.validate import WORKER_KINDS, link_problem

MAX_UNDO = 200

ID_PREFIXES: dict[Kind, str] = {
    Kind.HOST_NIC: "eth",
    Kind.BRIDGE: "br",
    Kind.TAP: "tap",
    Kind.HUB: "hub",
    Kind.GUEST_NIC: "vm",
    Kind.SOCKET: "sock",
    Kind.GUEST: "guest",
}
# Guests count from 1 (vm1, vm2), as people name VMs; the rest from 0, as Linux names interfaces.
_FIRST_NUMBER: dict[Kind, int] = {Kind.GUEST_NIC: 1, Kind.GUEST: 1}

MAC_PREFIX = "52:54:00"  # QEMU's locally administered range
# The first MAC tried: QEMU's own neighbourhood (it hands out 52:54:00:12:34:56),
# and what the sample files use, so new guests continue that numbering.
_MAC_START = 0x123401
_MAC_SPACE = 1 << 24
VLAN_RANGE = range(0, 4096)


class EditError(Exception):
    """A refused edit. str() is the whole message, shown to the user as is.

    node and field say where it applies, when it is about one attribute;
    problem is then the message without the field's name in front ("must be
    from 0 to 4095, not 5000"), for a form that prints the name itself."""

    def __init__(self, message: str, *, node: str | None = None, field: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.node = node
        self.field = field
        self.problem = problem if problem is not None else message


# -- defaults -------------------------------------------------------------------


def _as_kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise EditError(f"unknown kind '{kind}'; kinds are {', '.join(k.value for k in Kind)}") from None


def next_id(topology: Topology, kind: Kind) -> str:
    """The first unused id of the kind's pattern: eth0, br0, tap0, hub0, vm1, sock0."""
    kind = _as_kind(kind)
    prefix, number = ID_PREFIXES[kind], _FIRST_NUMBER.get(kind, 0)
    while f"{prefix}{number}" in topology.nodes:
        number += 1
    return f"{prefix}{number}"


def _format_mac(n: int) -> str:
    return f"{MAC_PREFIX}:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def mac_candidates() -> Iterator[str]:
    """The MACs next_mac tries, in its order: from 52:54:00:12:34:01 upwards,
    wrapping round to the bottom of the range."""
    for i in range(_MAC_SPACE):
        n = (_MAC_START + i) % _MAC_SPACE
        if n:
            yield _format_mac(n)


def next_mac(topology: Topology, taken: Collection[str] = ()) -> str:
    """A MAC in 52:54:00:xx:xx:xx that no node has (nor `taken`): the first free mac_candidates() one."""
    used = set(owners.first_owners(owners.macs(topology))) | set(taken)
    for mac in mac_candidates():
        if mac not in used:
            return mac
    raise EditError(f"every MAC address in {MAC_PREFIX}:xx:xx:xx is taken")


def next_vlan(topology: Topology) -> int:
    """The lowest VLAN from 0 to 4095 that no hub has."""
    used = owners.first_owners(owners.vlans(topology))
    for vlan in VLAN_RANGE:
        if vlan not in used:
            return vlan
    raise EditError(f"every VLAN from {VLAN_RANGE.start} to {VLAN_RANGE.stop - 1} already has a hub")


def default_attrs(topology: Topology, kind: Kind, node_id: str | None = None) -> dict[str, Any]:
    """The attributes a new node of kind starts with. node_id names a socket's
    path; it defaults to next_id's choice."""
    kind = _as_kind(kind)
    if kind is Kind.HUB:
        return {"vlan": next_vlan(topology)}
    if kind is Kind.GUEST_NIC:
        return {"model": "virtio-net-pci", "mac": next_mac(topology)}
    if kind is Kind.BRIDGE:
        return {"stp": False}
    if kind is Kind.SOCKET:
        node_id = node_id or next_id(topology, kind)
        return {"transport": "stream", "family": "unix", "mode": "listen", "address": f"{node_id}.sock"}
    return {}


def _free_address(topology: Topology, value: Any, version: int) -> str | None:
    """For a copy of a node: the first address after value's, in its subnet
    (wrapping round), that no node has; None if the subnet has none free. A
    value that is not an address is returned as it is."""
    if not isinstance(value, str):
        return value
    try:
        iface = values.interface_address(value, version)
    except ValueError:
        return value
    used: set[int] = set()
    for other in topology.nodes.values():
        text = other.attrs.get(f"ipv{version}")
        ip = values.host_address(text, version)[0] if isinstance(text, str) else None
        if ip is not None:
            used.add(int(ip))
    net = iface.network
    low, high = int(net.network_address), int(net.broadcast_address)
    if net.prefixlen < net.max_prefixlen - 1:
        low += 1  # not the network address (IPv6: the subnet-router anycast)
        if version == 4:
            high -= 1  # nor the broadcast address
    size, start = high - low + 1, int(iface.ip) - low
    # Each used address hides at most one candidate; the spare tries stop a
    # multicast block inside a huge subnet from being walked address by address.
    for step in range(1, min(size, len(used) + 256)):
        candidate = f"{type(iface.ip)(low + (start + step) % size)}/{net.prefixlen}"
        ip = values.host_address(candidate, version)[0]
        if ip is not None and int(ip) not in used:
            return candidate
    return None


# -- checks ---------------------------------------------------------------------


def _same(old: Any, new: Any) -> bool:
    # 1 == True in Python, but not in YAML: setting stp from 1 to true is a change
    return old == new and isinstance(old, bool) == isinstance(new, bool)


def _attr_error(topology: Topology, node_id: str, kind: Kind, name: str, value: Any) -> EditError | None:
    """Why node_id (of kind) cannot have name = value, or None."""
    spec = FIELD_BY_NAME[kind].get(name)
    if spec is None:
        known = [f.name for f in FIELDS[kind]]
        has = f"a {kind.title} has {', '.join(known)}" if known else f"a {kind.title} has no attributes"
        problem = f"is not an attribute of a {kind.title}; {has}"
        return EditError(f"{name} {problem}", node=node_id, field=name, problem=problem)
    problem = spec.problem(value)
    if problem is None and kind is Kind.HUB and name == "vlan":
        owner = owners.first_owners(owners.vlans(topology), skip=node_id).get(int(value))
        if owner is not None:
            problem = f"{value} is already hub {owner}"
    if problem is None and kind is Kind.GUEST_NIC and name == GUEST_FIELD:
        target = topology.nodes.get(value)
        if target is None or target.kind is not Kind.GUEST:
            guest_ids = guests.guest_ids(topology)
            problem = (
                f"{value} is not a guest; guests are {', '.join(guest_ids)}"
                if guest_ids
                else (f"{value} is not a guest, and there is none yet: add one (kind guest) first")
            )
    if problem is None and name == HOST_FIELD:
        names = placement.host_names(topology)
        if value not in names:
            problem = (
                f"{value} is not a host; hosts are {', '.join(names)}"
                if names
                else f"{value} is not a host, and the file has none: add it under hosts: in the file first"
            )
    if problem is None and name == "mac":
        owner = owners.first_owners(owners.macs(topology), skip=node_id).get(values.normalize_mac(value))
        if owner is not None:
            problem = f"{value} is already used by {owner}"
    if problem is None:
        return None
    return EditError(f"{name} {problem}", node=node_id, field=name, problem=problem)


def _id_error(topology: Topology, node_id: str) -> EditError | None:
    if not isinstance(node_id, str):
        return EditError(f"a node id must be a string, not {values.describe(node_id)}", field="id")
    problem = values.ifname_problem(node_id)
    if problem:
        return EditError(f"node id '{node_id}' {problem}", field="id", problem=problem)
    if node_id in topology.nodes:
        return EditError(f"a node named {node_id} already exists", field="id", problem="is taken")
    return None


# -- the editor -------------------------------------------------------------------


@dataclass(slots=True)
class _Snapshot:
    """A topology's state, copied cheaply: attribute values are scalars that
    no edit changes in place, so copying each node's attrs dict is enough.
    Its nodes are never handed out (restore copies them), so snapshots may
    share the nodes that did not change between them."""

    name: Any
    description: str | None
    nodes: dict[str, Node]
    links: list[Link]
    impair: dict[Link, Any]

    @classmethod
    def of(cls, topology: Topology, previous: Mapping[str, Node] | None = None) -> _Snapshot:
        """previous: the nodes of an earlier snapshot, reused where they are
        still exactly the same, so 200 steps of a big lab cost 200 dicts of
        references rather than 200 copies of every node."""
        nodes = {}
        for key, node in topology.nodes.items():
            old = previous.get(key) if previous else None
            nodes[key] = old if old is not None and _identical(old, node) else _copy_node(node)
        return cls(topology.name, topology.description, nodes, list(topology.links), dict(topology.impair))

    def restore(self, topology: Topology) -> None:
        """Put this state into topology, keeping the Topology object."""
        topology.name = self.name
        topology.description = self.description
        topology.nodes.clear()
        topology.nodes.update({key: _copy_node(node) for key, node in self.nodes.items()})
        topology.links[:] = self.links
        topology.impair.clear()
        topology.impair.update(self.impair)


def _copy_node(node: Node) -> Node:
    return Node(node.id, node.kind, dict(node.attrs), node.origin)


def _identical(a: Node, b: Node) -> bool:
    """Equal down to key order and value types: 1 == True and a quoted
    ruamel string == a plain one, but each saves differently."""
    if a.id != b.id or a.kind != b.kind or type(a.kind) is not type(b.kind) or list(a.attrs) != list(b.attrs):
        return False
    return all(type(v) is type(w) and v == w for v, w in zip(a.attrs.values(), b.attrs.values(), strict=True))


@dataclass(slots=True)
class _Step:
    before: _Snapshot  # the state to go back to
    version: int  # that state's version
    label: str  # what the edit did, as in "rename tap0 to tap1"


class Editor:
    """Checked edits of one Topology, with undo and redo.

    Every state the topology passes through gets a version number, never
    reused, so `changed` compares the current state with the saved one and
    stays right across undo and redo."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._undo: deque[_Step] = deque(maxlen=MAX_UNDO)
        self._redo: list[_Step] = []
        self._version = 0
        self._last_version = 0
        self._saved_version = 0

    # -- history ----------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        """What undo would take back, as in "rename tap0 to tap1"."""
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    @property
    def changed(self) -> bool:
        """Whether the topology differs from the last saved (or loaded) state."""
        return self._version != self._saved_version

    @property
    def version(self) -> int:
        """Names the topology's current state: equal versions, equal topologies."""
        return self._version

    def mark_saved(self) -> None:
        self._saved_version = self._version

    def undo(self) -> bool:
        return self._travel(self._undo, self._redo)

    def redo(self) -> bool:
        return self._travel(self._redo, self._undo)

    def _travel(self, source: deque[_Step], target: deque[_Step]) -> bool:
        """Go back to the state on top of source, remembering this one on target."""
        if not source:
            return False
        step = source.pop()
        # The state it goes to is one edit away: it shares all but a node or two.
        target.append(_Step(_Snapshot.of(self.topology, step.before.nodes), self._version, step.label))
        step.before.restore(self.topology)
        self._version = step.version
        return True

    def _record(self, label: str) -> None:
        """Remember the state before an edit; call after the checks and before
        the change. A new edit makes what was undone unreachable."""
        previous = self._undo[-1].before.nodes if self._undo else None  # one edit ago, most likely
        self._undo.append(_Step(_Snapshot.of(self.topology, previous), self._version, label))
        self._redo.clear()
        self._last_version += 1
        self._version = self._last_version

    # -- lookups ----------------------------------------------------------------

    def _node(self, node_id: str) -> Node:
        node = self.topology.nodes.get(node_id)
        if node is None:
            raise EditError(f"there is no node '{node_id}'", node=node_id)
        return node

    def _schema_node(self, node_id: str) -> tuple[Node, Kind]:
        """The node and its kind, which must be one this program knows."""
        node = self._node(node_id)
        if not isinstance(node.kind, Kind):
            raise EditError(
                f"{node_id} has the unknown kind {values.describe(node.kind)}; fix its kind in a text editor first",
                node=node_id,
            )
        return node, node.kind

    # -- edits ------------------------------------------------------------------

    def add_node(self, kind: Kind, node_id: str | None = None, attrs: Mapping[str, Any] | None = None) -> Node:
        """Add a node at the end; id and attributes default to next_id and default_attrs."""
        kind = _as_kind(kind)
        if node_id is None:
            node_id = next_id(self.topology, kind)
        if error := _id_error(self.topology, node_id):
            raise error
        if attrs is None:
            attrs = default_attrs(self.topology, kind, node_id)
        # None means "not set", as in set_attr and the forms
        attrs = {name: value for name, value in attrs.items() if value is not None}
        for name, value in attrs.items():
            if error := _attr_error(self.topology, node_id, kind, name, value):
                raise error
        for spec in FIELDS[kind]:
            if spec.required and spec.name not in attrs:
                problem = f"is required ({spec.help})"
                raise EditError(f"{spec.name} {problem}", node=node_id, field=spec.name, problem=problem)
        self._record(f"add {node_id}")
        return self.topology.add(Node(node_id, kind, attrs))

    def set_attr(self, node_id: str, name: str, value: Any) -> None:
        """Set an attribute; value None removes it (see del_attr). Setting the
        value it already has is no edit and leaves no undo step."""
        if value is None:
            self.del_attr(node_id, name)
            return
        node, kind = self._schema_node(node_id)
        if error := _attr_error(self.topology, node_id, kind, name, value):
            raise error
        if name in node.attrs and _same(node.attrs[name], value):
            return
        self._record(f"set {node_id} {name}")
        node.attrs[name] = value

    def del_attr(self, node_id: str, name: str) -> None:
        """Remove an attribute (a field then takes its default). Keys the kind
        does not know may go too: that is how a file's mistake gets fixed."""
        node, kind = self._schema_node(node_id)
        spec = FIELD_BY_NAME[kind].get(name)
        if spec is not None and spec.required:
            problem = f"is required ({spec.help})"
            message = f"{name} {problem}; a {kind.title} cannot do without it"
            raise EditError(message, node=node_id, field=name, problem=problem)
        if name not in node.attrs:
            raise EditError(f"{node_id} has no {name} to remove", node=node_id, field=name, problem="is not set")
        self._record(f"remove {node_id} {name}")
        del node.attrs[name]

    def rename(self, node_id: str, new_id: str) -> None:
        """Give a node another id, keeping its place among the nodes and its links."""
        node = self._node(node_id)
        if new_id == node_id:
            return
        if error := _id_error(self.topology, new_id):
            error.node = node_id
            raise error
        self._record(f"rename {node_id} to {new_id}")
        nodes = list(self.topology.nodes.items())
        self.topology.nodes.clear()
        for key, other in nodes:
            self.topology.nodes[new_id if key == node_id else key] = other
        node.id = new_id
        self.topology.links[:] = [
            (new_id if a == node_id else a, new_id if b == node_id else b) for a, b in self.topology.links
        ]
        impair = self.topology.impair  # a link's impairments go with it
        for (a, b), spec in list(impair.items()):
            if node_id in (a, b):
                del impair[(a, b)]
                impair[(new_id if a == node_id else a, new_id if b == node_id else b)] = spec
        # A guest's NICs follow it (and NICs that named the new id in error now name the node so called).
        for nic in self.topology.of_kind(Kind.GUEST_NIC):
            if guests.named_guest(nic) == node_id:
                nic.attrs[GUEST_FIELD] = new_id

    def connect(self, a: str, b: str) -> Link:
        """Link a and b, at the end of the links."""
        if problem := link_problem(self.topology, a, b):
            raise EditError(problem)
        self._record(f"connect {a} and {b}")
        link = (a, b)
        self.topology.links.append(link)
        return link

    def disconnect(self, a: str, b: str) -> Link:
        """Remove the link between a and b, written either way round; returns it as it was."""
        for i, link in enumerate(self.topology.links):
            if link in ((a, b), (b, a)):
                self._record(f"disconnect {a} and {b}")
                del self.topology.links[i]
                self.topology.impair.pop((a, b), None)
                self.topology.impair.pop((b, a), None)
                return link
        raise EditError(f"{a} and {b} are not linked")

    def set_impair(self, a: str, b: str, text: str | None) -> str | None:
        """Impair direction a -> b of their link with a text form (model/impairment.py);
        None, "" or one that turns everything off ("none", "loss=0%") lifts it.
        Returns the form kept, which the text form reads back alike (None: none)."""
        if not any((a, b) == link or (b, a) == link for link in self.topology.links):
            raise EditError(f"{a} and {b} are not linked", node=a, field="impair")
        nodes = self.topology.nodes
        if not any(n in nodes and nodes[n].kind in WORKER_KINDS for n in (a, b)):
            problem = (
                "needs the lab's worker on the link: between a bridge and a host NIC frames never leave the kernel"
            )
            raise EditError(f"impair towards {b} {problem}", node=a, field="impair", problem=problem)
        kept: str | None = None
        if text is not None and text.strip():
            try:
                spec = Impairment.parse(text)
            except ImpairmentError as exc:
                raise EditError(f"impair towards {b}: {exc}", node=a, field="impair", problem=str(exc)) from None
            kept = spec.format() if spec.active else None
        if self.topology.impair.get((a, b)) == kept:
            return kept
        self._record(f"impair {a} -> {b}" if kept else f"lift the impairment {a} -> {b}")
        if kept is None:
            del self.topology.impair[(a, b)]
        else:
            self.topology.impair[(a, b)] = kept
        return kept

    def delete_node(self, node_id: str) -> list[Link]:
        """Remove a node and its links; returns the links removed, in order.
        A guest's NICs stay, each a guest of its own again (their `guest:`
        goes): deleting the machine is not deleting its wiring, as deleting a
        hub keeps its NICs; one undo brings all of it back."""
        node = self._node(node_id)
        gone = [link for link in self.topology.links if node_id in link]
        self._record(f"delete {node_id}")
        del self.topology.nodes[node_id]
        self.topology.links[:] = [link for link in self.topology.links if node_id not in link]
        for way in [way for way in self.topology.impair if node_id in way]:
            del self.topology.impair[way]
        if node.kind is Kind.GUEST:
            for nic in self.topology.of_kind(Kind.GUEST_NIC):
                if guests.named_guest(nic) == node_id:
                    del nic.attrs[GUEST_FIELD]
        return gone

    def duplicate(self, node_id: str) -> Node:
        """A copy of a node, unlinked, with a new id, and a MAC, VLAN and
        IPv4/IPv6 addresses of its own: two NICs with one MAC, two hubs with
        one VLAN, or two addresses alike once the copy joins its original's
        hub, are errors. An address moves on to the next free one of its
        subnet, and is left out if there is none. The other attributes are
        copied as they are, right or wrong: the copy is no worse than its
        original, and validation reports both alike."""
        node, kind = self._schema_node(node_id)
        new_id = next_id(self.topology, kind)
        attrs = dict(node.attrs)
        if "mac" in attrs:
            attrs["mac"] = next_mac(self.topology)
        for version in (4, 6):
            if f"ipv{version}" in attrs:
                address = _free_address(self.topology, attrs[f"ipv{version}"], version)
                if address is None:
                    del attrs[f"ipv{version}"]
                else:
                    attrs[f"ipv{version}"] = address
        if kind is Kind.HUB:
            attrs["vlan"] = next_vlan(self.topology)
        if guests.named_guest(node) is not None:
            # Another NIC of the same guest (its next ethN, being last in the
            # file); a guest takes one default route, which the original has.
            attrs.pop("gateway", None)
            attrs.pop("gateway6", None)
        # A socket still at its default path gets its own, or the two would fight over one file.
        if kind is Kind.SOCKET and attrs.get("address") == f"{node_id}.sock":
            attrs["address"] = f"{new_id}.sock"
        self._record(f"duplicate {node_id} as {new_id}")
        return self.topology.add(Node(new_id, kind, attrs))
