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


def socket_node(attrs: str, node: str = "s0") -> str:
    """A stream socket, listening unless attrs say otherwise, on its own line."""
    mode = "" if "mode:" in attrs else "mode: listen, "
    return f"  {node}: {{kind: socket, transport: stream, {mode}{attrs}}}"


def dgram_node(attrs: str, node: str = "s0") -> str:
    return f"  {node}: {{kind: socket, transport: dgram, {attrs}}}"


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
    (
        "dhcp_server of a guest NIC not a bool",
        sub("mac: 52:54:00:12:34:01", "mac: 52:54:00:12:34:01\n    dhcp_server: 'yes'"),
        "vm1: dhcp_server must be true or false, not 'yes'",
        17,
        sub("mac: 52:54:00:12:34:01", "mac: 52:54:00:12:34:01\n    dhcp_server: true"),
    ),
    (
        "dhcp_server of a host NIC not a bool",
        sub("kind: host_nic", "kind: host_nic\n    dhcp_server: 1"),
        "eth0: dhcp_server must be true or false, not 1",
        6,
        sub("kind: host_nic", "kind: host_nic\n    dhcp_server: false"),
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
        "mac belongs to the outside host, but a host NIC that attaches a real interface has none: enp1s0 keeps its own",
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
    (
        "same real interface twice",
        lambda t: add_link("eth1", "br1")(
            add_node("  br1: {kind: bridge}\n  eth1: {kind: host_nic, interface: enp1s0}")(
                sub("ipv4: 10.0.0.1/24", "interface: enp1s0")(t)
            )
        ),
        "eth1: interface enp1s0 is already attached by eth0",
        23,
        lambda t: add_link("eth1", "br1")(
            add_node("  br1: {kind: bridge}\n  eth1: {kind: host_nic, interface: enp2s0}")(
                sub("ipv4: 10.0.0.1/24", "interface: enp1s0")(t)
            )
        ),
    ),
    (
        "unix path absolute without external",
        add_node(socket_node("address: /tmp/qemu.sock")),
        "s0: address '/tmp/qemu.sock' is an absolute path, outside the lab's runtime folder: set 'external: true'",
        22,
        add_node(socket_node("address: /tmp/qemu.sock, external: true")),
    ),
    (
        "unix path escapes the lab folder",
        add_node(socket_node("address: ../otherlab/control.sock")),
        "has a '..' component: a relative path must stay inside the lab's runtime folder",
        22,
        add_node(socket_node("address: otherlab/control.sock")),
    ),
    ("unix path dot dot inside", add_node(socket_node("address: a/../../b.sock")), "has a '..' component", 22, None),
    ("unix path home", add_node(socket_node("address: ~/vm.sock")), "starts with '~'", 22, None),
    ("unix path folder", add_node(socket_node("address: ./")), "names a folder, not a socket", 22, None),
    (
        "unix path is the control socket",
        add_node(socket_node("address: ./control.sock")),
        "s0: address './control.sock' is the lab's own control socket (control.sock in its runtime folder)",
        22,
        add_node(socket_node("address: controls.sock")),
    ),
    (
        "unix path is the state file",
        add_node(dgram_node("address: a.sock, local: state.json")),
        "the lab's own state file",
        22,
        None,
    ),
    ("unix path is the lock", add_node(dgram_node("address: lock")), "the lab's own lock file", 22, None),
    ("unix path hidden", add_node(socket_node("address: .vm.sock")), "names a file starting with '.'", 22, None),
    (
        "unix path too long with the lab folder",
        add_node(socket_node("address: " + "a" * 85 + ".sock")),
        f"is '/run/qnet-tui/seed/{'a' * 85}.sock' with the lab's runtime folder in front: 109 bytes, "
        "and a unix socket path holds at most 107",
        22,
        add_node(socket_node("address: " + "a" * 83 + ".sock")),
    ),
    (
        "external with a relative path",
        add_node(dgram_node("address: /tmp/qemu.sock, local: in.sock, external: true")),
        "s0: external: true says this socket's paths are absolute, outside the lab's folder, but local 'in.sock' "
        "is relative (a relative path lives in the lab's own folder): make it absolute, or drop external",
        22,
        add_node(dgram_node("address: /tmp/qemu.sock, local: /tmp/in.sock, external: true")),
    ),
    (
        "external on inet",
        add_node(socket_node("family: inet, address: '127.0.0.1:5000', external: false")),
        "s0: external is for unix sockets",
        22,
        add_node(socket_node("family: inet, address: '127.0.0.1:5000'")),
    ),
    (
        "external inside the lab's own folder",
        add_node(socket_node("address: //run/qnet-tui/seed/./vm.sock, external: true")),
        "is inside this lab's own runtime folder /run/qnet-tui/seed: write it relative (vm.sock) and without external",
        22,
        None,
    ),
    (
        "external bind in another lab's folder",
        add_node(socket_node("address: /var/run/qnet-tui/other/control.sock, external: true")),
        "is inside /run/qnet-tui, where labs keep their own files",
        22,
        add_node(socket_node("mode: connect, address: /var/run/qnet-tui/other/vm.sock, external: true")),
    ),
    (
        "external dialling another lab's control socket",
        add_node(socket_node("mode: connect, address: /run/qnet-tui/other/control.sock, external: true")),
        "s0: address '/run/qnet-tui/other/control.sock' is lab other's own control socket: another lab is reached "
        "only through the sockets it serves",
        22,
        add_node(dgram_node("address: /run/qnet-tui/other/vm.sock, local: /tmp/in.sock, external: true")),
    ),
    (
        "external sending to another lab's dot file",
        add_node(dgram_node("address: /run/qnet-tui/other/.state.json.tmp, local: /tmp/in.sock, external: true")),
        "is lab other's own file",
        22,
        None,
    ),
    (
        "two sockets listen on one path",
        add_node(socket_node("address: vm.sock") + "\n" + socket_node("address: ./vm.sock", "s1")),
        "s1: address vm.sock is the same unix path as s0's address: two sockets of a lab cannot bind one",
        23,
        add_node(socket_node("address: vm.sock") + "\n" + socket_node("mode: connect, address: ./vm.sock", "s1")),
    ),
    (
        "a dgram local on a listen path",
        add_node(
            socket_node("address: /tmp/vm.sock, external: true")
            + "\n"
            + dgram_node("address: /tmp/b.sock, local: /tmp//vm.sock, external: true", "s1")
        ),
        "s1: local /tmp/vm.sock is the same unix path as s0's address",
        23,
        None,
    ),
    (
        "a socket on a QEMU guest NIC's path",
        lambda t: add_node(socket_node("address: vm1.sock"))(
            sub("    mac: 52:54:00:12:34:01", "    mac: 52:54:00:12:34:01\n    qemu: true")(t)
        ),
        "s0: address vm1.sock is the same unix path as vm1's VM socket",
        23,
        None,
    ),
    (
        "a QEMU guest NIC named control",
        lambda t: add_link("hub0", "control")(
            add_node("  control: {kind: guest_nic, mac: '52:54:00:00:00:09', qemu: true}")(t)
        ),
        "control: the lab serves this QEMU guest NIC at control.sock in its runtime folder, which is the lab's "
        "own control socket (control.sock in its runtime folder): give the node another id",
        22,
        lambda t: add_link("hub0", "ctl")(
            add_node("  ctl: {kind: guest_nic, mac: '52:54:00:00:00:09', qemu: true}")(t)
        ),
    ),
    (
        "two inet listens on one port",
        add_node(
            socket_node("family: inet, address: '127.0.0.1:5000'")
            + "\n"
            + socket_node("family: inet, address: 'localhost:5000'", "s1")
        ),
        "s1: address 127.0.0.1:5000 is the same address as s0's address",
        23,
        add_node(
            socket_node("family: inet, address: '127.0.0.1:5000'")
            + "\n"
            + dgram_node("family: inet, address: '127.0.0.1:6000', local: '127.0.0.1:5000'", "s1")
        ),
    ),
    (
        "impairment text form",
        sub("[hub0, vm1]", "[hub0, vm1, {impair: loss=120%}]"),
        "link hub0 - vm1: impair towards vm1: loss=120%: a percentage is between 0% and 100%",
        26,
        sub("[hub0, vm1]", "[hub0, vm1, {impair: 'delay=50ms loss=12%'}]"),
    ),
    (
        "impairment one way",
        sub("[hub0, vm1]", "[hub0, vm1, {impair: {hub0: jitter=5ms}}]"),
        "link hub0 - vm1: impair towards hub0: jitter needs a delay",
        26,
        sub("[hub0, vm1]", "[hub0, vm1, {impair: {hub0: delay=9ms jitter=5ms, vm1: none}}]"),
    ),
    (
        "impairment off the worker",
        sub("[eth0, br0]", "[eth0, br0, {impair: delay=5ms}]"),
        "link eth0 - br0: impair needs the lab's worker on the link",
        23,
        sub("[br0, tap0]", "[br0, tap0, {impair: delay=5ms}]"),
    ),
    (
        "impairment by an end not on the link",
        sub("[hub0, vm2]", "[hub0, vm2, {impair: {vm1: delay=1ms}}]"),
        "link hub0 - vm2: impair is a text form (as in delay=50ms loss=1%) for both ways, or a mapping from an end",
        27,
        sub("[hub0, vm2]", "[hub0, vm2, {impair: {vm2: delay=1ms}}]"),
    ),
    ("link option unknown", sub("[hub0, vm2]", "[hub0, vm2, {speed: 1}]"), "unknown option speed", 27, None),
    ("link of four items", sub("[hub0, vm2]", "[hub0, vm2, {}, x]"), "a link is a pair of node ids", 27, None),
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


def on_hub0(*nodes: str) -> Callable[[str], str]:
    """Add socket nodes (socket_node/dgram_node lines) and link each to hub0."""

    def edit(text: str) -> str:
        text = add_node("\n".join(nodes))(text)
        for line in nodes:
            text = add_link("hub0", line.split(":")[0].strip())(text)
        return text

    return edit


LOOPS = [
    (
        "bridge with two taps on one hub",
        lambda t: add_link("tap1", "hub0")(add_link("br0", "tap1")(add_node("  tap1: {kind: tap}")(t))),
        "loop through br0, tap0, hub0, tap1: broadcasts circle forever",
        None,
    ),
    (
        "stream sockets of one hub dialling each other",
        on_hub0(socket_node("address: a.sock", "s1"), socket_node("mode: connect, address: ./a.sock", "s2")),
        "loop through hub0, s1, s2 (s2 sends to s1's address a.sock, both served by this lab): broadcasts circle "
        "forever (hubs run no STP: remove a link)",
        on_hub0(socket_node("address: a.sock", "s1"), socket_node("mode: connect, address: b.sock", "s2")),
    ),
    (
        "dgram sockets sending to each other",
        on_hub0(dgram_node("address: b.sock, local: a.sock", "d1"), dgram_node("address: a.sock, local: b.sock", "d2")),
        "loop through hub0, d1, d2 (d1 sends to d2's local b.sock",
        on_hub0(dgram_node("address: b.sock, local: a.sock", "d1"), dgram_node("address: c.sock, local: d.sock", "d2")),
    ),
    (
        "one way is enough",
        on_hub0(
            dgram_node("family: inet, address: '127.0.0.1:6001', local: '127.0.0.1:6000'", "d1"),
            dgram_node("family: inet, address: '192.0.2.1:6000', local: '0.0.0.0:6001'", "d2"),
        ),
        "(d1 sends to d2's local 0.0.0.0:6001, both served by this lab)",
        on_hub0(
            dgram_node("family: inet, address: '192.0.2.9:6001', local: '127.0.0.1:6000'", "d1"),
            dgram_node("family: inet, address: '192.0.2.1:6000', local: '0.0.0.0:6001'", "d2"),
        ),
    ),
    (
        "tcp to the lab's own listener",
        on_hub0(
            socket_node("family: inet, address: '[::]:5000'", "s1"),
            socket_node("family: inet, mode: connect, address: 'localhost:5000'", "s2"),
        ),
        "(s2 sends to s1's address [::]:5000, both served by this lab)",
        on_hub0(
            socket_node("family: inet, address: '[::]:5000'", "s1"),
            socket_node("family: inet, mode: connect, address: '192.0.2.7:5000'", "s2"),
        ),
    ),
    (
        "a socket dialling a QEMU guest NIC of the same hub",
        lambda t: on_hub0(socket_node("mode: connect, address: vm1.sock", "s1"))(
            sub("    mac: 52:54:00:12:34:01", "    mac: 52:54:00:12:34:01\n    qemu: true")(t)
        ),
        "loop through hub0, vm1, s1 (s1 sends to vm1's VM socket vm1.sock, both served by this lab)",
        lambda t: on_hub0(socket_node("mode: connect, address: vm2.sock", "s1"))(
            sub("    mac: 52:54:00:12:34:01", "    mac: 52:54:00:12:34:01\n    qemu: true")(t)
        ),
    ),
    (
        "two hubs joined by a bridge and by a socket pair",
        lambda t: add_link("hub1", "s2")(
            add_link("hub0", "s1")(
                add_link("tap1", "hub1")(
                    add_link("br0", "tap1")(
                        add_node(
                            "  tap1: {kind: tap}\n  hub1: {kind: hub, vlan: 1}\n"
                            + socket_node("address: a.sock", "s1")
                            + "\n"
                            + socket_node("mode: connect, address: a.sock", "s2")
                        )(t)
                    )
                )
            )
        ),
        "loop through br0, tap0, hub0, tap1, hub1, s1 and 1 more (s2 sends to s1's address a.sock",
        sub("kind: bridge", "kind: bridge\n    stp: true"),
    ),
]


@pytest.mark.parametrize(("rule", "breaks", "message", "keeps"), LOOPS, ids=[w[0] for w in LOOPS])
def test_loop_warning(rule, breaks, message, keeps):
    found = diags(breaks(SEED))
    hits = [d for d in found if message in d.message]
    assert hits and hits[0].severity is Severity.WARNING, [d.message for d in found]
    assert hits[0].link is not None  # placed on a link of the loop
    assert not any(d.is_error for d in found), [d.message for d in found]
    if keeps is not None:
        found = diags(keeps(breaks(SEED)) if rule.startswith("two hubs") else keeps(SEED))
        assert not any("loop" in d.message for d in found), [d.message for d in found]
        assert not any(d.is_error for d in found), [d.message for d in found]


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


def test_refused_links_count_for_the_editor_but_not_for_the_validator():
    # tap0 has one bridge slot; the file links it to br0 twice over and to br1.
    text = add_node("  br1:\n    kind: bridge\n  br2:\n    kind: bridge\n")(SEED)
    text = add_link("tap0", "br1")(add_link("tap0", "br0")(text))
    # The validator takes a link only when it passes: br0's second link and
    # br1's are refused against br0 alone.
    assert [m for m in messages(text, Severity.ERROR)] == [
        "link tap0 - br0: tap0 and br0 are already linked",
        "link tap0 - br1: tap0 already connects to br0; a tap takes at most 1 bridge",
    ]
    # The editor counts every link that is there, refused or not, duplicates too.
    t = load_text(text).topology
    assert link_problem(t, "tap0", "br2") == "tap0 already connects to br0, br0, br1; a tap takes at most 1 bridge"
    assert link_problem(t, "br2", "tap0") == "tap0 already connects to br0, br0, br1; a tap takes at most 1 bridge"
    # Links to unknown nodes or kinds take no slot.
    t.add(Node("odd", "router"))
    t.links[:] = [("vm1", "ghost"), ("vm1", "odd"), ("vm1", "vm1")]
    assert link_problem(t, "vm1", "hub0") is None


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
