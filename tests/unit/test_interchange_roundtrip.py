"""Export to containerlab, then import: the same topology (point 3 of the
interchange issue). The samples made of what containerlab can say (guests,
guest NICs, hubs) come back node for node, attribute for attribute, link for
link; what the others hold beyond that is reported on the way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnet_tui.model.export import export
from qnet_tui.model.importers import dumps, import_file
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlio import load_file, load_text

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
SAYABLE = {Kind.GUEST, Kind.GUEST_NIC, Kind.HUB}
VM_KEYS = ("vm", "memory", "cpus", "kernel", "initrd", "append", "disk", "disk_format")


def sayable(path: Path) -> bool:
    t = load_file(path).topology
    return t.hosts is None and all(
        n.kind in SAYABLE and not n.is_qemu_vm and not any(k in n.attrs for k in VM_KEYS) for n in t.nodes.values()
    )


def shape(t: Topology) -> tuple[dict, set]:
    nodes = {n.id: (n.kind, {k: v for k, v in n.attrs.items() if k != "model" or v != "virtio-net-pci"})
             for n in t.nodes.values()}  # fmt: skip
    return nodes, {frozenset(link) for link in t.links}


ROUND_TRIPPED = sorted(p.name for p in SAMPLES.glob("*.yaml") if sayable(p))


def test_some_samples_are_all_containerlab_can_say():
    assert {"two-vlans.yaml", "router.yaml"} <= set(ROUND_TRIPPED)


@pytest.mark.parametrize("sample", ROUND_TRIPPED)
def test_export_then_import_gives_the_same_topology(sample: str, tmp_path: Path):
    original = load_file(SAMPLES / sample).topology
    exported = export(original, "clab", sample)
    assert exported.left_out == []
    source = tmp_path / "lab.clab.yml"
    source.write_text(exported.text)
    imported = import_file(source, exported.text)
    doc = load_text(dumps(imported, source.name))
    assert not [d for d in doc.diagnostics() if d.is_error]
    assert shape(doc.topology) == shape(original)
    assert doc.topology.name == original.name


def test_a_hub_keeps_its_vlan_and_a_router_its_forwarding():
    original = load_file(SAMPLES / "router.yaml").topology
    text = export(original, "clab", "router.yaml").text
    assert 'qnet-tui.vlan: "1"' in text and "sysctl -w net.ipv4.ip_forward=1" in text
    back = import_file(Path("router.clab.yml"), text).topology
    assert back.nodes["router"].attrs["forwarding"] is True
    assert back.nodes["hub2"].attrs["vlan"] == 2
