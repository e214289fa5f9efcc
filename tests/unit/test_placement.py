"""Placement of a lab's nodes on machines (model/placement.py): the hosts
section, each node's machine, the hubs that span machines, and each
machine's share of the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnet_tui.model import placement
from qnet_tui.model.kinds import Kind
from qnet_tui.model.placement import THIS, Host
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlio import load_file, load_text

SAMPLE = Path(__file__).parents[2] / "sample_topologies" / "two-machines.yaml"

SPLIT = """\
version: 1
name: split
hosts:
  a: {ssh: root@192.0.2.1}
  b: {ssh: ssh://ops@b.example:2222, address: 192.0.2.2, vxlan_port: 4790, command: /opt/q/bin/qnet-tui}
nodes:
  eth0: {kind: host_nic, ipv4: 10.0.0.1/24}
  br0: {kind: bridge}
  tap0: {kind: tap, host: a}
  hub0: {kind: hub, vlan: 10, vni: 5010}
  hub1: {kind: hub, vlan: 11}
  lone: {kind: hub, vlan: 12}
  g1: {kind: guest, host: b}
  g1-eth0: {kind: guest_nic, guest: g1, mac: "52:54:00:00:00:01"}
  g1-eth1: {kind: guest_nic, guest: g1, mac: "52:54:00:00:00:03"}
  vm2: {kind: guest_nic, mac: "52:54:00:00:00:02"}
  s0: {kind: socket, transport: dgram, family: inet, address: "127.0.0.1:5000", local: "127.0.0.1:5001"}
  vm3: {kind: guest_nic, mac: "52:54:00:00:00:04", host: b}
links:
  - [eth0, br0]
  - [br0, tap0]
  - [tap0, hub0, {impair: delay=5ms}]
  - [hub0, g1-eth0, {impair: loss=1%}]
  - [hub0, vm2]
  - [hub1, g1-eth1]
  - [s0, vm3, {impair: {vm3: delay=1ms}}]
"""


def split() -> Topology:
    doc = load_text(SPLIT)
    assert doc.problems == []
    return doc.topology


def test_split_is_valid():
    assert [d.message for d in validate(split()) if d.is_error] == []


def test_hosts_as_given_and_with_their_defaults():
    assert placement.hosts(split()) == {
        "a": Host("a", "root@192.0.2.1", "192.0.2.1"),
        "b": Host("b", "ssh://ops@b.example:2222", "192.0.2.2", 4790, "/opt/q/bin/qnet-tui"),
    }


def test_hosts_leaves_broken_entries_out():
    t = Topology(
        hosts={
            "a": {"ssh": "root@192.0.2.1"},
            "nowhere": {"vxlan_port": 4789},
            "bad-port": {"address": "192.0.2.3", "vxlan_port": 0},
            "x y": {"address": "192.0.2.4"},
            "twin": {"address": "192.0.2.1"},  # a's address and port: the later one goes
            "named": {"ssh": "root@b.example"},
        }
    )
    assert placement.hosts(t) == {
        "a": Host("a", "root@192.0.2.1", "192.0.2.1"),
        "named": Host("named", "root@b.example", "b.example"),
    }
    assert placement.hosts(Topology(hosts=["a"])) == {}
    assert placement.hosts(Topology()) == {}


@pytest.mark.parametrize(
    ("destination", "host"),
    [
        ("root@192.0.2.2", "192.0.2.2"),
        ("192.0.2.2", "192.0.2.2"),
        ("b.example", "b.example"),
        ("user@b", "b"),
        ("root@2001:db8::2", "2001:db8::2"),
        ("root@[2001:db8::2]", "2001:db8::2"),
        ("ssh://root@b.example", "b.example"),
        ("ssh://root@b.example:2222", "b.example"),
        ("ssh://b.example/", "b.example"),
        ("ssh://[2001:db8::2]:22", "2001:db8::2"),
        ("a@b@c.example", "c.example"),  # ssh splits at the last '@'
    ],
)
def test_ssh_host_part(destination, host):
    assert placement.ssh_host(destination) == (host, None)


@pytest.mark.parametrize(
    ("destination", "problem"),
    [
        ("", "is empty"),
        ("-oProxyCommand=sh", "starts with '-'"),
        ("root@b example", "white space"),
        ("root@b:22", "a port goes in the form ssh://[user@]host:port"),
        ("ssh://2001:db8::2", "a port goes in the form ssh://[user@][IPV6]:port"),
        ("ssh://root@b:0", "has port '0'"),
        ("ssh://root@b/path", "has a path"),
        ("@b", "empty user"),
        ("root@", "names no host"),
        ("root@[b]", "not an IPv6 address"),
        ("root@[2001:db8::2]:22", "not [IPV6]"),
        ("root@b;reboot", "neither an IP address nor a host name"),
    ],
)
def test_ssh_destination_problems(destination, problem):
    host, why = placement.ssh_host(destination)
    assert host is None and problem in why


def test_machine_of_follows_bridges_guests_and_peers():
    assert placement.machine_of(split()) == {
        "eth0": "a",  # on br0, which tap0 (host a) puts on a
        "br0": "a",
        "tap0": "a",
        "g1": "b",
        "g1-eth0": "b",  # its guest's
        "g1-eth1": "b",
        "vm2": THIS,  # on a hub only: where the lab starts
        "s0": "b",  # the socket vm3 peers with
        "vm3": "b",
    }


def test_machine_of_without_hosts_is_all_this_machine():
    t = load_file(Path(__file__).parents[2] / "sample_topologies" / "seed-path.yaml").topology
    machines = placement.machine_of(t)
    assert set(machines) == {n for n, node in t.nodes.items() if node.kind is not Kind.HUB}
    assert set(machines.values()) == {THIS}


def test_a_group_takes_the_first_host_in_file_order():
    # Two hosts in one group is a validation error; placement still answers, the same each time.
    t = Topology(links=[("t0", "br0"), ("br0", "t1")])
    t.add(Node("t0", Kind.TAP, {"host": "b"}))
    t.add(Node("br0", Kind.BRIDGE))
    t.add(Node("t1", Kind.TAP, {"host": "a"}))
    assert placement.machine_of(t) == {"t0": "b", "br0": "b", "t1": "a"}


def test_a_hub_is_where_its_ports_are():
    assert placement.hub_machines(split()) == {"hub0": {"a", "b", THIS}, "hub1": {"b"}, "lone": {THIS}}


def test_vni_is_the_vlan_unless_given():
    t = split()
    assert placement.vni(t.nodes["hub0"]) == 5010
    assert placement.vni(t.nodes["hub1"]) == 11


def test_shares_split_the_lab():
    t = split()
    a, b, here = (placement.share(t, m) for m in ("a", "b", THIS))
    assert list(a.nodes) == ["eth0", "br0", "tap0", "hub0"]
    assert list(b.nodes) == ["hub0", "hub1", "g1", "g1-eth0", "g1-eth1", "s0", "vm3"]
    assert list(here.nodes) == ["hub0", "lone", "vm2"]
    # Every node but the hubs is in one share; a hub is in each of its machines'.
    owned = [n for s in (a, b, here) for n, node in s.nodes.items() if node.kind is not Kind.HUB]
    assert sorted(owned) == sorted(placement.machine_of(t))
    assert a.links == [("eth0", "br0"), ("br0", "tap0"), ("tap0", "hub0")]
    assert b.links == [("hub0", "g1-eth0"), ("hub1", "g1-eth1"), ("s0", "vm3")]
    assert here.links == [("hub0", "vm2")]
    assert a.impair == {("tap0", "hub0"): "delay=5ms", ("hub0", "tap0"): "delay=5ms"}
    assert b.impair == {("hub0", "g1-eth0"): "loss=1%", ("g1-eth0", "hub0"): "loss=1%", ("s0", "vm3"): "delay=1ms"}
    assert here.impair == {}


def test_a_spanning_hub_is_forwarded_by_the_worker():
    t = split()
    b = placement.share(t, "b")
    assert b.nodes["hub0"].attrs == {"vlan": 10, "vni": 5010, "forwarding": "worker"}
    assert b.nodes["hub1"].attrs == {"vlan": 11}  # on b alone: as the file says
    assert "forwarding" not in t.nodes["hub0"].attrs  # the file's topology is left as it was


def test_a_share_is_a_copy_with_the_hosts_and_no_scenarios():
    t = split()
    t.scenarios = {"s": [{"at": "1s", "link": ["hub0", "vm2"], "down": True}]}
    t.description = "two machines"
    b = placement.share(t, "b")
    assert (b.name, b.description, b.scenarios) == ("split", "two machines", None)
    assert b.hosts == t.hosts and b.hosts is not t.hosts
    b.nodes["g1"].attrs["forwarding"] = True
    assert "forwarding" not in t.nodes["g1"].attrs
    assert b.nodes["g1"] is not t.nodes["g1"] and b.nodes["g1"].origin == "g1"


def test_each_share_places_its_nodes_on_its_machine():
    # A share read by itself puts every node where the whole lab does.
    t = split()
    whole = placement.machine_of(t)
    for machine in ("a", "b", THIS):
        part = placement.machine_of(placement.share(t, machine))
        assert part == {n: whole[n] for n in part}
        assert set(part.values()) <= {machine}


def test_spans_name_the_other_machines():
    t = split()
    assert placement.spans(t, "a") == {"hub0": {"b", THIS}}
    assert placement.spans(t, "b") == {"hub0": {"a", THIS}}
    assert placement.spans(t, THIS) == {"hub0": {"a", "b"}}
    assert placement.spans(t, "nowhere") == {}


def test_the_sample_validates_clean_and_splits_in_two():
    doc = load_file(SAMPLE)
    t = doc.topology
    assert doc.diagnostics() == []
    assert set(placement.hosts(t)) == {"a", "b"}
    machines = placement.machine_of(t)
    assert {n for n, m in machines.items() if m == "a" and t.nodes[n].kind is Kind.GUEST} == {"a1", "a2"}
    assert {n for n, m in machines.items() if m == "b" and t.nodes[n].kind is Kind.GUEST} == {"b1", "b2"}
    assert THIS not in machines.values()
    vlan = {hub.id: hub.attrs["vlan"] for hub in t.of_kind(Kind.HUB)}
    spanning = {vlan[h]: where for h, where in placement.hub_machines(t).items()}
    assert spanning == {10: {"a", "b"}, 20: {"b"}}
    assert placement.spans(t, "a") == {"hub10": {"b"}}


def test_a_stitched_hub_keeps_virtio_net_headers_unless_a_member_anywhere_cannot() -> None:
    """Both ends of a stitch must agree on the frames they carry: each
    machine judges a hub by its members on every machine (lab/machines.py)."""
    from qnet_tui.lab.machines import Machines
    from qnet_tui.lab.realize import plan_hubs

    s1 = '{kind: socket, transport: dgram, family: inet, address: "127.0.0.1:5002", local: "127.0.0.1:5003"}'
    text = SPLIT.replace("  - [hub1, g1-eth1]\n", "  - [hub1, g1-eth1]\n  - [hub1, s1]\n")
    text = text.replace("  vm3:", f"  s1: {s1}\n  vm3:")
    doc = load_text(text)
    assert doc.problems == []
    t = doc.topology
    for machine in (None, "b"):  # the controller's machine, b
        m = Machines(t, text, "split.yaml", machine, "192.0.2.9", None)
        assert m.stitched() == {"hub0", "hub1"}  # hub1: g1-eth1 on b, the socket s1 on the controller's
        assert m.plain() == {"hub1"}
        vnet = {h.name: h.vnet for h in plan_hubs(m.local, stitched=m.stitched(), plain=m.plain()) if h.node}
        # On b, hub1's only member is g1-eth1, which could carry headers: the socket elsewhere says no.
        assert vnet["hub0"] is True and vnet["hub1"] is False, (machine, vnet)
