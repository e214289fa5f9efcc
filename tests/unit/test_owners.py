"""MAC, VLAN and interface owners: the editor and the validator agree on who holds what."""

from __future__ import annotations

import pytest

from qnet_tui.model.edit import EditError, Editor, next_mac, next_vlan
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import validate


def lab() -> Topology:
    t = Topology(name="own")
    t.add(Node("vm1", Kind.GUEST_NIC, {"mac": "52:54:00:12:34:0a"}))
    t.add(Node("vm2", Kind.GUEST_NIC, {"mac": "52:54:00:12:34:02"}))
    t.add(Node("bad", Kind.GUEST_NIC, {"mac": "not a mac"}))
    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    t.add(Node("hub1", Kind.HUB, {"vlan": 1}))
    t.add(Node("odd", Kind.HUB, {"vlan": True}))  # a bool is no VLAN
    t.add(Node("eth0", Kind.HOST_NIC, {"interface": "enp1s0"}))
    t.add(Node("eth1", Kind.HOST_NIC, {"interface": "enp1s0"}))
    return t


def errors(t: Topology) -> list[str]:
    return [d.message for d in validate(t) if d.field in ("mac", "vlan", "interface")]


def test_first_in_file_order_owns_and_the_later_one_is_reported():
    t = lab()
    t.nodes["vm2"].attrs["mac"] = "52:54:00:12:34:0A"  # the same MAC, written otherwise
    t.nodes["hub1"].attrs["vlan"] = 0
    assert errors(t) == [
        "bad: mac is not a MAC address of the form 52:54:00:12:34:56",
        "odd: vlan must be an integer, not true",
        "vm2: MAC 52:54:00:12:34:0A is already used by vm1",
        "hub1: VLAN 0 is already hub hub0",
        "eth1: interface enp1s0 is already attached by eth0; a real interface can join the lab once",
    ]


def test_the_editor_refuses_another_nodes_mac_or_vlan_but_not_its_own():
    t = lab()
    editor = Editor(t)
    with pytest.raises(EditError, match="already used by vm1"):
        editor.set_attr("vm2", "mac", "52:54:00:12:34:0A")
    with pytest.raises(EditError, match="already hub hub0"):
        editor.set_attr("hub1", "vlan", 0)
    editor.set_attr("vm1", "mac", "52:54:00:12:34:0A")  # its own, written otherwise
    editor.set_attr("hub0", "vlan", 0)
    assert next_mac(t) == "52:54:00:12:34:01"
    assert next_vlan(t) == 2
