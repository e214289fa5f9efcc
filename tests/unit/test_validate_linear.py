"""Validation and import do work linear in the size of the topology.

No clocks: the node ids count every hash and comparison made with them, and
the work at size 2n must be about twice the work at size n (a scan of every
node per node, per component or per link makes it four times)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import pytest

from qnet_tui.model import qemu
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import validate

N = 1000


class Id(str):
    """A node id that counts the hashing and comparing done with it."""

    work = 0

    def __hash__(self) -> int:
        Id.work += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        Id.work += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        Id.work += 1
        return str.__ne__(self, other)


def mac(n: int) -> str:
    return f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def add(t: Topology, name: str, kind: Kind, **attrs) -> Id:
    node = Id(name)
    t.add(Node(node, kind, attrs))
    return node


def unconnected_taps(n: int) -> Topology:
    t = Topology(name="lin")
    for i in range(n):
        add(t, f"t{i}", Kind.TAP)
    return t


def segments_with_addresses(n: int) -> Topology:
    """Many small VLANs, each guest with the same address (fine: other VLANs)."""
    t = Topology(name="lin")
    for i in range(n):
        hub = add(t, f"h{i}", Kind.HUB, vlan=i % 4096)
        vm = add(t, f"v{i}", Kind.GUEST_NIC, mac=mac(i + 1), ipv4="10.0.0.1/24")
        t.links.append((hub, vm))
    return t


def one_big_hub_one_address(n: int) -> Topology:
    """Every guest on one hub with one address: n duplicates, each named with its VLAN."""
    t = Topology(name="lin")
    hub = add(t, "hub0", Kind.HUB, vlan=0)
    for i in range(n):
        t.links.append((hub, add(t, f"v{i}", Kind.GUEST_NIC, mac=mac(i + 1), ipv4="10.0.0.1/24")))
    return t


def long_chain(n: int) -> Topology:
    """bridge - tap - hub - tap - bridge - ...: one long segment."""
    t = Topology(name="lin")
    last = None
    for i in range(n):
        br = add(t, f"b{i}", Kind.BRIDGE)
        ta, hub, tb = add(t, f"ta{i}", Kind.TAP), add(t, f"h{i}", Kind.HUB, vlan=i % 4096), add(t, f"tb{i}", Kind.TAP)
        t.links += [(br, ta), (ta, hub), (hub, tb)] + ([(last, br)] if last else [])
        last = tb
    return t


def many_loops(n: int) -> Topology:
    """n bridge loops: br with two taps on one hub."""
    t = Topology(name="lin")
    for i in range(n):
        br, hub = add(t, f"b{i}", Kind.BRIDGE), add(t, f"h{i}", Kind.HUB, vlan=i % 4096)
        ta, tb = add(t, f"ta{i}", Kind.TAP), add(t, f"tb{i}", Kind.TAP)
        t.links += [(br, ta), (br, tb), (ta, hub), (tb, hub)]
    return t


def duplicate_links(n: int) -> Topology:
    t = Topology(name="lin")
    hub, vm = add(t, "hub0", Kind.HUB, vlan=0), add(t, "vm1", Kind.GUEST_NIC, mac=mac(1))
    t.links += [(hub, vm)] * n
    return t


def socket_pairs(n: int) -> Topology:
    """Listen and connect sockets dialling each other on one hub, and colliding paths."""
    t = Topology(name="lin")
    hub = add(t, "hub0", Kind.HUB, vlan=0)
    for i in range(n):
        path = f"s{i // 2}.sock"
        listen = add(t, f"l{i}", Kind.SOCKET, transport="stream", mode="listen", address=path)
        dial = add(t, f"c{i}", Kind.SOCKET, transport="stream", mode="connect", address=path)
        t.links += [(hub, listen), (hub, dial)]
    return t


def guests_of_two_nics(n: int) -> Topology:
    """n routers between two hubs, every other NIC naming a guest that is not there."""
    t = Topology(name="lin")
    hubs = add(t, "hub1", Kind.HUB, vlan=1), add(t, "hub2", Kind.HUB, vlan=2)
    for i in range(n):
        guest = add(t, f"g{i}", Kind.GUEST, forwarding=True)
        for j, hub in enumerate(hubs):
            name = guest if j == 0 else f"g{i}x"  # an unknown guest, with a hint
            nic = add(t, f"n{i}.{j}", Kind.GUEST_NIC, mac=mac(2 * i + j + 1), guest=name, gateway="10.0.9.1")
            t.nodes[nic].attrs["ipv4"] = f"10.{j}.{i >> 8 & 255}.{i & 255 or 1}/16"
            t.links.append((hub, nic))
    return t


def one_guest_many_nics(n: int) -> Topology:
    """One guest with n NICs on one hub, one address and one gateway each."""
    t = Topology(name="lin")
    hub, guest = add(t, "hub0", Kind.HUB, vlan=0), add(t, "g", Kind.GUEST)
    for i in range(n):
        nic = add(t, f"n{i}", Kind.GUEST_NIC, mac=mac(i + 1), guest=guest, ipv4="10.0.0.1/24", gateway="10.0.0.9")
        t.links.append((hub, nic))
    return t


SHAPES: dict[str, Callable[[int], Topology]] = {
    f.__name__: f
    for f in (
        unconnected_taps,
        segments_with_addresses,
        one_big_hub_one_address,
        long_chain,
        many_loops,
        duplicate_links,
        socket_pairs,
        guests_of_two_nics,
        one_guest_many_nics,
    )
}


def work(shape: Callable[[int], Topology], n: int) -> int:
    t = shape(n)
    Id.work = 0
    assert validate(t)  # each shape has something to say
    return Id.work


@pytest.mark.parametrize("shape", list(SHAPES))
def test_validation_is_linear(shape):
    small, big = work(SHAPES[shape], N), work(SHAPES[shape], 2 * N)
    assert big <= 2.5 * small, f"{shape}: {small} hashes and comparisons at {N}, {big} at {2 * N}"


def test_did_you_mean_for_unknown_link_ends_is_bounded(monkeypatch):
    compared = 0
    real = difflib.get_close_matches

    def counting(word, possibilities, *args, **kwargs):
        nonlocal compared
        compared += len(possibilities)
        return real(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)

    def typos(n: int) -> int:
        nonlocal compared
        t = unconnected_taps(n)
        t.links += [(Id(f"t{i}"), Id(f"x{i}")) for i in range(n)]  # every link to an unknown node
        compared = 0
        found = validate(t)
        assert sum("unknown node" in d.message for d in found) == n
        return compared

    small, big = typos(N), typos(2 * N)
    assert big <= 2.5 * small, (small, big)
    # and the first few still get their hint
    t = unconnected_taps(10)
    t.links.append(("t1", "tt1"))
    assert any("did you mean 't1'" in d.message for d in validate(t))


def import_work(n: int, monkeypatch) -> int:
    """Python calls made, and list items scanned, importing n legacy NICs and taps."""
    scanned = 0

    class Links(list):
        def __contains__(self, item: object) -> bool:
            nonlocal scanned
            scanned += len(self)
            return list.__contains__(self, item)

    class CountingTopology(Topology):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.links = Links()

    monkeypatch.setattr(qemu, "Topology", CountingTopology)
    argv = []
    for i in range(n):
        argv += ["-net", f"nic,vlan={i % 3}", "-net", f"tap,vlan={i % 3},ifname=t{i}"]
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    import sys

    sys.setprofile(profile)
    try:
        t, problems = qemu.import_args(argv)
    finally:
        sys.setprofile(None)
    assert len(t.nodes) == 2 * n + 3 and problems == []
    macs = {node.attrs["mac"] for node in t.nodes.values() if "mac" in node.attrs}
    assert len(macs) == n  # past QEMU's own 170 default MACs, still one each
    return calls + scanned


def test_import_is_linear(monkeypatch):
    small, big = import_work(N, monkeypatch), import_work(2 * N, monkeypatch)
    assert big <= 2.5 * small, (small, big)
