"""Which node owns a MAC, a VLAN or a real interface: the first one in file
order. The editor asks before it sets one; the validator reports the rest."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, TypeVar

from qnet_tui.model import values
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology

K = TypeVar("K", bound=Hashable)


def is_vlan(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def macs(topology: Topology) -> Iterator[tuple[str, Node, str]]:
    """(normalized MAC, node, MAC as written) of each node with a well-formed MAC."""
    for node in topology.nodes.values():
        mac = node.attrs.get("mac")
        if isinstance(mac, str) and not values.mac_problem(mac):
            yield values.normalize_mac(mac), node, mac


def vlans(topology: Topology) -> Iterator[tuple[int, Node, int]]:
    """(VLAN, hub, VLAN) of each hub with a VLAN number."""
    for hub in topology.of_kind(Kind.HUB):
        vlan = hub.attrs.get("vlan")
        if is_vlan(vlan):
            yield int(vlan), hub, vlan


def interfaces(topology: Topology) -> Iterator[tuple[str, Node, str]]:
    """(interface, host NIC, interface) of each host NIC that attaches a real interface."""
    for nic in topology.of_kind(Kind.HOST_NIC):
        name = nic.attrs.get("interface")
        if isinstance(name, str) and not values.ifname_problem(name):
            yield name, nic, name


def first_owners(held: Iterable[tuple[K, Node, Any]], skip: str | None = None) -> dict[K, str]:
    """Key -> the first node that holds it, not counting node skip."""
    first: dict[K, str] = {}
    for key, node, _ in held:
        if node.id != skip:
            first.setdefault(key, node.id)
    return first


def clashes(held: Iterable[tuple[K, Node, Any]]) -> Iterator[tuple[Node, Any, str]]:
    """(node, value as written, first owner) for each node whose key an earlier node holds."""
    first: dict[K, str] = {}
    for key, node, value in held:
        owner = first.setdefault(key, node.id)
        if owner != node.id:
            yield node, value, owner
