"""The canvas layout: columns by kind, no overlapping boxes, and no link
drawn through a box."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnet_tui.model.edit import Editor
from qnet_tui.model.kinds import Kind
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.canvas import paint_rows
from qnet_tui.ui.layout import BOX_H, BOX_W, COLUMN, COLUMN_TITLES, layout, link_indices
from tests.topogen import big_topology

SAMPLES = sorted((Path(__file__).parents[2] / "sample_topologies").glob("*.yaml"))


def check(t):
    lay = layout(t)
    boxes = list(lay.boxes.values())
    assert set(lay.boxes) == set(t.nodes)
    # Columns in the order a frame travels, only those some node stands in.
    used = sorted({COLUMN[node.kind] for node in t.nodes.values()})
    assert lay.column_titles == [COLUMN_TITLES[c] for c in used]
    for node in t.nodes.values():
        assert lay.boxes[node.id].x == lay.column_x[used.index(COLUMN[node.kind])]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a.right <= b.x or b.right <= a.x or a.y + BOX_H <= b.y or b.y + BOX_H <= a.y
            assert apart, f"{a.node} overlaps {b.node}"
    for (x, y), (_, mask) in lay.cells.items():
        box = lay.box_at(x, y)
        assert box is None, f"link {[t.links[i] for i in link_indices(mask)]} crosses box {box.node} at {x},{y}"
    drawn = {i for _, mask in lay.cells.values() for i in link_indices(mask)}
    assert drawn == set(range(len(t.links)))
    return lay


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_samples(path):
    check(load_file(path).topology)


def test_links_touch_both_boxes():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("seed-path.yaml")]).topology
    lay = check(t)
    for index, (a, b) in enumerate(t.links):
        cells = {xy for xy, (_, mask) in lay.cells.items() if mask >> index & 1}
        for end in (a, b):
            box = lay.boxes[end]
            assert (box.right, box.cy) in cells or (box.x - 1, box.cy) in cells, (a, b, end)


def test_big_topology():
    t = big_topology(300)
    assert len(t.nodes) >= 300 and not [d for d in validate(t) if d.is_error]
    lay = check(t)
    assert lay.height > 45 and lay.width < 220  # scrolls down, stays readable across


def test_direct_peer_skips_the_hub_column_on_a_free_row():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("direct-peer.yaml")]).topology
    from qnet_tui.model.topology import Node

    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    t.add(Node("vm2", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:02"}))
    t.links.append(("hub0", "vm2"))
    check(t)


def test_paint_shows_ids_and_titles():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("seed-path.yaml")]).topology
    text = "\n".join("".join(run[1] for run in row) for row in paint_rows(layout(t)))
    for node in t.nodes:
        assert node in text
    assert "host NICs" in text and "hubs (VLANs)" in text


def test_empty_columns_take_no_room():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("two-vlans.yaml")]).topology
    lay = check(t)
    assert lay.column_titles == ["hubs (VLANs)", "guest NICs, sockets"]
    assert lay.column_x[0] == 1  # hubs at the left margin, not in the right third
    assert lay.width < 3 * BOX_W
    text = "\n".join("".join(run[1] for run in row) for row in paint_rows(lay))
    assert "host NICs" not in text and "taps" not in text and "hubs (VLANs)" in text


def test_an_empty_topology_shows_every_column():
    from qnet_tui.model.topology import Topology

    lay = layout(Topology())
    assert lay.column_titles == list(COLUMN_TITLES)


def test_a_guest_stands_over_its_nics():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("router.yaml")]).topology
    lay = check(t)
    guest, v1, v2 = (lay.boxes[n] for n in ("router", "router-v1", "router-v2"))
    assert guest.x == v1.x == v2.x and guest.y + BOX_H < v1.y < v2.y
    # nothing of another machine between them
    assert not [b for b in lay.boxes.values() if b.x == guest.x and guest.y < b.y < v2.y and b not in (v1, v2)]
    assert (guest.title, guest.lines) == ("guest", ("router", "forwarding on", "2 NICs"))
    assert (v1.title, v2.title, lay.boxes["hostA"].title) == ("router eth0", "router eth1", "guest NIC")
    vm = load_file(SAMPLES[[p.name for p in SAMPLES].index("vm-router.yaml")]).topology
    assert check(vm).boxes["router"].lines == ("router", "VM built-in", "2 NICs, router")


def test_a_long_guest_name_keeps_the_interface_in_the_title():
    t = load_file(SAMPLES[[p.name for p in SAMPLES].index("router.yaml")]).topology
    editor = Editor(t)
    editor.rename("router", "a-very-long-id1")
    assert check(t).boxes["router-v2"].title == "a-very-lo… eth1"
