"""Guests with several NICs: the rules for `guest:`, gateways and what a
machine's NICs may not share, each with a failing and a passing example,
placed at FILE:LINE:COL; and which interface each NIC is inside its guest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qnet_tui.model import guests
from qnet_tui.model.diagnostics import Severity
from qnet_tui.model.edit import EditError, Editor
from qnet_tui.model.kinds import Kind
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlio import load_text

ROUTER = """\
version: 1
name: rt
nodes:
  hub1: {kind: hub, vlan: 1}
  hub2: {kind: hub, vlan: 2}
  tap1: {kind: tap}
  tap2: {kind: tap}
  hostA:
    kind: guest_nic
    mac: 52:54:00:00:01:0a
    ipv4: 10.0.1.10/24
    gateway: 10.0.1.1
  router:
    kind: guest
    forwarding: true
  r1:
    kind: guest_nic
    guest: router
    mac: 52:54:00:00:01:01
    ipv4: 10.0.1.1/24
    ipv6: fd00:1::1/64
  r2:
    kind: guest_nic
    guest: router
    mac: 52:54:00:00:02:01
    ipv4: 10.0.2.1/24
links:
  - [hub1, tap1]
  - [hub2, tap2]
  - [hub1, hostA]
  - [hub1, r1]
  - [hub2, r2]
"""


def diags(text: str):
    return load_text(text).diagnostics()


def sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def both(*edits: Callable[[str], str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        for e in edits:
            text = e(text)
        return text

    return edit


def test_router_is_clean():
    assert diags(ROUTER) == []


R2_GUEST = "    guest: router\n    mac: 52:54:00:00:02:01"
# (rule, edit that breaks it, message, (line, col), severity, edit that keeps it right)
RULES = [
    (
        "unknown guest",
        sub(R2_GUEST, "    guest: routr\n    mac: 52:54:00:00:02:01"),
        "r2: unknown guest 'routr' (did you mean 'router'?)",
        (24, 12),
        Severity.ERROR,
        None,
    ),
    (
        "guest names a hub",
        sub(R2_GUEST, "    guest: hub2\n    mac: 52:54:00:00:02:01"),
        "r2: guest hub2 is a hub, not a guest",
        (24, 12),
        Severity.ERROR,
        None,
    ),
    (
        "guest is no string",
        sub(R2_GUEST, "    guest: 7\n    mac: 52:54:00:00:02:01"),
        "r2: guest must be a string, not 7",
        (24, 12),
        Severity.ERROR,
        None,
    ),
    (
        "a qemu NIC of a guest",
        sub(R2_GUEST, R2_GUEST + "\n    qemu: true"),
        "r2: a qemu: true guest NIC is a VM of its own",
        (24, 12),
        Severity.ERROR,
        sub(R2_GUEST, "    mac: 52:54:00:00:02:01\n    qemu: true"),
    ),
    (
        "guest without NICs",
        both(
            sub("    guest: router\n    mac: 52:54:00:00:01:01", "    mac: 52:54:00:00:01:01"),
            sub(R2_GUEST, "    mac: 52:54:00:00:02:01"),
        ),
        "router: guest has no guest NICs",
        (13, 3),
        Severity.WARNING,
        sub(R2_GUEST, R2_GUEST),
    ),
    (
        "a guest links nowhere itself",
        lambda t: t + "  - [hub2, router]\n",
        "link hub2 - router: a hub cannot connect to a guest",
        (33, 5),
        Severity.ERROR,
        None,
    ),
    (
        "two NICs of one guest on one hub",
        sub("  - [hub2, r2]", "  - [hub1, r2]"),
        "r2: on hub1 as r1 is: two NICs of guest router on one hub",
        (22, 3),
        Severity.WARNING,
        None,
    ),
    (
        "gateway outside the subnet",
        sub("    gateway: 10.0.1.1", "    gateway: 10.0.2.1"),
        "hostA: gateway 10.0.2.1 is outside ipv4 10.0.1.10/24's subnet 10.0.1.0/24",
        (12, 14),
        Severity.ERROR,
        sub("    gateway: 10.0.1.1", "    gateway: 10.0.1.254"),
    ),
    (
        "gateway is the NIC itself",
        sub("    gateway: 10.0.1.1", "    gateway: 10.0.1.10"),
        "hostA: gateway 10.0.1.10 is this NIC's own address",
        (12, 14),
        Severity.ERROR,
        None,
    ),
    (
        "gateway with a prefix",
        sub("    gateway: 10.0.1.1", "    gateway: 10.0.1.1/24"),
        "hostA: gateway is a router's address, without a prefix length",
        (12, 14),
        Severity.ERROR,
        None,
    ),
    (
        "gateway without an address",
        sub("    ipv4: 10.0.1.10/24\n", ""),
        "hostA: gateway 10.0.1.1 needs an ipv4 address on this NIC",
        (11, 14),
        Severity.ERROR,
        None,
    ),
    (
        "gateway6 outside the subnet",
        sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway6: fd00:2::9"),
        "r1: gateway6 fd00:2::9 is outside ipv6 fd00:1::1/64's subnet fd00:1::/64",
        (22, 15),
        Severity.ERROR,
        sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway6: fe80::1"),  # link-local: on every link
    ),
    (
        "gateway6 of the wrong version",
        sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway6: 10.0.1.9"),
        "r1: gateway6 is an IPv4 address where IPv6 is expected",
        (22, 15),
        Severity.ERROR,
        None,
    ),
    (
        "two default routes in one guest",
        both(
            sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway: 10.0.1.99"),
            sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.2.1/24\n    gateway: 10.0.2.99"),
        ),
        "r2: guest router already has its default route from r1's gateway: one per guest",
        (28, 14),
        Severity.ERROR,
        sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway: 10.0.1.99"),
    ),
    (
        "one address on two NICs of a guest",
        sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.1.1/24"),
        "r2: ipv4 10.0.1.1 is already the address of r1, another NIC of guest router",
        (26, 11),
        Severity.ERROR,
        sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.2.2/24"),
    ),
    (
        "one subnet on two NICs of a guest, on two VLANs",
        sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.1.2/24"),
        "r2: ipv4 subnet 10.0.1.0/24 is also r1's, on another segment: guest router routes 10.0.1.0/24 out of one",
        (26, 11),
        Severity.WARNING,
        sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.3.1/24"),
    ),
    (
        "bad hostname",
        sub("    forwarding: true", "    forwarding: true\n    hostname: -router"),
        "router: hostname must be letters, digits and '-'",
        (16, 15),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    hostname: router-1.lab"),
    ),
    (
        "forwarding not a flag",
        sub("    forwarding: true", "    forwarding: yes please"),
        "router: forwarding must be true or false",
        (15, 17),
        Severity.ERROR,
        None,
    ),
    (
        "unknown guest key",
        sub("    forwarding: true", "    forwarding: true\n    vmm: true"),
        "router: unknown key 'vmm' (did you mean 'vm'?)",
        (16, 5),
        Severity.ERROR,
        None,
    ),
    (
        "vm not a flag",
        sub("    forwarding: true", "    forwarding: true\n    vm: {}"),
        "router: vm must be true or false",
        (16, 9),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    vm: true"),
    ),
    (
        "VM fields only on a VM",
        sub("    forwarding: true", "    forwarding: true\n    memory: 512"),
        "router: memory is for a VM guest: set vm: true",
        (16, 13),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    memory: 512"),
    ),
    (
        "memory in range",
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    memory: 8"),
        "router: memory must be from 32 to 1048576, not 8",
        (17, 13),
        Severity.ERROR,
        None,
    ),
    (
        "kernel or disk",
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    kernel: /k\n    disk: /d.qcow2"),
        "router: boots a kernel or a disk, not both",
        (18, 11),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    disk: /d.qcow2"),
    ),
    (
        "initrd with a kernel",
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    initrd: /i"),
        "router: initrd goes with a kernel: set kernel too",
        (17, 13),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    kernel: /k\n    initrd: /i"),
    ),
    (
        "disk_format with a disk",
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    disk_format: raw"),
        "router: disk_format goes with a disk: set disk too",
        (17, 18),
        Severity.ERROR,
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    disk: /d.img\n    disk_format: raw"),
    ),
    (
        "absolute paths",
        sub("    forwarding: true", "    forwarding: true\n    vm: true\n    disk: images/d.qcow2"),
        "router: disk must be an absolute path",
        (17, 11),
        Severity.ERROR,
        None,
    ),
]


@pytest.mark.parametrize(("rule", "breaks", "message", "at", "severity", "keeps"), RULES, ids=[r[0] for r in RULES])
def test_rule(rule, breaks, message, at, severity, keeps):
    found = diags(breaks(ROUTER))
    hits = [d for d in found if message in d.message]
    assert hits, f"{rule}: no {message!r} in {[d.message for d in found]}"
    assert (hits[0].line, hits[0].col) == at, hits[0]
    assert hits[0].severity is severity
    assert len(hits) == 1, hits  # said once
    if severity is Severity.WARNING:
        assert not [d for d in found if d.is_error], found
    if keeps is not None:
        assert [d.message for d in diags(keeps(ROUTER))] == []


def test_one_address_on_one_hub_is_said_once():
    found = diags(
        both(sub("  - [hub2, r2]", "  - [hub1, r2]"), sub("    ipv4: 10.0.2.1/24", "    ipv4: 10.0.1.1/24"))(ROUTER)
    )
    assert [d.message for d in found if "10.0.1.1" in d.message] == [
        "r2: ipv4 10.0.1.1 is already the address of r1 on VLAN 1"
    ]


def test_a_guest_is_not_unconnected():
    assert not any("not connected" in d.message for d in diags(ROUTER))


def test_machines_and_interface_names():
    t = load_text(sub("  r2:\n", "  lone:\n    kind: guest_nic\n    mac: 52:54:00:00:09:01\n  r2:\n")(ROUTER)).topology
    found = {m.id: m.nics for m in guests.machines(t)}
    assert found == {"hostA": ("hostA",), "router": ("r1", "r2"), "lone": ("lone",)}
    assert [guests.ifname_of(t, n) for n in ("hostA", "r1", "r2", "lone")] == ["eth0", "eth0", "eth1", "eth0"]
    assert guests.machine_of(t, "r2").id == "router"
    assert guests.machine_of(t, "hub1") is None


def test_a_nic_of_an_unknown_guest_stands_alone():
    t = load_text(sub(R2_GUEST, "    guest: routr\n    mac: 52:54:00:00:02:01")(ROUTER)).topology
    assert {m.id: m.nics for m in guests.machines(t)}["r2"] == ("r2",)


# -- editing ---------------------------------------------------------------------


def editor() -> Editor:
    return Editor(
        load_text(sub("    ipv6: fd00:1::1/64", "    ipv6: fd00:1::1/64\n    gateway: 10.0.1.99")(ROUTER)).topology
    )


def test_rename_of_a_guest_takes_its_nics_along():
    e = editor()
    e.rename("router", "gw")
    t = e.topology
    assert [t.nodes[n].attrs["guest"] for n in ("r1", "r2")] == ["gw", "gw"]
    assert diags_of(t) == []
    e.undo()
    assert [t.nodes[n].attrs["guest"] for n in ("r1", "r2")] == ["router", "router"]


def test_delete_of_a_guest_leaves_its_nics_as_guests_of_their_own():
    e = editor()
    e.delete_node("router")
    t = e.topology
    assert "guest" not in t.nodes["r1"].attrs and "guest" not in t.nodes["r2"].attrs
    assert {m.id for m in guests.machines(t)} == {"hostA", "r1", "r2"}
    assert diags_of(t) == []
    e.undo()  # one step brings the guest and its NICs' guest: back
    assert t.nodes["router"].kind is Kind.GUEST and t.nodes["r2"].attrs["guest"] == "router"


def test_duplicate_of_a_guest_nic_is_the_guests_next_interface():
    e = editor()
    copy = e.duplicate("r1")
    t = e.topology
    assert copy.attrs["guest"] == "router" and "gateway" not in copy.attrs  # one default route per guest
    assert guests.ifname_of(t, copy.id) == "eth2"
    e.connect("hub2", copy.id)
    assert [d.message for d in diags_of(t) if d.is_error] == []


def test_guest_field_must_name_a_guest():
    e = editor()
    with pytest.raises(EditError, match="guest hub1 is not a guest; guests are router"):
        e.set_attr("hostA", "guest", "hub1")
    e.set_attr("hostA", "guest", "router")
    assert guests.ifname_of(e.topology, "hostA") == "eth0"  # first in the file
    assert guests.ifname_of(e.topology, "r2") == "eth2"


def test_a_new_guest_from_the_defaults():
    e = editor()
    node = e.add_node(Kind.GUEST)
    assert (node.id, node.attrs) == ("guest1", {})
    assert [d.message for d in diags_of(e.topology)] == [
        "guest1: guest has no guest NICs (a NIC joins it with 'guest: guest1')"
    ]
    with pytest.raises(EditError, match="a guest has no links of its own"):
        e.connect("guest1", "hub1")


def diags_of(t):
    return validate(t)
