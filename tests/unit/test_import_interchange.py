"""qnet-tui import: a containerlab topology and a GNS3 project, both written by
hand from their formats' documentation (tests/unit/data/README.md), become
valid topologies; what has no equivalent is reported by element."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qnet_tui.cli import main
from qnet_tui.model.diagnostics import Severity
from qnet_tui.model.importers import ImportFailed, import_clab, import_gns3
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlio import load_file

DATA = Path(__file__).parent / "data"
MAC = re.compile(r"52:54:00(:[0-9a-f]{2}){3}")


def imported(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[Topology, list[str]]:
    """Import tests/unit/data/name with the CLI; the file read back, and the report lines."""
    out = tmp_path / "lab.yaml"
    assert main(["import", str(DATA / name), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    doc = load_file(out)
    assert [d for d in doc.diagnostics() if d.severity is Severity.ERROR] == []
    return doc.topology, [line.removeprefix("qnet-tui import: ") for line in err if line.startswith("qnet-tui import")]


def peers(t: Topology, node: str) -> set[str]:
    return set(t.neighbours(node))


def test_containerlab_nodes_nics_addresses_and_hubs(tmp_path, capsys):
    t, report = imported(tmp_path, "lab.clab.yml", capsys)
    assert t.name == "branch"
    kinds = {n.id: n.kind for n in t.nodes.values()}
    assert kinds == {
        "client1": Kind.GUEST,
        "client1-eth1": Kind.GUEST_NIC,
        "client2": Kind.GUEST,
        "client2-eth1": Kind.GUEST_NIC,
        "client2-eth2": Kind.GUEST_NIC,
        "router": Kind.GUEST,
        "router-eth1": Kind.GUEST_NIC,
        "router-eth2": Kind.GUEST_NIC,
        "router-eth3": Kind.GUEST_NIC,
        "sw": Kind.HUB,
        "link4": Kind.HUB,
    }
    c1 = t.nodes["client1-eth1"].attrs
    # defaults.kind: linux made client1 a linux node; its exec lines gave the NIC its settings.
    assert c1 == {
        "guest": "client1",
        "mac": "02:00:00:00:01:11",
        "ipv4": "10.1.0.11/24",
        "gateway": "10.1.0.1",
        "ipv6": "fd00:1::11/64",
    }
    assert t.nodes["router-eth1"].attrs["ipv4"] == "10.1.0.1/24"  # 'ip address add'
    assert t.nodes["router-eth2"].attrs["mac"] == "02:00:00:00:09:01"  # the extended form's mac
    assert MAC.fullmatch(t.nodes["client2-eth1"].attrs["mac"])
    # The bridge is VLAN 1, the veth cable between router and client2 a hub of two ports.
    assert t.nodes["sw"].attrs == {"vlan": 1} and t.nodes["link4"].attrs == {"vlan": 2}
    assert peers(t, "sw") == {"client1-eth1", "client2-eth1", "router-eth1"}
    assert peers(t, "link4") == {"router-eth2", "client2-eth2"}
    assert peers(t, "router-eth3") == set()  # its far end, srl1, is left out
    assert report[:-1] == [
        'mgmt: {"network": "branch-mgmt", "ipv4-subnet": "172.20.20.0/24"}: containerlab\'s mgmt has no '
        "equivalent; left out",
        'topology.defaults.env: {"TZ": "UTC"}: has no equivalent; left out',
        "topology.kinds.nokia_srlinux.image: ghcr.io/nokia/srlinux: has no equivalent; left out",
        "node client1: image alpine:3 has no equivalent; left out",
        "node client2: image alpine:3 has no equivalent; left out",
        'node client2: binds ["./data:/data"] has no equivalent; left out',
        "node router: image frrouting/frr:latest has no equivalent; left out",
        'node router: ports ["8080:80"] has no equivalent; left out',
        "node srl1: kind nokia_srlinux has no equivalent; left out",
        "link 4: mtu 1500 has no equivalent; left out",
        "link 5 (srl1:e1-1 -- router:eth3): its end srl1 is left out, so is the link",
        "link 6 (router:eth4 -- host:router-eth4): containerlab's host endpoint has no equivalent; left out",
        "link 7: type macvlan has no equivalent (only veth links are); left out",
        "node client1: exec sysctl -w net.ipv4.ip_forward=0 has no equivalent; left out",
    ]
    assert report[-1].startswith(f"wrote {tmp_path / 'lab.yaml'}: 11 nodes, 5 links, 14 element(s)")


def test_containerlab_comments_say_where_things_came_from(tmp_path, capsys):
    imported(tmp_path, "lab.clab.yml", capsys)
    text = (tmp_path / "lab.yaml").read_text()
    assert text.startswith("# Imported from lab.clab.yml by qnet-tui import.\n")
    assert "  # containerlab bridge sw: a Linux bridge that floods like a hub for a lab; here a hub\n  sw:\n" in text
    assert "  # containerlab linux node router; inside it eth1 is eth0, eth2 is eth1, eth3 is eth2\n" in text


def test_containerlab_exec_lines_that_do_not_fit_are_reported():
    text = """
name: x
topology:
  nodes:
    a:
      kind: linux
      exec:
        - ip addr add 10.0.0.1/24 dev eth1
        - ip addr add 10.0.0.9/24 dev eth1
        - ip addr add 10.0.0.2/24 dev eth0
        - ip -6 route add default via fd00::1
        - ip route add default via 10.0.0.254 dev eth1
    b: {kind: linux}
  links:
    - endpoints: [a:eth1, b:eth1]
"""
    out = import_clab(text)
    nic = out.topology.nodes["a-eth1"].attrs
    assert (nic["ipv4"], nic["gateway"]) == ("10.0.0.1/24", "10.0.0.254")
    assert out.report == [
        "node a: exec ip addr add 10.0.0.9/24 dev eth1: eth1 has its ipv4 already; one per NIC; left out",
        "node a: exec ip addr add 10.0.0.2/24 dev eth0: no link of a has eth0; left out",
        "node a: exec ip -6 route add default via fd00::1: no NIC of a has an address in fd00::1's subnet; left out",
    ]
    # The two ends of the cable got distinct MACs, the same ones each time.
    macs = [out.topology.nodes[n].attrs["mac"] for n in ("a-eth1", "b-eth1")]
    assert len(set(macs)) == 2 and all(MAC.fullmatch(m) for m in macs)
    assert [import_clab(text).topology.nodes[n].attrs["mac"] for n in ("a-eth1", "b-eth1")] == macs


def test_containerlab_bridge_to_bridge_merges_them():
    out = import_clab(
        "name: x\ntopology:\n  nodes:\n    br1: {kind: bridge}\n    br2: {kind: ovs-bridge}\n    a: {kind: linux}\n"
        "  links:\n    - endpoints: [br1:p1, br2:p1]\n    - endpoints: [a:eth1, br2:p2]\n"
    )
    t = out.topology
    assert [n.id for n in t.of_kind(Kind.HUB)] == ["br1"]
    assert t.links == [("a-eth1", "br1")]
    assert out.report == ["link 1 (br1:p1 -- br2:p1): joins br1 and br2 into one hub (one broadcast domain)"]


def test_gns3_nodes_adapters_switch_and_cloud(tmp_path, capsys):
    t, report = imported(tmp_path, "project.gns3", capsys)
    assert t.name == "office"
    kinds = {n.id: n.kind for n in t.nodes.values()}
    assert kinds == {
        "R1": Kind.GUEST,
        "R1-eth0": Kind.GUEST_NIC,
        "R1-eth1": Kind.GUEST_NIC,
        "R1-eth2": Kind.GUEST_NIC,
        "PC1": Kind.GUEST,
        "PC1-eth0": Kind.GUEST_NIC,
        "Internet-eth0": Kind.HOST_NIC,
        "Internet-br0": Kind.BRIDGE,
        "Internet-tap0": Kind.TAP,
        "PC2": Kind.GUEST,
        "PC2-eth0": Kind.GUEST_NIC,
        "Switch1": Kind.HUB,
        "link3": Kind.HUB,
        "link5": Kind.HUB,
    }
    # mac_address is adapter 0's; GNS3 gives adapter n that plus n.
    assert [t.nodes[f"R1-eth{n}"].attrs["mac"] for n in range(3)] == [f"0c:5e:4b:1a:00:0{n}" for n in range(3)]
    assert t.nodes["R1-eth0"].attrs["model"] == "e1000"
    pc1 = t.nodes["PC1-eth0"].attrs
    assert (pc1["ipv4"], pc1["gateway"]) == ("192.168.1.10/24", "192.168.1.1")
    assert t.nodes["Internet-eth0"].attrs == {"interface": "eth0"}
    assert [t.nodes[h].attrs["vlan"] for h in ("Switch1", "link3", "link5")] == [1, 2, 3]
    assert peers(t, "Switch1") == {"R1-eth0", "PC1-eth0"}
    assert peers(t, "link3") == {"R1-eth1", "Internet-tap0"}
    assert peers(t, "link5") == {"R1-eth2", "PC2-eth0"}
    assert peers(t, "Internet-br0") == {"Internet-eth0", "Internet-tap0"}
    assert report[:-1] == [
        "drawing 9b2f7d9e-0b1c-4a6e-8d7e-1c2b3a4d5e6f: left out",
        "node R1: qemu property hda_disk_image vyos-1.4.qcow2 has no equivalent; left out",
        "node R1: qemu property ram 512 has no equivalent; left out",
        "node R1: qemu property cpus 1 has no equivalent; left out",
        "node Switch1: port 3 (Ethernet3): access VLAN 10: a hub has no VLANs of its own; left out",
        "node Switch1: port 7 (Ethernet7): dot1q VLAN 1: a hub has no VLANs of its own; left out",
        "node Docker1: node type docker has no equivalent; left out",
        'link 3 (R1 1/0 -- Internet 0/0): filters {"delay": [50, 5]}: left out (impair: in the file does the like)',
        "link 4 (Docker1 0/0 -- Switch1 0/3): its end Docker1 is left out, so is the link",
    ]
    text = (tmp_path / "lab.yaml").read_text()
    assert "  # GNS3 ethernet_switch Switch1: a switch learns, a hub floods; its VLAN and port settings" in text
    assert "  # GNS3 qemu node R1\n" in text


def test_gns3_adapter_numbers_past_the_adapters_are_reported():
    project = """{"name": "p", "topology": {"nodes": [
      {"node_id": "a", "name": "A", "node_type": "qemu", "properties": {"adapters": 1}},
      {"node_id": "b", "name": "B", "node_type": "ethernet_hub", "properties": {}}],
     "links": [{"nodes": [{"node_id": "a", "adapter_number": 3, "port_number": 0},
                          {"node_id": "b", "adapter_number": 0, "port_number": 0}]}]}}"""
    out = import_gns3(project)
    assert out.report == [
        "node A: adapter 3 port 0: the node has no such port; its link is left out",
        "link 1 (A 3/0 -- B 0/0): its end A is left out, so is the link",
    ]
    assert out.topology.links == []


def test_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "lab.yaml"
    out.write_text("mine\n")
    assert main(["import", str(DATA / "lab.clab.yml"), "-o", str(out)]) == 1
    assert f"{out} exists; give a new file name" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.clab.yml", "name: x\ntopology:\n  nodes: [a\n", "bad.clab.yml:4:1: not YAML: "),
        ("bad.gns3", '{"name": "x",\n  "topology": {,}\n}\n', "bad.gns3:2:16: not JSON: Expecting property name"),
        ("bad.gns3", '["not", "a", "project"]', "bad.gns3: not a GNS3 project: the file is not a JSON object"),
        ("bad.yaml", "just: text\n", "bad.yaml: not a containerlab topology: no 'topology:' mapping"),
    ],
)
def test_malformed_files_get_a_placed_error_and_no_output(tmp_path, capsys, name, text, where):
    source, out = tmp_path / name, tmp_path / "lab.yaml"
    source.write_text(text)
    assert main(["import", str(source), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"qnet-tui import: {tmp_path / where}" in err, err
    assert "Traceback" not in err and not out.exists()


def test_unknown_format_is_refused(tmp_path, capsys):
    source, out = tmp_path / "lab.net", tmp_path / "lab.yaml"
    source.write_text("x")
    assert main(["import", str(source), "-o", str(out)]) == 1
    assert "not a format import reads: containerlab (.clab.yml" in capsys.readouterr().err
    assert not out.exists()


def test_macs_taken_or_wrong_are_replaced_and_said():
    out = import_clab(
        "name: x\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n  links:\n"
        "    - type: veth\n      endpoints: [{node: a, interface: eth1, mac: '02:00:00:00:00:01'},"
        " {node: b, interface: eth1, mac: '02:00:00:00:00:01'}]\n"
    )
    mac = out.topology.nodes["b-eth1"].attrs["mac"]
    assert MAC.fullmatch(mac) and out.topology.nodes["a-eth1"].attrs["mac"] == "02:00:00:00:00:01"
    assert out.report == [f"node b: eth1: MAC 02:00:00:00:00:01 used already; {mac} instead"]
    gns3 = import_gns3(
        '{"topology": {"nodes": [{"node_id": "a", "name": "A", "node_type": "qemu",'
        ' "properties": {"mac_address": "0c:zz"}}, {"node_id": "h", "name": "H", "node_type": "ethernet_hub"}],'
        ' "links": [{"nodes": [{"node_id": "a", "adapter_number": 0, "port_number": 0},'
        ' {"node_id": "h", "adapter_number": 0, "port_number": 0}]}]}}'
    )
    mac = gns3.topology.nodes["A-eth0"].attrs["mac"]
    assert gns3.report == [
        f"node A: adapter 0: MAC 0c:zz is not a MAC address of the form 52:54:00:12:34:56; {mac} instead"
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.sampled_from(["a", "a:eth1", "eth1", "linux", "bridge", ""]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "topology",
                    "nodes",
                    "links",
                    "kind",
                    "endpoints",
                    "exec",
                    "type",
                    "node",
                    "interface",
                    "node_id",
                    "node_type",
                    "properties",
                    "adapter_number",
                    "port_number",
                    "ports_mapping",
                    "defaults",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


ANY = JSON | st.sampled_from(
    ["qemu", "vpcs", "cloud", "ethernet_switch", "ethernet_hub", "ip addr add 1.2.3.4/8 dev e"]
)
IDS = st.sampled_from(["a", "b", "br"])
END = st.fixed_dictionaries(
    {"node_id": IDS, "adapter_number": st.integers(0, 2) | ANY, "port_number": st.integers(0, 2)}
)
GNS3 = st.fixed_dictionaries(
    {
        "topology": st.fixed_dictionaries(
            {
                "nodes": st.lists(
                    st.fixed_dictionaries(
                        {
                            "node_id": IDS,
                            "node_type": st.sampled_from(["qemu", "vpcs", "cloud", "ethernet_switch", "ethernet_hub"]),
                            "properties": st.dictionaries(
                                st.sampled_from(["adapters", "mac_address", "ports_mapping", "startup_script"]), ANY
                            )
                            | ANY,
                        }
                    ),
                    max_size=4,
                ),
                "links": st.lists(st.fixed_dictionaries({"nodes": st.lists(END | ANY, max_size=3)}) | ANY, max_size=4),
            }
        )
    }
)
CLAB = st.fixed_dictionaries(
    {
        "topology": st.fixed_dictionaries(
            {
                "nodes": st.dictionaries(
                    IDS, st.fixed_dictionaries({"kind": st.sampled_from(["linux", "bridge", "srl"]), "exec": ANY}) | ANY
                ),
                "links": st.lists(
                    st.fixed_dictionaries({"endpoints": st.lists(st.sampled_from(["a:eth1", "b:e", "br:p"]) | ANY)})
                    | ANY,
                    max_size=4,
                ),
            }
        )
    }
)


def imported_or_refused(data: object) -> None:
    for reader in (import_clab, import_gns3):
        try:
            out = reader(json.dumps(data))
        except ImportFailed as exc:
            assert str(exc)
        else:
            assert all(isinstance(line, str) for line in out.report)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=JSON)
def test_any_shape_is_imported_or_refused_in_words(data):
    imported_or_refused(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=GNS3)
def test_any_gns3_like_shape_is_imported_or_refused_in_words(data):
    imported_or_refused(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=CLAB)
def test_any_containerlab_like_shape_is_imported_or_refused_in_words(data):
    imported_or_refused(data)


def test_a_cable_within_one_hub_is_said():
    out = import_clab("topology:\n  nodes: {br: {kind: bridge}}\n  links: [{endpoints: ['br:p1', 'br:p2']}]\n")
    assert out.report == ["link 1 (br:p1 -- br:p2): both ends are on one hub already (a loop); left out"]
    assert out.topology.links == []
