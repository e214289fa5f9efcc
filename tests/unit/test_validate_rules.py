"""Every validation rule, each with a failing and a passing example.

Each case edits the seed-path sample (which is valid) and names the message
the rule must give and the line it must point at."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qnet_tui.model.diagnostics import Severity
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import link_problem, validate
from qnet_tui.model.yamlio import load_text

SEED = """\
version: 1
name: seed
nodes:
  eth0:
    kind: host_nic
    ipv4: 10.0.0.1/24
  br0:
    kind: bridge
  tap0:
    kind: tap
  hub0:
    kind: hub
    vlan: 0
  vm1:
    kind: guest_nic
    mac: 52:54:00:12:34:01
    ipv4: 10.0.0.11/24
  vm2:
    kind: guest_nic
    mac: 52:54:00:12:34:02
    ipv4: 10.0.0.12/24
links:
  - [eth0, br0]
  - [br0, tap0]
  - [tap0, hub0]
  - [hub0, vm1]
  - [hub0, vm2]
"""


def diags(text: str):
    return load_text(text).diagnostics()


def messages(text: str, severity: Severity | None = None) -> list[str]:
    return [d.message for d in diags(text) if severity is None or d.severity is severity]


def test_seed_is_clean():
    assert diags(SEED) == []


def sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def rename(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new)


def add_node(body: str) -> Callable[[str], str]:
    return sub("links:\n", body.rstrip("\n") + "\nlinks:\n")


def add_link(a: str, b: str) -> Callable[[str], str]:
    return lambda text: text + f"  - [{a}, {b}]\n"


# (rule, edit that breaks it, expected message fragment, line; edit that keeps it valid)
CASES = [
    (
        "unknown top key",
        sub("name: seed", "name: seed\nnmae: x"),
        "unknown top-level key 'nmae' (did you mean 'name'?)",
        3,
        sub("name: seed", "name: seed\ndescription: a lab"),
    ),
    ("missing version", sub("version: 1\n", ""), "missing 'version: 1'", 1, sub("version: 1", "version: 1")),
    ("wrong version", sub("version: 1", "version: 2"), "version 2 is not supported", 1, None),
    ("missing name", sub("name: seed\n", ""), "missing 'name'", 1, None),
    (
        "bad lab name",
        sub("name: seed", "name: ../etc"),
        "lab name '../etc' must start",
        2,
        sub("name: seed", "name: s-e_d9"),
    ),
    ("long lab name", sub("name: seed", "name: " + "x" * 33), "at most 32", 2, sub("name: seed", "name: " + "x" * 32)),
    (
        "unknown node key",
        sub("    vlan: 0", "    vlan: 0\n    valn: 1"),
        "hub0: unknown key 'valn' (did you mean 'vlan'?)",
        14,
        None,
    ),
    ("missing kind", sub("    kind: hub\n", ""), "hub0: missing 'kind'", 11, None),
    ("node with nothing", sub("    kind: tap\n", ""), "tap0: missing 'kind'", 9, None),
    ("node not a mapping", sub("    kind: tap\n", "    - tap\n"), "tap0: a node is a mapping", 10, None),
    ("unknown kind", sub("kind: tap", "kind: tapp"), "unknown kind 'tapp' (did you mean 'tap'?)", 10, None),
    ("missing required", sub("    vlan: 0\n", ""), "hub0: missing 'vlan'", 11, None),
    ("wrong type int", sub("vlan: 0", "vlan: '0'"), "vlan must be an integer, not '0'", 13, None),
    (
        "wrong type bool",
        sub("kind: bridge", "kind: bridge\n    stp: 1"),
        "stp must be true or false, not 1",
        9,
        sub("kind: bridge", "kind: bridge\n    stp: true"),
    ),
    ("wrong type str", sub("mac: 52:54:00:12:34:01", "mac: [1]"), "mac must be a string, not a list", 16, None),
    ("bool is no int", sub("vlan: 0", "vlan: true"), "vlan must be an integer, not true", 13, None),
    (
        "choice",
        add_node("  s0: {kind: socket, transport: tcp, mode: listen, address: a.sock}"),
        "transport must be one of stream, dgram, not 'tcp'",
        22,
        add_node("  s0: {kind: socket, transport: stream, mode: listen, address: a.sock}"),
    ),
    (
        "duplicate id",
        sub("  br0:\n", "  tap0:\n    kind: tap\n  br0:\n"),
        "duplicate key 'tap0' (first at line 7)",
        11,
        None,
    ),
    (
        "id too long",
        rename("vm2", "vm2-with-a-long-name"),
        "is 20 characters long; Linux interface names hold at most 15",
        18,
        rename("vm2", "vm2-15-chars-ok"),
    ),
    ("id with colon", rename("vm2", "'vm:2'"), "contains ':'", 18, None),
    ("id with slash", rename("vm2", "'../vm2'"), "contains '/'", 18, None),
    ("id with space", rename("vm2", "'vm 2'"), "contains white space", 18, None),
    ("id with newline", rename("vm2", '"vm\\n2"'), "contains white space", 18, None),
    ("id with semicolon", rename("vm2", "'vm;2'"), "must start with a letter or digit", 18, None),
    ("id reserved", rename("vm2", "lo"), "is reserved", 18, None),
    ("link to unknown", add_link("hub0", "vm3"), "unknown node 'vm3' (did you mean 'vm", 28, None),
    ("link kind not allowed", add_link("br0", "hub0"), "a bridge cannot connect to a hub", 28, None),
    ("self link", add_link("hub0", "hub0"), "cannot connect to itself", 28, None),
    ("duplicate link", add_link("vm1", "hub0"), "vm1 and hub0 are already linked", 28, None),
    (
        "tap joins one bridge",
        lambda t: add_link("br1", "tap0")(add_node("  br1: {kind: bridge}")(t)),
        "tap0 already connects to br0; a tap takes at most 1 bridge",
        29,
        None,
    ),
    (
        "tap has one hub or guest",
        lambda t: add_link("tap0", "hub1")(
            add_node("  hub1: {kind: hub, vlan: 1}\n  vm3: {kind: guest_nic, mac: 52:54:00:00:00:03}")(t)
        ),
        "a tap takes at most 1 hub or guest NIC",
        30,
        None,
    ),
    (
        "guest has one peer",
        lambda t: add_link("vm1", "hub1")(add_node("  hub1: {kind: hub, vlan: 1}")(t)),
        "vm1 already connects to hub0; a guest NIC takes at most 1 hub, tap or socket",
        29,
        None,
    ),
    (
        "host nic one bridge",
        lambda t: add_link("eth0", "br1")(add_node("  br1: {kind: bridge}")(t)),
        "eth0 already connects to br0",
        29,
        None,
    ),
    ("mac syntax", sub("52:54:00:12:34:01", "52:54:00:12:34"), "is not a MAC address", 16, None),
    ("mac multicast", sub("52:54:00:12:34:01", "53:54:00:12:34:01"), "multicast", 16, None),
    ("mac zero", sub("52:54:00:12:34:01", "00:00:00:00:00:00"), "all zeros", 16, None),
    (
        "mac unique",
        sub("52:54:00:12:34:02", "52:54:00:12:34:01"),
        "MAC 52:54:00:12:34:01 is already used by vm1",
        20,
        sub("52:54:00:12:34:02", "52:54:00:12:34:03"),
    ),
    ("mac unique ignores case", sub("52:54:00:12:34:02", "52:54:00:12:34:01".upper()), "already used", 20, None),
    (
        "vlan range",
        sub("vlan: 0", "vlan: 4096"),
        "vlan must be from 0 to 4095, not 4096",
        13,
        sub("vlan: 0", "vlan: 4095"),
    ),
    ("vlan negative", sub("vlan: 0", "vlan: -1"), "must be from 0 to 4095", 13, None),
    (
        "vlan unique",
        lambda t: add_link("hub1", "vm3")(
            add_node("  hub1: {kind: hub, vlan: 0}\n  vm3: {kind: guest_nic, mac: 52:54:00:00:00:03}")(t)
        ),
        "hub1: VLAN 0 is already hub hub0",
        22,
        None,
    ),
    ("ipv4 syntax", sub("10.0.0.11/24", "10.0.0.300/24"), "is not an IPv4 address", 17, None),
    ("ipv4 prefix", sub("10.0.0.11/24", "10.0.0.11"), "needs a prefix length", 17, None),
    ("ipv4 network address", sub("10.0.0.11/24", "10.0.0.0/24"), "network address of 10.0.0.0/24", 17, None),
    ("ipv4 given ipv6", sub("10.0.0.11/24", "fd00::1/64"), "is an IPv6 address where IPv4 is expected", 17, None),
    (
        "ipv6 syntax",
        sub("ipv4: 10.0.0.11/24", "ipv6: fd00::zz/64"),
        "is not an IPv6 address",
        17,
        sub("ipv4: 10.0.0.11/24", "ipv6: fd00::11/64"),
    ),
    (
        "address unique in VLAN",
        sub("10.0.0.12/24", "10.0.0.11/24"),
        "ipv4 10.0.0.11 is already the address of vm1 on VLAN 0",
        21,
        None,
    ),
    ("address unique with outside host", sub("10.0.0.12/24", "10.0.0.1/24"), "already the address of eth0", 21, None),
    (
        "socket stream needs mode",
        add_node("  s0: {kind: socket, transport: stream, address: a.sock}"),
        "a stream socket needs 'mode'",
        22,
        None,
    ),
    (
        "socket dgram takes no mode",
        add_node("  s0: {kind: socket, transport: dgram, family: inet, mode: listen, address: '127.0.0.1:5000'}"),
        "mode is for stream sockets",
        22,
        add_node(
            "  s0: {kind: socket, transport: dgram, family: inet, address: '230.0.0.1:5000', local: '127.0.0.1:5001'}"
        ),
    ),
    (
        "socket inet address",
        add_node("  s0: {kind: socket, transport: stream, family: inet, mode: connect, address: localhost}"),
        "needs a port",
        22,
        None,
    ),
    (
        "socket port range",
        add_node("  s0: {kind: socket, transport: stream, family: inet, mode: connect, address: 'localhost:70000'}"),
        "a port is a number from 1 to 65535",
        22,
        None,
    ),
    (
        "socket unix path length",
        add_node("  s0: {kind: socket, transport: stream, mode: listen, address: " + "a" * 120 + "}"),
        "a unix socket path holds at most 107",
        22,
        None,
    ),
    (
        "multicast needs dgram",
        add_node("  s0: {kind: socket, transport: stream, family: inet, mode: connect, address: '230.0.0.1:5000'}"),
        "multicast address 230.0.0.1:5000 needs transport dgram",
        22,
        None,
    ),
    (
        "host nic real interface excludes outside address",
        sub("ipv4: 10.0.0.1/24", "ipv4: 10.0.0.1/24\n    interface: enp1s0"),
        "ipv4 belongs to the outside host, but a host NIC that attaches a real interface has none",
        6,
        sub("ipv4: 10.0.0.1/24", "interface: enp1s0"),
    ),
    (
        "host nic real interface keeps its own MAC",
        sub("ipv4: 10.0.0.1/24", "mac: 52:54:00:aa:00:01\n    interface: enp1s0"),
        "mac belongs to the outside host, but a host NIC that attaches a real interface has none: "
        "enp1s0 keeps its own",
        6,
        sub("ipv4: 10.0.0.1/24", "interface: enp1s0"),
    ),
    (
        "unknown NIC model",
        sub("    mac: 52:54:00:12:34:01", "    model: e1001\n    mac: 52:54:00:12:34:01"),
        "QEMU knows no NIC model 'e1001' (did you mean 'e1000'?)",
        16,
        sub("    mac: 52:54:00:12:34:01", "    model: rtl8139\n    mac: 52:54:00:12:34:01"),
    ),
]


@pytest.mark.parametrize(("rule", "breaks", "message", "line", "keeps"), CASES, ids=[c[0] for c in CASES])
def test_rule(rule, breaks, message, line, keeps):
    found = diags(breaks(SEED))
    hits = [d for d in found if message in d.message]
    assert hits, f"{rule}: no diagnostic with {message!r} in {[d.message for d in found]}"
    assert hits[0].line == line, f"{rule}: at line {hits[0].line}, expected {line}: {hits[0]}"
    assert hits[0].severity is Severity.ERROR or "NIC model" in message
    if keeps is not None:
        assert [d.message for d in diags(keeps(SEED)) if d.is_error] == []


def test_did_you_mean_and_position_columns():
    d = next(x for x in diags(sub("kind: tap", "kind: tapp")(SEED)) if "unknown kind" in x.message)
    assert (d.line, d.col) == (10, 11)  # points at the value, not the key
    assert d.node == "tap0" and d.field == "kind"


WARNINGS = [
    (
        "hub not on the host network",
        lambda t: add_link("hub1", "vm3")(
            add_node("  hub1: {kind: hub, vlan: 1}\n  vm3: {kind: guest_nic, mac: 52:54:00:00:00:03}")(t)
        ),
        "hub1: hub of VLAN 1 is not connected to the host network",
        lambda t: add_link("hub1", "tap1")(add_node("  tap1: {kind: tap}")(t)),
    ),
    (
        "tap with no peer",
        lambda t: add_link("br0", "tap1")(add_node("  tap1: {kind: tap}")(t)),
        "tap1: has no peer (no hub or guest NIC)",
        lambda t: add_link("tap1", "vm3")(add_node("  vm3: {kind: guest_nic, mac: 52:54:00:00:00:03}")(t)),
    ),
    ("unconnected", add_node("  tap1: {kind: tap}"), "tap1: not connected to anything", add_link("tap1", "br0")),
    (
        "hub without guest",
        lambda t: add_link("hub1", "tap1")(add_node("  hub1: {kind: hub, vlan: 1}\n  tap1: {kind: tap}")(t)),
        "hub1: hub of VLAN 1 has no guest NIC",
        lambda t: add_link("hub1", "s0")(
            add_link("hub1", "tap1")(
                add_node(
                    "  hub1: {kind: hub, vlan: 1}\n  tap1: {kind: tap}\n"
                    "  s0: {kind: socket, transport: stream, mode: listen, address: s.sock}"
                )(t)
            )
        ),
    ),
    (
        "loop",
        lambda t: add_link("hub1", "vm3")(
            add_link("br0", "tap1")(
                add_link("tap1", "hub0")(
                    add_node(
                        "  tap1: {kind: tap}\n  hub1: {kind: hub, vlan: 1}\n"
                        "  vm3: {kind: guest_nic, mac: 52:54:00:00:00:03}"
                    )(t)
                )
            )
        ),
        "loop through br0, tap0, hub0, tap1",
        sub("kind: bridge", "kind: bridge\n    stp: true"),
    ),
]


@pytest.mark.parametrize(("rule", "breaks", "message", "keeps"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_warning(rule, breaks, message, keeps):
    found = diags(breaks(SEED))
    hits = [d for d in found if message in d.message]
    assert hits and hits[0].severity is Severity.WARNING, [d.message for d in found]
    assert not any(d.is_error for d in found), [d.message for d in found]
    if rule == "loop":
        # the same loop with STP on its bridge is fine
        found = diags(keeps(breaks(SEED)))
        assert not any("loop" in d.message for d in found)
    else:
        assert not any(message in d.message for d in diags(keeps(breaks(SEED))))


def test_link_problem_is_what_the_editor_asks():
    t = load_text(SEED).topology
    assert link_problem(t, "vm1", "vm2") == (
        "a guest NIC cannot connect to a guest NIC (a guest NIC connects to one hub, tap or socket)"
    )
    assert link_problem(t, "tap0", "br0") == "tap0 and br0 are already linked"
    t.add(Node("tap1", Kind.TAP))
    assert link_problem(t, "tap1", "br0") is None
    assert "at most 1 hub or guest NIC" in link_problem(t, "tap0", "vm1")


def test_in_memory_topology_validates_without_a_file():
    t = Topology(name="mem")
    t.add(Node("hub0", Kind.HUB, {"vlan": 7}))
    t.add(Node("vm1", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:01"}))
    t.add(Node("tap0", Kind.TAP))
    t.links += [("hub0", "vm1"), ("hub0", "tap0")]
    assert validate(t) == []
    t.nodes["hub0"].attrs["vlan"] = 9999
    (d,) = validate(t)
    assert (d.line, d.col, d.node, d.field) == (1, 1, "hub0", "vlan")
