"""Guests (machines) and their NICs. A guest NIC that names a guest in
`guest:` is one of that machine's NICs: eth0, eth1, ... in file order. A
guest NIC without one is a guest of one NIC (eth0), as in version 1 files
before guests existed."""

from __future__ import annotations

from dataclasses import dataclass, field

from qnet_tui.model.kinds import GUEST_FIELD, Kind
from qnet_tui.model.topology import Node, Topology

IFNAME_PREFIX = "eth"


def named_guest(nic: Node) -> str | None:
    """The guest a guest NIC names (right or wrong), or None."""
    value = nic.attrs.get(GUEST_FIELD) if nic.kind is Kind.GUEST_NIC else None
    return value if isinstance(value, str) else None


def guest_ids(t: Topology) -> list[str]:
    """What a guest NIC's guest: may name: the topology's guests."""
    return [n.id for n in t.of_kind(Kind.GUEST)]


def members(t: Topology) -> dict[str, list[str]]:
    """Each guest node's NICs, in file order (an empty list: a guest with none)."""
    out: dict[str, list[str]] = {n.id: [] for n in t.of_kind(Kind.GUEST)}
    for nic in t.of_kind(Kind.GUEST_NIC):
        guest = named_guest(nic)
        if guest in out:
            out[guest].append(nic.id)
    return out


@dataclass(slots=True)
class Machine:
    """What owns one namespace of guest NICs: a guest node, or a lone NIC."""

    id: str  # the guest's id, or the lone NIC's: it names the namespace
    guest: Node | None  # None: a lone guest NIC
    nics: tuple[str, ...]  # in file order: eth0, eth1, ...
    number: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.number = {nic: i for i, nic in enumerate(self.nics)}  # not an index() per NIC of a big guest

    @property
    def is_vm(self) -> bool:
        """A guest the lab boots in QEMU (vm: true), not a namespace."""
        return self.guest is not None and self.guest.get("vm") is True

    def ifname(self, nic: str) -> str:
        return f"{IFNAME_PREFIX}{self.number[nic]}"


def machines(t: Topology) -> list[Machine]:
    """Every namespace machine, in file order of its first node: each guest
    with its NICs, and each guest NIC of no (known) guest on its own. QEMU
    guest NICs (qemu: true) are VMs of their own outside the lab: none here."""
    groups = members(t)
    out = []
    for node in t.nodes.values():
        if node.kind is Kind.GUEST:
            nics = tuple(n for n in groups[node.id] if not t.nodes[n].is_qemu_vm)
            out.append(Machine(node.id, node, nics))
        elif node.kind is Kind.GUEST_NIC and not node.is_qemu_vm and named_guest(node) not in groups:
            out.append(Machine(node.id, None, (node.id,)))
    return out


def machine_of(t: Topology, nic: str) -> Machine | None:
    """The machine a guest NIC is in, or None (not a namespace guest NIC)."""
    node = t.nodes.get(nic)
    if node is None or node.kind is not Kind.GUEST_NIC or node.is_qemu_vm:
        return None
    guest = named_guest(node)
    if guest is not None and guest in t.nodes and t.nodes[guest].kind is Kind.GUEST:
        nics = tuple(n.id for n in t.of_kind(Kind.GUEST_NIC) if named_guest(n) == guest and not n.is_qemu_vm)
        return Machine(guest, t.nodes[guest], nics)
    return Machine(nic, None, (nic,))


def ifname_of(t: Topology, nic: str) -> str:
    """A guest NIC's interface inside its guest: eth0 for a lone NIC."""
    machine = machine_of(t, nic)
    return machine.ifname(nic) if machine is not None else f"{IFNAME_PREFIX}0"
