"""The Editor: each edit's success and refusal (a refused edit changes
nothing), undo and redo restoring the exact topology, the saved-state marker,
the defaults for new nodes, and edits of a loaded file saving cleanly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qnet_tui.model import edit, values
from qnet_tui.model.edit import (
    MAX_UNDO,
    EditError,
    Editor,
    default_attrs,
    next_id,
    next_mac,
    next_vlan,
)
from qnet_tui.model.kinds import FIELD_BY_NAME, FIELDS, Field, Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import link_problem, validate
from qnet_tui.model.yamlio import load_file, load_text

SEED = Path(__file__).parents[2] / "sample_topologies" / "seed-path.yaml"

State = tuple[Any, ...]


def seed() -> Topology:
    """The seed path of the samples, built in code, plus a socket."""
    t = Topology(name="seed", description="a test lab")
    t.add(Node("eth0", Kind.HOST_NIC, {"ipv4": "10.0.0.1/24"}))
    t.add(Node("br0", Kind.BRIDGE, {"stp": False}))
    t.add(Node("tap0", Kind.TAP, {}))
    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    t.add(Node("vm1", Kind.GUEST_NIC, {"model": "virtio-net-pci", "mac": "52:54:00:12:34:01"}))
    t.add(Node("vm2", Kind.GUEST_NIC, {"model": "e1000", "mac": "52:54:00:12:34:02", "ipv4": "10.0.0.12/24"}))
    t.add(Node("sock0", Kind.SOCKET, {"transport": "stream", "mode": "listen", "address": "sock0.sock"}))
    t.links += [("eth0", "br0"), ("br0", "tap0"), ("tap0", "hub0"), ("hub0", "vm1"), ("hub0", "vm2")]
    return t


def state(t: Topology) -> State:
    """Everything a save depends on, order included (== on dicts ignores order)."""
    nodes = tuple((key, n.id, n.kind, tuple((k, v, type(v)) for k, v in n.attrs.items())) for key, n in t.nodes.items())
    return (t.name, t.description, nodes, tuple(t.links))


@pytest.fixture
def editor() -> Editor:
    return Editor(seed())


def refused(editor: Editor, action: Callable[[], Any], message: str) -> EditError:
    """action must raise EditError with exactly message, and change nothing."""
    before = state(editor.topology)
    undo_before = editor.can_undo
    with pytest.raises(EditError) as info:
        action()
    assert str(info.value) == message
    assert state(editor.topology) == before
    assert editor.can_undo == undo_before
    assert not editor.changed
    return info.value


# -- defaults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "first"),
    [
        (Kind.HOST_NIC, "eth0"),
        (Kind.BRIDGE, "br0"),
        (Kind.TAP, "tap0"),
        (Kind.HUB, "hub0"),
        (Kind.GUEST_NIC, "vm1"),
        (Kind.SOCKET, "sock0"),
    ],
)
def test_next_id_on_an_empty_topology(kind, first):
    assert next_id(Topology(), kind) == first


def test_next_id_takes_the_first_unused_number():
    t = seed()
    assert next_id(t, Kind.TAP) == "tap1"
    assert next_id(t, Kind.GUEST_NIC) == "vm3"
    t.add(Node("tap2", Kind.TAP))
    assert next_id(t, Kind.TAP) == "tap1"  # fills the gap
    t.add(Node("tap1", Kind.HUB))  # any kind holds the name
    assert next_id(t, Kind.TAP) == "tap3"


def test_next_mac_skips_used_ones_in_any_case():
    t = Topology()
    assert next_mac(t) == "52:54:00:12:34:01"
    t.add(Node("a", Kind.GUEST_NIC, {"mac": "52:54:00:12:34:01"}))
    t.add(Node("b", Kind.HOST_NIC, {"mac": "52:54:00:12:34:0A"}))  # upper case is the same MAC
    t.add(Node("c", Kind.GUEST_NIC, {"mac": "52:54:00:12:34:02"}))
    for mac in ("52:54:00:12:34:03", "52:54:00:12:34:04", "52:54:00:12:34:05"):
        t.add(Node(mac, Kind.GUEST_NIC, {"mac": mac}))
    for n in range(6, 10):
        t.add(Node(f"x{n}", Kind.GUEST_NIC, {"mac": f"52:54:00:12:34:0{n}"}))
    assert next_mac(t) == "52:54:00:12:34:0b"
    assert values.mac_problem(next_mac(t)) is None


def test_next_mac_wraps_round_past_zero(monkeypatch):
    monkeypatch.setattr(edit, "_MAC_START", 0xFFFFFF)
    t = Topology(nodes={"a": Node("a", Kind.GUEST_NIC, {"mac": "52:54:00:ff:ff:ff"})})
    assert next_mac(t) == "52:54:00:00:00:01"


def test_next_vlan_is_the_lowest_free_one_of_hubs():
    t = Topology()
    assert next_vlan(t) == 0
    for i, vlan in enumerate([0, 1, 3, True]):  # true is no VLAN number
        t.add(Node(f"hub{i}", Kind.HUB, {"vlan": vlan}))
    t.add(Node("br0", Kind.BRIDGE, {"vlan": 2}))  # only hubs count
    assert next_vlan(t) == 2


def test_next_vlan_when_all_are_taken():
    t = Topology(nodes={f"h{v}": Node(f"h{v}", Kind.HUB, {"vlan": v}) for v in range(4096)})
    with pytest.raises(EditError, match="every VLAN from 0 to 4095 already has a hub"):
        next_vlan(t)


def test_default_attrs():
    t = seed()
    assert default_attrs(t, Kind.HUB) == {"vlan": 1}
    assert default_attrs(t, Kind.GUEST_NIC) == {"model": "virtio-net-pci", "mac": "52:54:00:12:34:03"}
    assert default_attrs(t, Kind.BRIDGE) == {"stp": False}
    assert default_attrs(t, Kind.HOST_NIC) == {}
    assert default_attrs(t, Kind.TAP) == {}
    socket = {"transport": "stream", "family": "unix", "mode": "listen"}
    assert default_attrs(t, Kind.SOCKET) == {**socket, "address": "sock1.sock"}
    assert default_attrs(t, Kind.SOCKET, "qemu-a") == {**socket, "address": "qemu-a.sock"}


@pytest.mark.parametrize("kind", list(Kind))
def test_default_attrs_are_valid(kind):
    t = seed()
    node_id = next_id(t, kind)
    attrs = default_attrs(t, kind, node_id)
    for field in FIELDS[kind]:
        assert field.name in attrs or not field.required
        if field.name in attrs:
            assert field.problem(attrs[field.name]) is None


# -- add_node -------------------------------------------------------------------


def test_add_node_with_defaults(editor):
    node = editor.add_node(Kind.GUEST_NIC)
    assert (node.id, node.kind) == ("vm3", Kind.GUEST_NIC)
    assert node.attrs == {"model": "virtio-net-pci", "mac": "52:54:00:12:34:03"}
    assert list(editor.topology.nodes)[-1] == "vm3"
    assert editor.topology.nodes["vm3"] is node
    assert editor.changed and editor.can_undo


def test_add_node_with_id_and_attrs(editor):
    node = editor.add_node(Kind.HUB, "lan", {"vlan": 7})
    assert editor.topology.nodes["lan"] == Node("lan", Kind.HUB, {"vlan": 7})
    assert node.attrs == {"vlan": 7}
    editor.add_node(Kind.GUEST_NIC, "g", {"mac": "52:54:00:00:00:99", "ipv4": None})  # None: not set
    assert editor.topology.nodes["g"].attrs == {"mac": "52:54:00:00:00:99"}


def test_add_node_takes_a_kind_by_name(editor):
    assert editor.add_node("tap").kind is Kind.TAP  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "node_id", "attrs", "message"),
    [
        (Kind.TAP, "tap0", None, "a node named tap0 already exists"),
        (Kind.TAP, "a/b", None, "node id 'a/b' contains '/', which Linux interface names cannot hold"),
        (Kind.TAP, "lo", None, "node id 'lo' is reserved: every network namespace already has 'lo'"),
        (Kind.TAP, "", None, "node id '' is empty"),
        (Kind.HUB, "h", {"vlan": 5000}, "vlan must be from 0 to 4095, not 5000"),
        (Kind.HUB, "h", {"vlan": True}, "vlan must be an integer, not true"),
        (Kind.HUB, "h", {"vlan": 0}, "vlan 0 is already hub hub0"),
        (Kind.HUB, "h", {}, "vlan is required (QEMU hub id: the VLAN number)"),
        (Kind.GUEST_NIC, "g", {"mac": "52:54:00:12:34:01"}, "mac 52:54:00:12:34:01 is already used by vm1"),
        (Kind.GUEST_NIC, "g", {"mac": "52:54:00:12:34:0"}, "mac is not a MAC address of the form 52:54:00:12:34:56"),
        (Kind.TAP, "t", {"mac": "52:54:00:00:00:09"}, "mac is not an attribute of a tap; a tap has host"),
        ("router", "r", None, "unknown kind 'router'; kinds are host_nic, bridge, tap, hub, guest_nic, socket, guest"),
    ],
)
def test_add_node_refused(editor, kind, node_id, attrs, message):
    refused(editor, lambda: editor.add_node(kind, node_id, attrs), message)


def test_mac_in_use_is_found_in_any_case(editor):
    editor.topology.nodes["vm2"].attrs["mac"] = "52:54:00:AB:CD:EF"
    refused(
        editor,
        lambda: editor.add_node(Kind.GUEST_NIC, "g", {"mac": "52:54:00:ab:cd:ef"}),
        "mac 52:54:00:ab:cd:ef is already used by vm2",
    )


# -- set_attr / del_attr ----------------------------------------------------------


def test_set_attr(editor):
    editor.set_attr("hub0", "vlan", 12)
    editor.set_attr("vm1", "ipv4", "10.0.0.11/24")
    editor.set_attr("br0", "stp", True)
    t = editor.topology
    assert t.nodes["hub0"].attrs == {"vlan": 12}
    assert t.nodes["vm1"].attrs["ipv4"] == "10.0.0.11/24"
    assert t.nodes["br0"].attrs["stp"] is True
    assert list(t.nodes["vm1"].attrs) == ["model", "mac", "ipv4"]  # a new key goes last


def test_set_attr_to_the_same_value_is_no_edit(editor):
    editor.set_attr("hub0", "vlan", 0)  # its own VLAN is no clash
    editor.set_attr("vm1", "mac", "52:54:00:12:34:01")
    assert not editor.can_undo and not editor.changed


def test_set_attr_from_1_to_true_is_an_edit():
    t = Topology(nodes={"br0": Node("br0", Kind.BRIDGE, {"stp": False})})
    editor = Editor(t)
    editor.set_attr("br0", "stp", True)
    editor.set_attr("br0", "stp", True)
    assert len(editor._undo) == 1


@pytest.mark.parametrize(
    ("node", "name", "value", "message"),
    [
        ("hub0", "vlan", 5000, "vlan must be from 0 to 4095, not 5000"),
        ("hub0", "vlan", -1, "vlan must be from 0 to 4095, not -1"),
        ("hub0", "vlan", "1", "vlan must be an integer, not '1'"),
        ("br0", "stp", 1, "stp must be true or false, not 1"),
        ("vm1", "mac", "01:00:5e:00:00:01", "mac is a multicast address; a NIC needs a unicast MAC (even first octet)"),
        ("vm1", "mac", "52:54:00:12:34:02", "mac 52:54:00:12:34:02 is already used by vm2"),
        ("vm1", "ipv4", "10.0.0.0/24", "ipv4 is the network address of 10.0.0.0/24"),
        ("sock0", "transport", "tcp", "transport must be one of stream, dgram, not 'tcp'"),
        (
            "vm1",
            "kind",
            "hub",
            "kind is not an attribute of a guest NIC; a guest NIC has model, mac, guest, ipv4, gateway, ipv6, "
            "gateway6, qemu, dhcp_server, host",
        ),
        ("nope", "vlan", 1, "there is no node 'nope'"),
    ],
)
def test_set_attr_refused(editor, node, name, value, message):
    refused(editor, lambda: editor.set_attr(node, name, value), message)


def test_host_names_a_host_of_the_file(editor):
    refused(
        editor,
        lambda: editor.set_attr("tap0", "host", "a"),
        "host a is not a host, and the file has none: add it under hosts: in the file first",
    )
    editor.topology.hosts = {"a": {"ssh": "root@192.0.2.1"}, "b": {"address": "192.0.2.2"}}
    refused(editor, lambda: editor.set_attr("tap0", "host", "c"), "host c is not a host; hosts are a, b")
    refused(
        editor,
        lambda: editor.set_attr("hub0", "host", "a"),
        "host is not an attribute of a hub; a hub has vlan, forwarding, vni",
    )
    editor.set_attr("tap0", "host", "b")  # a tap has one attribute: host
    assert editor.topology.nodes["tap0"].attrs == {"host": "b"}
    # Its bridge and host NIC are on b with it: nothing for the validator to say of it.
    assert [d.message for d in validate(editor.topology) if d.is_error] == []


def test_set_attr_refuses_a_vlan_of_another_hub(editor):
    editor.add_node(Kind.HUB, "hub1", {"vlan": 1})
    editor.mark_saved()
    error = refused(editor, lambda: editor.set_attr("hub1", "vlan", 0), "vlan 0 is already hub hub0")
    assert (error.node, error.field, error.problem) == ("hub1", "vlan", "0 is already hub hub0")


def test_refusal_says_where(editor):
    error = refused(editor, lambda: editor.set_attr("hub0", "vlan", 5000), "vlan must be from 0 to 4095, not 5000")
    assert (error.node, error.field, error.problem) == ("hub0", "vlan", "must be from 0 to 4095, not 5000")


def test_unknown_kind_takes_no_attributes(editor):
    editor.topology.add(Node("odd", "router", {"x": 1}))
    message = "odd has the unknown kind 'router'; fix its kind in a text editor first"
    refused(editor, lambda: editor.set_attr("odd", "x", 2), message)
    refused(editor, lambda: editor.del_attr("odd", "x"), message)
    refused(editor, lambda: editor.duplicate("odd"), message)


def test_del_attr(editor):
    editor.del_attr("vm2", "ipv4")
    editor.del_attr("vm2", "model")  # falls back to its default
    assert editor.topology.nodes["vm2"].attrs == {"mac": "52:54:00:12:34:02"}
    editor.set_attr("vm1", "model", None)  # None removes, as the inspector sends it
    assert "model" not in editor.topology.nodes["vm1"].attrs


def test_del_attr_removes_an_unknown_key(editor):
    editor.topology.nodes["tap0"].attrs["colour"] = "red"  # as a hand-written file may have it
    editor.del_attr("tap0", "colour")
    assert editor.topology.nodes["tap0"].attrs == {}


@pytest.mark.parametrize(
    ("node", "name", "message"),
    [
        ("hub0", "vlan", "vlan is required (QEMU hub id: the VLAN number); a hub cannot do without it"),
        ("vm1", "mac", "mac is required (MAC address, e.g. 52:54:00:12:34:56); a guest NIC cannot do without it"),
        ("vm1", "ipv4", "vm1 has no ipv4 to remove"),
        ("br0", "colour", "br0 has no colour to remove"),
        ("nope", "ipv4", "there is no node 'nope'"),
    ],
)
def test_del_attr_refused(editor, node, name, message):
    refused(editor, lambda: editor.del_attr(node, name), message)


# -- rename ---------------------------------------------------------------------


def test_rename_keeps_place_and_links(editor):
    editor.rename("hub0", "lan0")
    t = editor.topology
    assert list(t.nodes) == ["eth0", "br0", "tap0", "lan0", "vm1", "vm2", "sock0"]
    assert t.nodes["lan0"].id == "lan0"
    assert t.links == [("eth0", "br0"), ("br0", "tap0"), ("tap0", "lan0"), ("lan0", "vm1"), ("lan0", "vm2")]


def test_rename_to_itself_is_no_edit(editor):
    editor.rename("hub0", "hub0")
    assert not editor.can_undo


@pytest.mark.parametrize(
    ("node", "new", "message"),
    [
        ("hub0", "vm1", "a node named vm1 already exists"),
        (
            "hub0",
            "a-name-far-too-long",
            "node id 'a-name-far-too-long' is 19 characters long; Linux interface names hold at most 15",
        ),
        ("hub0", "my hub", "node id 'my hub' contains white space, which Linux interface names cannot hold"),
        ("nope", "x", "there is no node 'nope'"),
    ],
)
def test_rename_refused(editor, node, new, message):
    refused(editor, lambda: editor.rename(node, new), message)


# -- connect / disconnect ---------------------------------------------------------


def test_connect_appends(editor):
    assert editor.connect("sock0", "hub0") == ("sock0", "hub0")
    assert editor.topology.links[-1] == ("sock0", "hub0")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("hub0", "vm1"),  # already linked
        ("vm1", "hub0"),  # already linked, the other way round
        ("vm1", "br0"),  # a guest NIC cannot connect to a bridge
        ("vm1", "vm1"),
        ("vm1", "sock0"),  # vm1 already has its one hub
        ("tap0", "eth0"),
        ("vm1", "nope"),
    ],
)
def test_connect_refused_with_link_problem(editor, a, b):
    message = link_problem(editor.topology, a, b)
    assert message
    refused(editor, lambda: editor.connect(a, b), message)


def test_disconnect_either_way_round(editor):
    assert editor.disconnect("vm1", "hub0") == ("hub0", "vm1")
    assert editor.disconnect("eth0", "br0") == ("eth0", "br0")
    assert editor.topology.links == [("br0", "tap0"), ("tap0", "hub0"), ("hub0", "vm2")]


@pytest.mark.parametrize(("a", "b"), [("vm1", "vm2"), ("eth0", "nope"), ("sock0", "sock0")])
def test_disconnect_refused(editor, a, b):
    refused(editor, lambda: editor.disconnect(a, b), f"{a} and {b} are not linked")


# -- delete_node / duplicate -------------------------------------------------------


def test_delete_node_takes_its_links(editor):
    assert editor.delete_node("hub0") == [("tap0", "hub0"), ("hub0", "vm1"), ("hub0", "vm2")]
    assert "hub0" not in editor.topology.nodes
    assert editor.topology.links == [("eth0", "br0"), ("br0", "tap0")]
    assert editor.delete_node("sock0") == []


def test_delete_node_refused(editor):
    refused(editor, lambda: editor.delete_node("nope"), "there is no node 'nope'")


def test_duplicate_guest_nic(editor):
    copy = editor.duplicate("vm2")
    assert copy == Node("vm3", Kind.GUEST_NIC, {"model": "e1000", "mac": "52:54:00:12:34:03", "ipv4": "10.0.0.13/24"})
    assert editor.topology.nodes["vm3"] is copy
    assert editor.topology.neighbours("vm3") == []
    assert editor.topology.nodes["vm2"].attrs["mac"] == "52:54:00:12:34:02"


def test_duplicate_hub_socket_and_host_nic(editor):
    assert editor.duplicate("hub0") == Node("hub1", Kind.HUB, {"vlan": 1})
    assert editor.duplicate("hub0") == Node("hub2", Kind.HUB, {"vlan": 2})
    assert editor.duplicate("sock0").attrs["address"] == "sock1.sock"
    editor.set_attr("eth0", "mac", "52:54:00:00:00:01")
    assert editor.duplicate("eth0") == Node("eth1", Kind.HOST_NIC, {"ipv4": "10.0.0.2/24", "mac": "52:54:00:12:34:03"})


def test_duplicate_gives_the_copy_a_free_address_so_it_can_join_the_hub(editor):
    editor.set_attr("vm2", "ipv6", "fd00::12/64")
    editor.set_attr("vm1", "ipv4", "10.0.0.13/24")  # the next one is taken: skipped
    copy = editor.duplicate("vm2")
    assert (copy.attrs["ipv4"], copy.attrs["ipv6"]) == ("10.0.0.14/24", "fd00::13/64")
    editor.connect(copy.id, "hub0")
    assert [d.message for d in validate(editor.topology) if d.is_error] == []
    again = editor.duplicate(copy.id)
    assert (again.attrs["ipv4"], again.attrs["ipv6"]) == ("10.0.0.15/24", "fd00::14/64")


@pytest.mark.parametrize(
    ("taken", "original", "expected"),
    [
        ((), "10.0.0.254/24", "10.0.0.1/24"),  # wraps round, past the broadcast and the network address
        (("10.0.0.1/30",), "10.0.0.2/30", None),  # a /30 has two hosts, both taken: no address
        ((), "10.0.0.1/30", "10.0.0.2/30"),
        ((), "10.0.0.0/31", "10.0.0.1/31"),  # a /31 has no network or broadcast address
        ((), "10.0.0.9/32", None),
        ((), "fd00::ffff/112", "fd00::1/112"),  # not the subnet-router anycast fd00::
        (("fd00::1/127",), "fd00::/127", None),
    ],
)
def test_duplicate_address_in_the_subnet(taken, original, expected):
    t = Topology(name="t")
    version = 6 if ":" in original else 4
    for i, address in enumerate(taken):
        t.add(Node(f"vm{i + 10}", Kind.GUEST_NIC, {"mac": f"52:54:00:00:00:{i + 10}", f"ipv{version}": address}))
    t.add(Node("vm1", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:01", f"ipv{version}": original}))
    copy = Editor(t).duplicate("vm1")
    assert copy.attrs.get(f"ipv{version}") == expected
    assert t.nodes["vm1"].attrs[f"ipv{version}"] == original


def test_duplicate_copies_a_wrong_address_as_it_is(editor):
    editor.topology.nodes["vm2"].attrs["ipv4"] = "10.0.0.300/24"
    assert editor.duplicate("vm2").attrs["ipv4"] == "10.0.0.300/24"


def test_duplicate_gives_up_before_a_multicast_block(editor):
    # In 192.0.0.0/2 the 2**28 addresses after 223.255.255.255 are multicast: no search through all of them.
    editor.set_attr("vm2", "ipv4", "223.255.255.255/2")
    assert "ipv4" not in editor.duplicate("vm2").attrs


def test_duplicate_keeps_a_socket_path_of_its_own_choosing(editor):
    editor.set_attr("sock0", "address", "/run/qemu.sock")
    assert editor.duplicate("sock0").attrs["address"] == "/run/qemu.sock"


def test_duplicate_refused(editor):
    refused(editor, lambda: editor.duplicate("nope"), "there is no node 'nope'")


# -- undo / redo ------------------------------------------------------------------

EDITS: dict[str, Callable[[Editor], Any]] = {
    "add_node": lambda e: e.add_node(Kind.GUEST_NIC),
    "add_node with attrs": lambda e: e.add_node(Kind.HUB, "lan", {"vlan": 9}),
    "set_attr new": lambda e: e.set_attr("vm1", "ipv6", "fd00::1/64"),
    "set_attr changed": lambda e: e.set_attr("vm2", "model", "rtl8139"),
    "del_attr": lambda e: e.del_attr("vm2", "ipv4"),
    "del_attr first key": lambda e: e.del_attr("vm2", "model"),
    "rename": lambda e: e.rename("hub0", "lan0"),
    "connect": lambda e: e.connect("sock0", "hub0"),
    "disconnect": lambda e: e.disconnect("vm1", "hub0"),
    "delete_node": lambda e: e.delete_node("hub0"),
    "delete_node first": lambda e: e.delete_node("eth0"),
    "duplicate": lambda e: e.duplicate("vm1"),
}


@pytest.mark.parametrize("apply", EDITS.values(), ids=EDITS.keys())
def test_undo_and_redo_restore_exactly(editor, apply):
    t = editor.topology
    nodes, links = t.nodes, t.links
    before, before_copy = state(t), seed()
    apply(editor)
    after = state(t)
    assert after != before
    assert editor.undo()
    assert state(t) == before and t == before_copy
    assert not editor.changed and not editor.can_undo and editor.can_redo
    assert editor.redo()
    assert state(t) == after
    assert editor.changed and editor.can_undo and not editor.can_redo
    assert editor.undo() and state(t) == before
    # in place: a Document holds these very objects
    assert editor.topology is t and t.nodes is nodes and t.links is links


def test_undo_and_redo_on_an_empty_history(editor):
    assert not editor.undo() and not editor.redo()
    assert not editor.can_undo and not editor.can_redo
    assert editor.undo_label is None and editor.redo_label is None


def test_a_new_edit_clears_redo(editor):
    editor.add_node(Kind.TAP)
    editor.add_node(Kind.TAP)
    editor.undo()
    assert editor.can_redo
    editor.set_attr("hub0", "vlan", 3)
    assert not editor.can_redo and not editor.redo()
    assert "tap2" not in editor.topology.nodes and "tap1" in editor.topology.nodes


def test_a_refused_edit_keeps_redo(editor):
    editor.add_node(Kind.TAP)
    editor.undo()
    with pytest.raises(EditError):
        editor.set_attr("hub0", "vlan", 5000)
    assert editor.can_redo


def test_labels_name_the_edit(editor):
    editor.rename("tap0", "tap9")
    assert editor.undo_label == "rename tap0 to tap9"
    editor.undo()
    assert editor.redo_label == "rename tap0 to tap9" and editor.undo_label is None


def test_undo_stops_after_max_steps(editor):
    for i in range(MAX_UNDO + 5):
        editor.set_attr("hub0", "vlan", i + 1)
    undone = 0
    while editor.undo():
        undone += 1
    assert undone == MAX_UNDO
    assert editor.topology.nodes["hub0"].attrs["vlan"] == 5
    assert editor.changed  # the saved state is out of reach now
    while editor.redo():
        pass
    assert editor.topology.nodes["hub0"].attrs["vlan"] == MAX_UNDO + 5


def test_changed_across_save_undo_and_redo(editor):
    assert not editor.changed
    editor.add_node(Kind.TAP)
    assert editor.changed
    editor.mark_saved()
    assert not editor.changed
    editor.set_attr("hub0", "vlan", 3)
    assert editor.changed
    editor.undo()
    assert not editor.changed  # back at the saved state
    editor.undo()
    assert editor.changed  # before the saved state
    editor.redo()
    assert not editor.changed
    editor.redo()
    assert editor.changed
    editor.undo()
    editor.undo()
    editor.add_node(Kind.BRIDGE)  # a new branch: the saved state is gone for good
    assert editor.changed
    editor.undo()
    assert editor.changed  # nor is this the saved state: that one had tap1


def test_changed_after_undo_past_the_loaded_state(editor):
    editor.set_attr("hub0", "vlan", 3)
    editor.undo()
    assert not editor.changed
    editor.set_attr("hub0", "vlan", 4)
    editor.mark_saved()
    editor.undo()
    assert editor.changed


# -- random edits -------------------------------------------------------------------

NAMES = sorted({f.name for fields in FIELDS.values() for f in fields} | {"kind", "colour"})
VALUES = [0, 1, 7, 4095, 5000, True, False, None, "", "x", "52:54:00:12:34:01", "52:54:00:aa:bb:cc",
          "01:00:00:00:00:00", "10.0.0.5/24", "fd00::5/64", "e1000", "virtio-net-pci", "stream", "dgram",
          "unix", "inet", "listen", "connect", "x.sock", "127.0.0.1:5555"]  # fmt: skip
MAC = "52:54:00:00:00:%02x"
NEW_IDS = ["x", "vm9", "lo", "a/b", "tap1", "hub0", "eth0"]


def likely_value(spec: Field) -> st.SearchStrategy[Any]:
    """Values that mostly suit the field, some of them taken already."""
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.type is bool:
        return st.booleans()
    if spec.type is int:
        return st.integers(0, 20)
    if spec.name == "mac":
        return st.integers(1, 40).map(lambda n: MAC % n)
    if spec.name == "ipv4":
        return st.integers(1, 20).map(lambda n: f"10.0.0.{n}/24")
    return st.sampled_from(["x.sock", "fd00::5/64", "e1000", "rtl8139"])


@st.composite
def operation(draw: st.DrawFn, topology: Topology) -> tuple[str, tuple[Any, ...]]:
    ids = [*topology.nodes, "ghost"]
    node = st.sampled_from(ids)
    op = draw(st.sampled_from(["add", "set", "del", "rename", "connect", "disconnect", "delete", "duplicate"]))
    if op == "add":
        attrs = draw(st.none() | st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), max_size=3))
        return op, (draw(st.sampled_from(list(Kind))), draw(st.none() | st.sampled_from(NEW_IDS)), attrs)
    if op in ("set", "del"):
        node_id = draw(node)
        target = topology.nodes.get(node_id)
        # mostly names the node has or may have, so that some of these edits go through
        own = [f.name for f in FIELDS.get(target.kind, ())] + list(target.attrs) if target else []
        name = draw(st.sampled_from(own) | st.sampled_from(NAMES) if own else st.sampled_from(NAMES))
        if op == "del":
            return op, (node_id, name)
        spec = FIELD_BY_NAME.get(target.kind, {}).get(name) if target else None
        value = draw(likely_value(spec) | st.sampled_from(VALUES) if spec else st.sampled_from(VALUES))
        return op, (node_id, name, value)
    if op == "rename":
        return op, (draw(node), draw(st.sampled_from(NEW_IDS) | node))
    if op in ("connect", "disconnect"):
        return op, (draw(node), draw(node))
    return op, (draw(node),)


def run(editor: Editor, op: str, args: tuple[Any, ...]) -> None:
    method = {
        "add": editor.add_node,
        "set": editor.set_attr,
        "del": editor.del_attr,
        "rename": editor.rename,
        "connect": editor.connect,
        "disconnect": editor.disconnect,
        "delete": editor.delete_node,
        "duplicate": editor.duplicate,
    }[op]
    method(*args)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_undo_to_the_original(data):
    t = seed()
    t.add(Node("odd", "router", {"x": 1}))  # a kind this program does not know
    editor = Editor(t)
    original = state(t)
    states = [original]
    for _ in range(data.draw(st.integers(0, 30), label="length")):
        op, args = data.draw(operation(t), label="operation")
        before = state(t)
        undo_before = len(editor._undo)
        try:
            run(editor, op, args)
        except EditError:
            assert state(t) == before, "a refused edit changed the topology"
            assert len(editor._undo) == undo_before
            continue
        if len(editor._undo) > undo_before:
            states.append(state(t))
        else:
            assert state(t) == before, "an edit without an undo step changed the topology"
    final = state(t)
    for expected in reversed(states[:-1]):
        assert editor.undo()
        assert state(t) == expected
    assert not editor.undo()
    assert state(t) == original and not editor.changed
    while editor.redo():
        pass
    assert state(t) == final
    assert editor.changed == (len(states) > 1)


# -- a loaded file ----------------------------------------------------------------


def test_edits_of_a_loaded_file_save_and_reload_equal():
    doc = load_file(SEED)
    editor = Editor(doc.topology)
    editor.set_attr("hub0", "vlan", 5)
    editor.set_attr("vm2", "model", "rtl8139")
    editor.del_attr("vm1", "ipv4")
    vm = editor.add_node(Kind.GUEST_NIC)
    editor.connect(vm.id, "hub0")
    copy = editor.duplicate("vm2")
    editor.add_node(Kind.SOCKET)
    editor.connect("sock0", "hub0")
    editor.disconnect("hub0", "vm2")
    editor.set_attr("br0", "stp", True)
    text = doc.dumps()
    again = load_text(text)
    assert not again.problems
    assert again.topology == doc.topology
    assert list(again.topology.nodes) == list(doc.topology.nodes)
    assert again.topology.links == doc.topology.links
    assert copy.id in again.topology.nodes
    for comment in (
        "# The path a frame takes from the host's physical NIC to a guest, QEMU-style:",
        "# the uplink; the outside host answers at 10.0.0.1",
        "# a Linux bridge, as on a hypervisor host",
        "# kernel side on br0; QEMU (here: the worker) reads the fd",
        "# QEMU's -netdev hubport,hubid=0: floods every frame to the other ports",
    ):
        assert comment in text


def test_undoing_every_edit_of_a_loaded_file_saves_it_as_it_was():
    original = SEED.read_text()
    doc = load_file(SEED)
    editor = Editor(doc.topology)
    editor.set_attr("hub0", "vlan", 5)
    editor.set_attr("vm2", "model", "rtl8139")
    editor.del_attr("vm1", "ipv4")
    editor.disconnect("hub0", "vm2")
    assert doc.dumps() != original
    while editor.undo():
        pass
    assert not editor.changed
    assert doc.dumps() == original


def test_deleting_a_node_of_a_loaded_file_keeps_the_other_comments():
    doc = load_file(SEED)
    Editor(doc.topology).delete_node("tap0")
    text = doc.dumps()
    assert load_text(text).topology == doc.topology
    assert "# QEMU's -netdev hubport,hubid=0" in text and "# a Linux bridge" in text


def test_rename_in_a_loaded_file_keeps_place_and_comment():
    doc = load_file(SEED)
    Editor(doc.topology).rename("tap0", "tap9")
    text = doc.dumps()
    again = load_text(text).topology
    assert again == doc.topology
    assert list(again.nodes) == list(doc.topology.nodes)
    assert "tap9:                     # kernel side on br0" in text


def test_a_deleted_node_lends_its_comments_to_no_newcomer():
    doc = load_text(
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n  vm1:  # Alice's build box\n"
        "    kind: guest_nic\n    mac: 52:54:00:00:00:01  # from the DHCP reservation\n"
    )
    editor = Editor(doc.topology)
    editor.delete_node("vm1")
    editor.add_node(Kind.GUEST_NIC, "vm2", {"mac": "52:54:00:00:00:02"})
    text = doc.dumps()
    assert "Alice" not in text and "DHCP" not in text and "vm2:" in text


def test_undo_keeps_value_types():
    """1 and true, a quoted and a plain string: equal in Python, not in the saved file."""
    doc = load_text(
        'version: 1\nname: x\nnodes:\n  br0: {kind: bridge, stp: 1, ipv4: "10.0.0.1/24"}\n  tap0: {kind: tap}\n'
    )
    editor = Editor(doc.topology)
    attrs = doc.topology.nodes["br0"].attrs
    quoted = type(attrs["ipv4"])
    assert quoted is not str
    editor.set_attr("br0", "stp", True)
    editor.set_attr("br0", "ipv4", "10.0.0.1/24")  # the same text: no edit, and the quotes stay
    assert type(attrs["ipv4"]) is quoted
    editor.set_attr("br0", "ipv4", "10.0.0.2/24")
    editor.rename("tap0", "tap1")
    while editor.undo():
        pass
    attrs = doc.topology.nodes["br0"].attrs
    assert type(attrs["stp"]) is int and type(attrs["ipv4"]) is quoted
    assert '"10.0.0.1/24"' in doc.dumps()
    while editor.redo():
        pass
    attrs = doc.topology.nodes["br0"].attrs
    assert attrs["stp"] is True and attrs["ipv4"] == "10.0.0.2/24" and "tap1" in doc.topology.nodes


def test_a_links_impairments_follow_rename_and_go_with_the_link_and_undo_brings_them_back(editor):
    t = editor.topology
    t.impair.update({("hub0", "vm1"): "delay=5ms", ("vm1", "hub0"): "loss=1%", ("hub0", "vm2"): "rate=1mbit"})
    editor.rename("vm1", "web")
    assert t.impair == {("hub0", "web"): "delay=5ms", ("web", "hub0"): "loss=1%", ("hub0", "vm2"): "rate=1mbit"}
    editor.disconnect("web", "hub0")
    assert t.impair == {("hub0", "vm2"): "rate=1mbit"}
    editor.delete_node("vm2")
    assert t.impair == {}
    editor.undo()
    editor.undo()
    assert t.impair == {("hub0", "web"): "delay=5ms", ("web", "hub0"): "loss=1%", ("hub0", "vm2"): "rate=1mbit"}
    editor.undo()
    assert ("hub0", "vm1") in t.impair and ("hub0", "web") not in t.impair


def test_set_impair_sets_one_direction_in_the_form_it_reads_back_and_undo_takes_it_back(editor):
    t = editor.topology
    assert editor.set_impair("hub0", "vm1", " loss=1%  delay=50ms ") == "delay=50ms loss=1%"
    assert t.impair == {("hub0", "vm1"): "delay=50ms loss=1%"}
    assert editor.changed and editor.undo_label == "impair hub0 -> vm1"
    editor.set_impair("vm1", "hub0", "rate=10000kbit")
    assert t.impair[("vm1", "hub0")] == "rate=10mbit"
    editor.undo()
    assert t.impair == {("hub0", "vm1"): "delay=50ms loss=1%"}
    editor.undo()
    assert t.impair == {} and not editor.changed


@pytest.mark.parametrize("off", ["none", "", "  ", None, "loss=0%"])
def test_set_impair_to_none_lifts_it_whatever_says_none(editor, off):
    """mininet #881: "loss 0" left the old loss in place; here it removes the impairment."""
    editor.set_impair("hub0", "vm1", "delay=50ms loss=1%")
    assert editor.set_impair("hub0", "vm1", off) is None
    assert ("hub0", "vm1") not in editor.topology.impair
    assert editor.undo_label == "lift the impairment hub0 -> vm1"
    assert editor.set_impair("hub0", "vm1", "none") is None  # already none: no edit
    assert editor.undo_label == "lift the impairment hub0 -> vm1"


def test_set_impair_refuses_a_bad_form_an_unlinked_pair_and_a_kernel_only_link(editor):
    error = refused(
        editor,
        lambda: editor.set_impair("hub0", "vm1", "delay=fast"),
        "impair towards vm1: delay=fast: expected a time such as 50ms, 1.5s or 500us",
    )
    assert (error.node, error.field) == ("hub0", "impair")
    assert error.problem == "delay=fast: expected a time such as 50ms, 1.5s or 500us"
    refused(editor, lambda: editor.set_impair("vm1", "vm2", "loss=1%"), "vm1 and vm2 are not linked")
    refused(
        editor,
        lambda: editor.set_impair("eth0", "br0", "loss=1%"),
        "impair towards br0 needs the lab's worker on the link: between a bridge and a host NIC frames never "
        "leave the kernel",
    )
    assert editor.topology.impair == {}


def test_an_impairment_set_by_the_editor_is_saved_on_its_link():
    doc = load_file(SEED)
    editor = Editor(doc.topology)
    editor.set_impair("hub0", "vm1", "delay=50ms")
    editor.set_impair("vm1", "hub0", "delay=50ms")
    text = doc.dumps()
    assert load_text(text).topology.impair == {("hub0", "vm1"): "delay=50ms", ("vm1", "hub0"): "delay=50ms"}
    assert "{impair: delay=50ms}" in text
    editor.set_impair("vm1", "hub0", None)
    assert load_text(doc.dumps()).topology.impair == {("hub0", "vm1"): "delay=50ms"}
