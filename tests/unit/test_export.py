"""qnet-tui export: containerlab, Mermaid and DOT, against golden files reviewed once,
and what each format leaves out said by element."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from qnet_tui.cli import main
from qnet_tui.model.export import FORMATS, export
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.yamlio import load_file

ROOT = Path(__file__).parents[2]
SAMPLES = sorted((ROOT / "sample_topologies").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
# seed-path: the seed's path (host NIC, bridge, tap, hub); router: a guest of two NICs.
GOLDEN_SAMPLES = ("seed-path", "router")
REGEN = "QNET_REGEN_GOLDEN"


def exported(sample: str, to: str) -> str:
    return export(load_file(ROOT / "sample_topologies" / f"{sample}.yaml").topology, to, f"{sample}.yaml").text


@pytest.mark.parametrize("to", sorted(FORMATS))
@pytest.mark.parametrize("sample", GOLDEN_SAMPLES)
def test_export_matches_its_golden_file(sample, to):
    golden = GOLDEN / f"{sample}{FORMATS[to][1]}"
    text = exported(sample, to)
    if os.environ.get(REGEN):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}: write it with {REGEN}=1 and review it"
    assert text == golden.read_text(), (
        f"export --to {to} of {sample} differs from {golden.name}; if the change is meant, "
        f"regenerate with {REGEN}=1 pytest {Path(__file__).relative_to(ROOT)} and review the diff"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_dot_renders_every_sample(sample):
    text = export(load_file(sample).topology, "dot").text
    result = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert "<svg" in result.stdout


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_clab_of_every_sample_is_yaml_whose_links_end_at_its_nodes(sample):
    data = YAML(typ="safe").load(export(load_file(sample).topology, "clab").text)
    nodes = data["topology"]["nodes"]
    assert {n["kind"] for n in nodes.values()} <= {"linux", "bridge"}
    ports = []
    for link in data["topology"]["links"]:
        (a, a_if), (b, b_if) = (e.split(":") for e in link["endpoints"])
        assert nodes[a]["kind"] == "linux" and a_if.startswith("eth")
        assert nodes[b]["kind"] == "bridge"
        ports.append(b_if)
    assert all(len(p) <= 15 for p in ports) and len(set(ports)) == len(ports)


def test_clab_port_names_stay_short_and_unique():
    t = Topology(name="long")
    t.add(Node("h", Kind.HUB, {"vlan": 1}))
    for i in (1, 2):  # the same first 15 characters of BRIDGE-PEER
        t.add(Node(f"a-very-long-guest-name-{i}", Kind.GUEST_NIC, {"mac": f"52:54:00:00:00:0{i}"}))
        t.links.append(("h", f"a-very-long-guest-name-{i}"))
    links = YAML(typ="safe").load(export(t, "clab").text)["topology"]["links"]
    assert [link["endpoints"][1] for link in links] == ["h:h-a-very-long-g", "h:h-a-very-long-2"]


def test_left_out_elements_are_said_one_line_each_and_the_export_succeeds(tmp_path, capsys):
    sample = tmp_path / "mixed.yaml"
    sample.write_text(
        "version: 1\nname: mixed\nnodes:\n  hub0: {kind: hub, vlan: 0}\n  tap0: {kind: tap}\n"
        "  s0: {kind: socket, transport: dgram, family: inet, address: '127.0.0.1:5000', local: '127.0.0.1:5001'}\n"
        "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01'}\n"
        "links:\n  - [hub0, tap0]\n  - [hub0, s0]\n  - [hub0, vm1]\n"
    )
    t = load_file(sample).topology
    assert not [d for d in load_file(sample).diagnostics() if d.is_error]
    assert main(["export", str(sample), "--to", "clab"]) == 0
    captured = capsys.readouterr()
    said = captured.err.splitlines()
    taps = [n.id for n in t.of_kind(Kind.TAP)]
    sockets = [n.id for n in t.of_kind(Kind.SOCKET)]
    assert taps and sockets
    for node in taps + sockets:
        assert sum(line.startswith(f"qnet-tui export: {node}: no containerlab equivalent") for line in said) == 1
    assert len(said) == 2  # nothing else: hub0 and vm1 made it
    assert '- endpoints: ["vm1:eth0", "hub0:hub0-vm1"]' in captured.out


def test_vm_settings_impairments_scenarios_and_hosts_are_said():
    t = Topology(name="x", scenarios={"s": []}, hosts={"a": {"ssh": "root@192.0.2.1"}})
    t.add(Node("hub1", Kind.HUB, {"vlan": 1}))
    t.add(Node("g", Kind.GUEST, {"vm": True, "memory": 512}))
    t.add(Node("g-eth0", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:01", "guest": "g"}))
    t.add(Node("up", Kind.HOST_NIC, {"interface": "enp3s0"}))
    t.links.append(("hub1", "g-eth0"))
    t.impair[("hub1", "g-eth0")] = "delay=50ms"
    left = export(t, "clab").left_out
    assert left == [
        "g: a VM guest, exported as a container; vm, memory left out",
        "up: no containerlab equivalent (lends this machine's enp3s0 to the lab); left out, with its link",
        "link hub1 -> g-eth0: impairment delay=50ms left out (containerlab's 'tools netem set' can add it)",
        "scenarios: no containerlab equivalent; left out",
        "hosts: no containerlab equivalent (a lab across machines); every node exported on one",
    ]


def test_nothing_to_export_is_an_error(tmp_path, capsys):
    lone = tmp_path / "lone.yaml"
    lone.write_text("version: 1\nname: lone\nnodes:\n  tap0:\n    kind: tap\nlinks: []\n")
    assert main(["validate", "-q", str(lone)]) == 0
    capsys.readouterr()
    assert main(["export", str(lone), "--to", "clab"]) == 1
    err = capsys.readouterr().err
    assert "tap0: no containerlab equivalent" in err and "nothing in" in err


def test_output_file_is_written_and_never_overwritten(tmp_path, capsys):
    sample = str(ROOT / "sample_topologies" / "seed-path.yaml")
    out = tmp_path / "seed.mmd"
    assert main(["export", sample, "--to", "mermaid", "-o", str(out)]) == 0
    assert out.read_text() == exported("seed-path", "mermaid")
    assert capsys.readouterr().out == ""  # all of it in the file
    out.write_text("mine\n")
    assert main(["export", sample, "--to", "dot", "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["seed.mmd"]  # no temporary file left


def test_an_invalid_file_is_not_exported(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nnodes:\n  hub0:\n    kind: hub\n    vlan: 99999\nlinks: []\n")
    assert main(["export", str(bad), "--to", "dot"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}:6:11: error:" in captured.err and "nothing was exported" in captured.err


def test_mermaid_ids_are_safe_and_labels_escaped():
    t = Topology(name="odd")
    t.add(Node("end", Kind.HUB, {"vlan": 3}))
    t.add(Node("vm.1", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:01", "ipv4": "10.0.0.1/24"}))
    t.add(Node('o"x', Kind.SOCKET, {"transport": "dgram", "address": "a#b<c>"}))
    t.links += [("end", "vm.1"), ("end", 'o"x')]
    text = export(t, "mermaid").text
    assert '    n_end{{"end<br/>VLAN 3"}}' in text
    assert '    n_vm_1("vm.1<br/>10.0.0.1/24")' in text
    assert '    n_o_x>"o#quot;x<br/>dgram a#35;b#lt;c#gt;"]' in text
    assert "  n_end --- n_vm_1\n  n_end --- n_o_x\n" in text


def test_dot_quotes_ids():
    t = Topology(name='a "lab"')
    t.add(Node('back\\slash"', Kind.TAP))
    text = export(t, "dot").text
    assert 'graph "a \\"lab\\"" {' in text
    assert '"back\\\\slash\\"" [shape=parallelogram, label="back\\\\slash\\""];' in text
