"""The command line: validate's contract, help, and never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qnet_tui import __version__, protocol
from qnet_tui.cli import COMMANDS, _command_parser, main
from qnet_tui.model.yamlio import load_file

SAMPLES = sorted((Path(__file__).parents[2] / "sample_topologies").glob("*.yaml"))
LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.+)$")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qnet_tui", *args], capture_output=True, text=True, timeout=60)


def test_samples_validate_clean():
    result = cli("validate", *map(str, SAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    # Only the guest-only VLANs of router and two-vlans draw QEMU's own warning; nothing else is said.
    said = [LINE.match(line) for line in result.stdout.splitlines()]
    unlinked = "is not connected to the host network (no tap or socket)"
    assert [(Path(m["file"]).name, m["sev"], m["msg"]) if m else None for m in said] == [
        (sample, "warning", f"hub{n}: hub of VLAN {n} {unlinked}")
        for sample in ("router.yaml", "two-vlans.yaml", "vm-router.yaml")
        for n in (1, 2)
    ]
    assert result.stderr.count(": valid:") == len(SAMPLES)


def test_validate_reports_file_line_col(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: x\nnodes:\n  h0: {kind: hub, vlan: 9000}\n  t0: {kind: tap}\nlinks:\n  - [h0, t1]\n"
    )
    good = SAMPLES[0]
    result = cli("validate", str(good), str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert all(LINE.match(x) for x in lines), lines
    assert f"{bad}:4:25: error: h0: vlan must be from 0 to 4095, not 9000" in lines
    assert f"{bad}:7:10: error: link h0 - t1: unknown node 't1'" in lines
    assert f"{bad}:5:3: warning: t0: not connected to anything" in lines
    assert "Traceback" not in result.stderr


def test_warnings_alone_exit_zero(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("version: 1\nname: x\nnodes:\n  t0: {kind: tap}\n")
    result = cli("validate", "-q", str(f))
    assert result.returncode == 0
    assert result.stdout == f"{f}:4:3: warning: t0: not connected to anything\n"
    assert result.stderr == ""


def test_huge_file_is_refused_quickly(tmp_path):
    f = tmp_path / "huge.yaml"
    with f.open("wb") as out:
        out.write(b"version: 1\nname: x\nnodes:\n")
        out.truncate(100 * 1024 * 1024)
    result = cli("validate", str(f))
    assert result.returncode == 1
    assert "larger than 4 MiB" in result.stdout


def test_help_lists_every_command():
    result = cli("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


def help_of(name: str) -> str:
    return " ".join(_command_parser(name).format_help().split())


def test_exec_help_names_every_kind_it_runs_in():
    text = help_of("exec")
    for kind in ("guest NIC", "host NIC", "bridge", "tap"):
        assert kind in text
    assert "-- CMD" in text and "exec lab.yaml vm1 -- " in text


def test_qemu_args_help_names_qemu_guest_nics_sockets_and_the_qemu_version():
    text = help_of("qemu-args")
    assert "'qemu: true' guest NIC" in text and "socket node" in text
    assert "QEMU 7.2 or newer" in text


def test_import_qemu_help_describes_its_output_and_arguments():
    text = help_of("import-qemu")
    assert "-o FILE, --output FILE the topology file to write; it must not exist yet" in text
    assert "-- ARGS QEMU's networking arguments after --" in text
    assert "import-qemu -o lab.yaml -- -netdev" in text


def test_version():
    result = cli("--version")
    assert result.stdout.strip() == f"qnet-tui {__version__}"


def test_usage_error_is_not_a_traceback():
    result = cli("validate")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


# -- fuzzing: whatever the file holds, validate answers 0 or 1 with clean lines

yamlish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def fuzz_validate(tmp_path: Path, data: bytes, capsys) -> None:
    f = tmp_path / "fuzz.yaml"
    f.write_bytes(data)
    rc = main(["validate", "-q", str(f)])
    out = capsys.readouterr()
    assert rc in (0, 1), out
    assert out.err == ""
    for line in out.out.splitlines():
        assert LINE.match(line), line


@given(st.binary(max_size=400))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_bytes(tmp_path, capsys, data):
    fuzz_validate(tmp_path, data, capsys)


@given(
    st.text(
        alphabet=st.sampled_from(list("version:1name\nnodes links-[]{}:,&*!|>'\"#\t ?kindhubtapvlan0123")), max_size=300
    )
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_yaml_like_text(tmp_path, capsys, text):
    fuzz_validate(tmp_path, text.encode(), capsys)


@given(yamlish, st.dictionaries(st.text(max_size=6), yamlish, max_size=5), st.lists(yamlish, max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_structures(tmp_path, capsys, top, nodes, links):
    import json

    # JSON is YAML: random structures in every place a topology has
    doc = {
        "version": 1,
        "name": top,
        "nodes": {k: ({"kind": "hub", **v} if isinstance(v, dict) else v) for k, v in nodes.items()},
        "links": links,
    }
    fuzz_validate(tmp_path, json.dumps(doc, allow_nan=True).encode(), capsys)


def test_exec_explains_what_is_wrong(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QNET_RUNTIME_DIR", str(tmp_path / "run"))
    sample = str(SAMPLES[[p.name for p in SAMPLES].index("seed-path.yaml")])
    assert main(["exec", sample, "vm1", "--", "true"]) == 1
    assert f"lab seed is not running; start it with: qnet-tui run {sample}" in capsys.readouterr().err
    assert main(["exec", sample, "vm3", "--", "true"]) == 1
    assert "has no node 'vm3' (did you mean 'vm" in capsys.readouterr().err
    assert main(["exec", sample, "hub0", "--", "true"]) == 1
    assert "hub0 is a hub: it has no namespace" in capsys.readouterr().err
    assert main(["exec", sample, "vm1"]) == 2
    assert "give the command after --" in capsys.readouterr().err
    lent = tmp_path / "wan.yaml"
    lent.write_text("version: 1\nname: wan\nnodes:\n  wan: {kind: host_nic, interface: enp9s0}\n")
    assert main(["exec", str(lent), "wan", "--", "true"]) == 1
    assert "wan lends this machine's interface enp9s0 to the lab: it has no outside host" in capsys.readouterr().err


def test_run_refuses_an_invalid_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nnodes:\n  h0: {kind: hub, vlan: 99999}\n")
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:25: error: h0: vlan must be from 0 to 4095" in err and "nothing was started" in err


def test_unknown_theme_is_refused(capsys):
    assert main(["--theme", "no-such-theme", str(SAMPLES[0])]) == 2
    out = capsys.readouterr().out
    assert "no theme 'no-such-theme'" in out and "qnet-light" in out


def test_import_qemu_writes_a_valid_file_and_reports_the_rest(tmp_path, capsys):
    out = tmp_path / "vm.yaml"
    argv = [
        "import-qemu",
        "-o",
        str(out),
        "--",
        "-net",
        "nic,vlan=0,model=e1000",
        "-net",
        "tap,vlan=0,ifname=tap0",
        "-net",
        "user,vlan=0",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "argument 5 (-net user,vlan=0): user-mode networking" in err  # the 5th word after --
    assert main(["validate", "-q", str(out)]) == 0
    assert main(argv) == 1  # never over an existing file
    assert "exists" in capsys.readouterr().err


def test_qemu_args_for_every_socket(capsys):
    sample = str(SAMPLES[[p.name for p in SAMPLES].index("qemu-socket.yaml")])
    assert main(["qemu-args", sample]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("-netdev stream,id=vm9,server=off,addr.type=unix,addr.path=")
    assert "-device virtio-net-pci,netdev=vm9,mac=52:54:00:" in line
    assert main(["qemu-args", sample, "hub0"]) == 1


def test_qemu_socket_sample_shows_the_arguments_qemu_args_prints(capsys, monkeypatch):
    sample = SAMPLES[[p.name for p in SAMPLES].index("qemu-socket.yaml")]
    monkeypatch.setenv("QNET_RUNTIME_DIR", str(protocol.ROOT_RUNTIME))  # root's folder, as with sudo
    assert main(["qemu-args", str(sample)]) == 0
    printed = capsys.readouterr().out.strip()
    header = re.search(r"^#\s+qemu-system-x86_64 \.\.\. \\\n((?:#.*\\\n)*#.*)\n", sample.read_text(), re.M)
    assert header is not None, "the sample's header shows no QEMU command line"
    shown = " ".join(line.lstrip("#").strip().rstrip("\\").strip() for line in header.group(1).splitlines())
    assert shown == printed


def test_qemu_args_give_each_socket_its_own_mac_and_refuse_invalid_files(tmp_path, capsys):
    path = tmp_path / "two.yaml"
    path.write_text(
        "version: 1\nname: two\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
        "  s1: {kind: socket, transport: stream, family: unix, mode: listen, address: s1.sock}\n"
        "  s2: {kind: socket, transport: stream, family: unix, mode: listen, address: s2.sock}\n"
        "links: [[hub0, s1], [hub0, s2]]\n"
    )
    assert main(["qemu-args", str(path)]) == 0
    macs = re.findall(r"mac=([0-9a-f:]+)", capsys.readouterr().out)
    assert len(macs) == 2 and macs[0] != macs[1]
    bad = path.read_text().replace("unix, mode: listen, address: s1.sock", "inet, mode: listen, address: x")
    path.write_text(bad)
    assert main(["qemu-args", str(path)]) == 1  # an address with no port: a placed error, not a traceback
    err = capsys.readouterr().err
    assert f"{path}:5:" in err and "qemu-args" in err and "has errors" in err and "Traceback" not in err


def test_validate_shows_the_first_problems_errors_kept(tmp_path, capsys):
    f = tmp_path / "many.yaml"
    taps = "".join(f"  t{i}: {{kind: tap}}\n" for i in range(250))  # a warning each
    hubs = "".join(f"  h{i}: {{kind: hub, vlan: {5000 + i}}}\n" for i in range(5))  # errors, last in the file
    f.write_text(f"version: 1\nname: many\nnodes:\n{taps}{hubs}")
    assert main(["validate", str(f)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 200 and all(LINE.match(x) for x in lines)
    assert sum(": error: " in x for x in lines) == 5  # every error, and warnings up to the cap
    assert lines[0].startswith(f"{f}:4:3: warning: t0:") and ": error: h4: vlan" in lines[-1]  # file order
    assert f"{f}: 60 more problem(s) not shown; 5 error(s), 255 warning(s) in all (--all shows every one)" in err
    assert f"{f}: invalid: 5 error(s), 255 warning(s)" in err
    assert main(["validate", "--all", "-q", str(f)]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 260 and err == ""


def test_import_qemu_marks_outside_paths_external_and_fails_on_errors(tmp_path, capsys):
    out = tmp_path / "vm.yaml"
    stream = "stream,id=s0,server=off,addr.type=unix,addr.path=/tmp/qemu-vm.sock"
    assert main(["import-qemu", "-o", str(out), "--", "-netdev", stream, "-device", "e1000,netdev=s0"]) == 0
    err = capsys.readouterr().err
    assert "s0: unix path /tmp/qemu-vm.sock is outside the lab's folder: marked external: true" in err
    node = load_file(out).topology.nodes["s0"]
    assert node.attrs["external"] is True and node.attrs["address"] == "/tmp/qemu-vm.sock"
    bad = tmp_path / "bad.yaml"  # a relative path that leaves the lab's folder: written, and exit 1
    stream = "stream,id=s0,server=off,addr.type=unix,addr.path=../other/control.sock"
    assert main(["import-qemu", "-o", str(bad), "--", "-netdev", stream, "-device", "e1000,netdev=s0"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:9:14: error: s0: address '../other/control.sock' has a '..' component" in err
    assert "it has 1 error(s), above: fix them before running it" in err
    assert load_file(bad).topology.nodes["s0"].attrs["address"] == "../other/control.sock"
