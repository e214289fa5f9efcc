"""Load -> save -> load gives the same topology; a hand-written file keeps its
bytes, comments, key order and quoting through load, edit and save."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qnet_tui.model.kinds import FIELDS, Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.yamlio import load_file, load_text, new_document

SAMPLES = sorted((Path(__file__).parents[2] / "sample_topologies").glob("*.yaml"))

# Printable text, including what YAML must quote (': ', '#', quotes, leading
# spaces, 'yes', '1e3', '~').
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff\x85"),
    max_size=24,
) | st.sampled_from(["yes", "no", "~", "null", "1e3", "0x10", "12:30", "- x", "a: b", "#c", " lead", "trail ", "'q'"])
ids = st.from_regex(r"[a-z][a-z0-9_.-]{0,14}", fullmatch=True)


def value_for(field):
    if field.type is bool:
        return st.booleans()
    if field.type is int:
        return st.integers(-(2**40), 2**40)
    return text


@st.composite
def nodes(draw, node_id):
    kind = draw(st.sampled_from(list(Kind)))
    attrs = {}
    for field in FIELDS[kind]:
        if draw(st.booleans()):
            attrs[field.name] = draw(value_for(field))
    if draw(st.booleans()):  # an unknown key survives too
        attrs["x-note"] = draw(text)
    return Node(node_id, kind, attrs)


@st.composite
def topologies(draw):
    t = Topology(name=draw(text), description=draw(st.none() | text))
    for node_id in draw(st.lists(ids, max_size=12, unique=True)):
        t.add(draw(nodes(node_id)))
    names = list(t.nodes) or ["x"]
    t.links = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=12))
    return t


@given(topologies())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_new_topology_round_trips(t):
    saved = new_document(t).dumps()
    loaded = load_text(saved)
    assert loaded.problems == []
    assert loaded.topology == t
    assert loaded.dumps() == saved  # and saving again changes nothing


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_bytes_survive_load_save(path):
    assert load_file(path).dumps() == path.read_text()


HAND_WRITTEN = """\
# A hand-written lab, with every style a person might use.
---
version: 1
name: 'hand'        # quoted on purpose
description: "keeps its quotes"

nodes:
    # the uplink
    up0:
        kind: host_nic
        ipv4: 10.1.0.1/24   # the outside host
    br0: {kind: bridge, stp: true}    # flow style
    tap0:
        kind: tap
    # the hub of VLAN 7
    hub7:
        kind: hub
        vlan: 7
    vm1:
        mac: "52:54:00:00:00:01"    # key order differs from the samples
        kind: guest_nic
        ipv4: 10.1.0.11/24
    vm2:
        kind: guest_nic
        mac: 52:54:00:00:00:02
links:
    - [up0, br0]
    - [br0, tap0]     # kernel side
    - [tap0, hub7]
    # guests
    - [hub7, vm1]
    - [hub7, vm2]
# end of file
"""


@pytest.mark.parametrize("variant", ["lf", "crlf", "bom"])
def test_hand_written_bytes_survive_load_save(variant):
    src = HAND_WRITTEN
    if variant == "crlf":
        src = src.replace("\n", "\r\n")
    elif variant == "bom":
        src = "\ufeff" + src
    doc = load_text(src)
    assert doc.problems == []
    assert doc.dumps() == src


def test_edits_keep_comments_of_other_nodes():
    doc = load_text(HAND_WRITTEN)
    t = doc.topology
    t.nodes["vm2"].attrs["ipv4"] = "10.1.0.12/24"
    t.nodes["hub7"].attrs["vlan"] = 8
    t.add(Node("vm3", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:03"}))
    t.links.append(("hub7", "vm3"))
    out = doc.dumps()
    for line in HAND_WRITTEN.splitlines():
        if "#" in line and "VLAN 7" not in line:
            assert line in out, line
    assert "vlan: 8" in out and "ipv4: 10.1.0.12/24" in out
    assert "name: 'hand'" in out and 'mac: "52:54:00:00:00:01"' in out
    assert "    - [hub7, vm3]\n" in out  # new links take the file's style
    reloaded = load_text(out)
    assert reloaded.problems == [] and reloaded.topology == t


@pytest.mark.parametrize("victim", ["up0", "br0", "tap0", "hub7", "vm1", "vm2"])
def test_deleting_a_node_keeps_the_next_nodes_comment(victim):
    doc = load_text(HAND_WRITTEN)
    del doc.topology.nodes[victim]
    doc.topology.links = [link for link in doc.topology.links if victim not in link]
    out = doc.dumps()
    assert load_text(out).topology == doc.topology
    for comment in ["# A hand-written lab", "# quoted on purpose", "# the hub of VLAN 7", "# end of file"]:
        assert comment in out, (victim, comment, out)
    if victim != "up0":
        assert "# the outside host" in out


def test_unchanged_values_keep_their_style():
    doc = load_text("version: 1\nname: x\nnodes:\n  h: {kind: hub, vlan: 0x10}\n")
    assert doc.topology.nodes["h"].attrs["vlan"] == 16
    assert "vlan: 0x10" in doc.dumps()
    doc.topology.nodes["h"].attrs["vlan"] = 17
    assert "vlan: 17" in doc.dumps()


def test_bool_replaces_int_of_equal_value():
    doc = load_text("version: 1\nname: x\nnodes:\n  b: {kind: bridge, stp: 1}\n")
    doc.topology.nodes["b"].attrs["stp"] = True
    assert "stp: true" in doc.dumps()


def test_structurally_broken_file_is_not_editable():
    doc = load_text("version: 1\nname: x\nnodes:\n  a: {kind: tap}\n  a: {kind: hub}\n")
    assert not doc.editable
    with pytest.raises(Exception, match="structural errors"):
        doc.dumps()


IMPAIRED = """\
version: 1
name: imp
nodes:
  hub0: {kind: hub, vlan: 0}
  vm1: {kind: guest_nic, mac: "52:54:00:00:00:01"}
  vm2: {kind: guest_nic, mac: "52:54:00:00:00:02"}
links:
  - [hub0, vm1, {impair: "delay=50ms loss=1%"}]   # a slow one
  # towards vm2 only a little delay; back, some loss
  - [hub0, vm2, {impair: {vm2: delay=5ms, hub0: 'loss=2%'}}]
"""


def test_link_impairments_load_by_direction_and_keep_their_bytes():
    doc = load_text(IMPAIRED)
    assert [d for d in doc.diagnostics() if d.is_error] == []
    assert doc.topology.links == [("hub0", "vm1"), ("hub0", "vm2")]
    assert doc.topology.impair == {
        ("hub0", "vm1"): "delay=50ms loss=1%",
        ("vm1", "hub0"): "delay=50ms loss=1%",
        ("hub0", "vm2"): "delay=5ms",
        ("vm2", "hub0"): "loss=2%",
    }
    assert doc.dumps() == IMPAIRED


def test_changed_impairments_rewrite_only_their_link():
    doc = load_text(IMPAIRED)
    t = doc.topology
    t.impair[("vm2", "hub0")] = "loss=3%"
    t.links.append(("hub0", "vm3"))
    t.add(Node("vm3", Kind.GUEST_NIC))
    t.impair[("hub0", "vm3")] = "rate=1mbit"
    text = doc.dumps()
    assert '  - [hub0, vm1, {impair: "delay=50ms loss=1%"}]   # a slow one\n' in text
    assert "  # towards vm2 only a little delay; back, some loss\n" in text
    assert "  - [hub0, vm2, {impair: {vm2: delay=5ms, hub0: loss=3%}}]\n" in text
    assert "  - [hub0, vm3, {impair: {vm3: rate=1mbit}}]\n" in text
    again = load_text(text).topology
    assert again.impair == t.impair
    del t.impair[("hub0", "vm1")], t.impair[("vm1", "hub0")]
    assert re.search(r"\n  - \[hub0, vm1\] +# a slow one\n", doc.dumps())  # the comment stays in its column


HOSTED = """\
version: 1
name: hosted
# The machines of the lab, each reached over ssh.
hosts:
  a:                              # the rack in room 1
    ssh: root@192.0.2.1
  b:
    ssh: 'ssh://root@b.example:2222'   # quoted on purpose
    address: 192.0.2.2            # the underlay, not the management address
    vxlan_port: 4790
nodes:
  hub0: {kind: hub, vlan: 10, vni: 5010}
  vm1: {kind: guest_nic, mac: "52:54:00:00:00:01", host: a}   # a's
  vm2: {kind: guest_nic, mac: "52:54:00:00:00:02", host: b}
links:
  - [hub0, vm1]
  - [hub0, vm2]
"""


def test_hosts_section_keeps_its_comments_and_bytes():
    doc = load_text(HOSTED)
    assert [d for d in doc.diagnostics() if d.is_error] == []
    assert doc.topology.hosts == {
        "a": {"ssh": "root@192.0.2.1"},
        "b": {"ssh": "ssh://root@b.example:2222", "address": "192.0.2.2", "vxlan_port": 4790},
    }
    assert doc.dumps() == HOSTED


def test_an_edit_elsewhere_and_in_hosts_changes_only_what_differs():
    doc = load_text(HOSTED)
    t = doc.topology
    t.nodes["vm2"].attrs["host"] = "a"
    t.hosts["b"]["vxlan_port"] = 4791
    t.hosts["c"] = {"address": "192.0.2.3"}
    text = doc.dumps()
    assert text == (
        HOSTED.replace("vxlan_port: 4790", "vxlan_port: 4791")
        .replace("nodes:\n", "  c:\n    address: 192.0.2.3\nnodes:\n")
        .replace('"52:54:00:00:00:02", host: b}', '"52:54:00:00:00:02", host: a}')
    )
    assert load_text(text).topology == t


def test_hosts_come_and_go_with_the_topology():
    t = Topology(name="x", hosts={"a": {"ssh": "root@192.0.2.1"}})
    t.add(Node("t0", Kind.TAP, {"host": "a"}))
    saved = new_document(t).dumps()
    assert load_text(saved).topology == t
    doc = load_text(HOSTED)
    doc.topology.hosts = None
    text = doc.dumps()
    assert "hosts:" not in text and "192.0.2.2" not in text and "# the rack" not in text
    empty = "version: 1\nname: x\nhosts:   # none yet\nnodes: {}\nlinks: []\n"
    assert load_text(empty).dumps() == empty  # an empty section reads as none, and stays
