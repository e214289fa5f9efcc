"""Validation of a lab spread over machines: the hosts section, what nodes'
host: names, and what must run on one machine. Each case edits a valid
two-machine file and names the message and the line (and column) it must give."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qnet_tui.model.diagnostics import Severity
from qnet_tui.model.yamlio import load_text

BASE = """\
version: 1
name: split
hosts:
  a:
    ssh: root@192.0.2.1
  b:
    address: 192.0.2.2
nodes:
  eth0:
    kind: host_nic
    ipv4: 10.0.0.1/24
  br0:
    kind: bridge
    host: a
  tap0:
    kind: tap
  hub0:
    kind: hub
    vlan: 10
  g1:
    kind: guest
    host: b
  g1-eth0:
    kind: guest_nic
    guest: g1
    mac: 52:54:00:00:00:01
    ipv4: 10.0.0.11/24
  vm2:
    kind: guest_nic
    mac: 52:54:00:00:00:02
    ipv4: 10.0.0.12/24
links:
  - [eth0, br0]
  - [br0, tap0]
  - [tap0, hub0]
  - [hub0, g1-eth0]
  - [hub0, vm2]
"""


def sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def errors(text: str) -> list:
    return [d for d in load_text(text).diagnostics() if d.severity is Severity.ERROR]


def test_base_is_clean():
    assert load_text(BASE).diagnostics() == []


# (case, edit, message fragment, (line, col))
CASES = [
    (
        "hosts not a mapping",
        sub("hosts:\n  a:\n    ssh: root@192.0.2.1\n  b:\n    address: 192.0.2.2\n", "hosts: [a, b]\n"),
        "hosts must be a mapping from a machine's name to how to reach it",
        (3, 8),
    ),
    ("bad host name", sub("  b:\n", "  b/c:\n"), "host name 'b/c' must start with a letter or digit", (6, 3)),
    ("host not a mapping", sub("  b:\n    address: 192.0.2.2\n", "  b: root@x\n"), "host b: a mapping with", (6, 6)),
    (
        "host with no way to reach it",
        sub("    address: 192.0.2.2\n", "    vxlan_port: 4790\n"),
        "host b: give address: (or ssh:)",
        (6, 3),
    ),
    (
        "unknown host key",
        sub("    address: 192.0.2.2", "    adress: 192.0.2.2"),
        "host b: unknown key 'adress' (did you mean 'address'?); a host has ssh, address, vxlan_port, command",
        (7, 5),
    ),
    (
        "address with a prefix",
        sub("address: 192.0.2.2", "address: 192.0.2.2/24"),
        "host b: address '192.0.2.2/24' has a prefix length",
        (7, 14),
    ),
    ("address not an address", sub("address: 192.0.2.2", "address: b.example"), "is not an IPv4 or IPv6", (7, 14)),
    ("address multicast", sub("address: 192.0.2.2", "address: 239.1.1.1"), "is not a unicast address", (7, 14)),
    ("address a number", sub("address: 192.0.2.2", "address: 7"), "address must be an IPv4 or IPv6", (7, 14)),
    ("vxlan_port zero", sub("address: 192.0.2.2", "address: 192.0.2.2\n    vxlan_port: 0"), "vxlan_port", (8, 17)),
    (
        "vxlan_port too big",
        sub("address: 192.0.2.2", "address: 192.0.2.2\n    vxlan_port: 65536"),
        "vxlan_port must be a UDP port from 1 to 65535, not 65536",
        (8, 17),
    ),
    ("vxlan_port a bool", sub("address: 192.0.2.2", "address: 192.0.2.2\n    vxlan_port: true"), "not true", (8, 17)),
    ("command empty", sub("address: 192.0.2.2", "address: 192.0.2.2\n    command: ''"), "command must be", (8, 14)),
    ("ssh an option", sub("ssh: root@192.0.2.1", "ssh: -oProxyCommand=x"), "ssh would read as an option", (5, 10)),
    ("ssh with a space", sub("ssh: root@192.0.2.1", "ssh: root@a b"), "white space", (5, 10)),
    ("ssh port outside a URI", sub("ssh: root@192.0.2.1", "ssh: root@a:22"), "a port goes in the form", (5, 10)),
    ("ssh empty user", sub("ssh: root@192.0.2.1", "ssh: '@a'"), "empty user", (5, 10)),
    ("ssh URI bad port", sub("ssh: root@192.0.2.1", "ssh: ssh://root@a:99999"), "has port '99999'", (5, 10)),
    ("ssh no host", sub("ssh: root@192.0.2.1", "ssh: root@"), "names no host", (5, 10)),
    ("ssh bad host", sub("ssh: root@192.0.2.1", "ssh: root@a!b"), "neither an IP address nor a host name", (5, 10)),
    (
        "same address twice",
        sub("address: 192.0.2.2", "address: 192.0.2.1"),
        "host b: address 192.0.2.1 is already host a's: two machines cannot receive VXLAN at one address and port",
        (7, 14),
    ),
    (
        "same address twice, spelled differently",
        lambda text: text.replace("ssh: root@192.0.2.1", "address: 2001:db8::1").replace("192.0.2.2", "2001:DB8::1"),
        "host b: address 2001:DB8::1 is already host a's",
        (7, 14),
    ),
    (
        "host names no host",
        sub("    host: b\n", "    host: c\n"),
        "g1: host 'c' names no host in hosts:; hosts are a, b",
        (22, 11),
    ),
    (
        "host names no host, and there is no hosts section",
        sub("hosts:\n  a:\n    ssh: root@192.0.2.1\n  b:\n    address: 192.0.2.2\n", ""),
        "br0: host 'a' names no host in hosts:: the file has no hosts: section",
        (9, 11),
    ),
    ("host of a hub", sub("    vlan: 10\n", "    vlan: 10\n    host: a\n"), "hub0: a hub has no host", (20, 11)),
    ("host not a string", sub("    host: b\n", "    host: 2\n"), "g1: host must be a string, not 2", (22, 11)),
    (
        "tap on another host than its bridge",
        sub("    kind: tap\n", "    kind: tap\n    host: b\n"),
        "tap0 is on host b but its bridge br0 is on host a: a bridge and what it connects run on one machine",
        (17, 11),
    ),
    (
        "host NIC on another host than its bridge",
        sub("    ipv4: 10.0.0.1/24\n", "    ipv4: 10.0.0.1/24\n    host: b\n"),
        "eth0 is on host b but its bridge br0 is on host a",
        (12, 11),
    ),
    (
        "guest NIC on another host than its guest",
        sub("    guest: g1\n", "    guest: g1\n    host: a\n"),
        "g1-eth0 is on host a but its guest g1 is on host b: a guest and its NICs run on one machine",
        (26, 11),
    ),
    (
        "guest NIC on another host than the tap it peers with",
        # vm2 straight on the tap (a QEMU netdev peer), on host b
        lambda text: sub("  - [tap0, hub0]\n  - [hub0, g1-eth0]\n  - [hub0, vm2]\n", "  - [tap0, vm2]\n")(
            sub("    ipv4: 10.0.0.12/24\n", "    host: b\n")(text)
        ),
        "vm2 is on host b but its tap tap0 is on host a: a guest NIC and the tap it peers with run on one machine",
        (31, 11),
    ),
    (
        "two NICs with one MAC on two machines",
        sub("mac: 52:54:00:00:00:02", "mac: 52:54:00:00:00:01"),
        "vm2: MAC 52:54:00:00:00:01 is already used by g1-eth0 (on host b, vm2 on this machine)",
        (30, 10),
    ),
]


@pytest.mark.parametrize(("case", "breaks", "message", "where"), CASES, ids=[c[0] for c in CASES])
def test_rule(case, breaks, message, where):
    found = errors(breaks(BASE))
    hits = [d for d in found if message in d.message]
    assert hits, f"{case}: no error with {message!r} in {[d.message for d in found]}"
    assert (hits[0].line, hits[0].col) == where, f"{case}: {hits[0]}"


def test_host_hint_names_the_close_one():
    text = sub("  b:\n    address: 192.0.2.2\n", "  b:\n    address: 192.0.2.2\n  bee:\n    address: 192.0.2.3\n")(BASE)
    text = text.replace("    host: b\n", "    host: be\n")
    assert [d.message for d in errors(text)] == [
        "g1: host 'be' names no host in hosts: (did you mean 'bee'?); hosts are a, b, bee"
    ]


def test_one_placed_node_places_its_group():
    # Only br0 says host a: eth0 and tap0 go with it, and nothing is apart.
    text = sub("  tap0:\n    kind: tap\n", "  tap0:\n    kind: tap\n    host: a\n")(BASE)
    assert errors(text) == []


def test_a_broken_host_is_reported_once():
    # Host b is broken; g1 names it: no "names no host", no "apart" on its account.
    text = sub("address: 192.0.2.2", "address: nowhere")(BASE)
    assert [d.message for d in errors(text)] == ["host b: address 'nowhere' is not an IPv4 or IPv6 address"]


def test_same_address_on_another_vxlan_port_is_two_machines():
    # Two workers on one computer, each receiving VXLAN on its own port: fine.
    text = sub("address: 192.0.2.2", "address: 192.0.2.1\n    vxlan_port: 4790")(BASE)
    assert errors(text) == []


def test_the_ssh_host_is_the_address_when_none_is_given():
    text = sub("address: 192.0.2.2", "ssh: ssh://root@[2001:db8::1]:2222")(BASE)
    text = text.replace("ssh: root@192.0.2.1", "address: 2001:db8:0::1")
    assert [d.message for d in errors(text)] == [
        "host b: address 2001:db8::1 is already host a's: two machines cannot receive VXLAN at one address and port"
    ]


def test_a_mac_twice_on_one_machine_says_no_machine():
    text = sub("  vm2:\n    kind: guest_nic\n", "  vm2:\n    kind: guest_nic\n    host: b\n")(BASE)
    text = text.replace("mac: 52:54:00:00:00:02", "mac: 52:54:00:00:00:01")
    assert [d.message for d in errors(text)] == ["vm2: MAC 52:54:00:00:00:01 is already used by g1-eth0"]


def test_a_mac_twice_across_hosts_names_both():
    text = sub("  vm2:\n    kind: guest_nic\n", "  vm2:\n    kind: guest_nic\n    host: a\n")(BASE)
    text = text.replace("mac: 52:54:00:00:00:02", "mac: 52:54:00:00:00:01")
    assert [d.message for d in errors(text)] == [
        "vm2: MAC 52:54:00:00:00:01 is already used by g1-eth0 (on host b, vm2 on host a)"
    ]


def test_vni_is_a_24_bit_number():
    ok = sub("    vlan: 10\n", "    vlan: 10\n    vni: 16777215\n")(BASE)
    assert errors(ok) == []
    bad = sub("    vlan: 10\n", "    vlan: 10\n    vni: 16777216\n")(BASE)
    assert [d.message for d in errors(bad)] == ["hub0: vni must be from 0 to 16777215, not 16777216"]
