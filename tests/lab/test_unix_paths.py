"""Unix socket paths at run time: a lab binds only inside its own folder or
where a node says `external: true`, never takes over a path another program
serves, never unlinks a file it did not make, and removes exactly the socket
files it made: at stop, by its watchdog, or by the next run after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qnet_tui import protocol
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.realize import Builder, Lab, PlannedHub, RealizeError
from qnet_tui.lab.unixpaths import SUN_PATH_MAX, remove_recorded
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology

from .conftest import lab_namespaces, wait_for, watchdog_of

GUEST = "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01'}\n"


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder of "another program", outside every lab, with a short path."""
    folder = Path(tempfile.mkdtemp(prefix="qnt-"))
    yield folder
    shutil.rmtree(folder)


def topology(*sockets: str) -> str:
    """A lab of a hub, a guest and these socket node lines."""
    names = [line.split(":")[0].strip() for line in sockets]
    links = ", ".join(f"[hub0, {n}]" for n in ["vm1", *names])
    return (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n" + GUEST + "".join(sockets) + f"links: [{links}]\n"
    )


def listen(name: str, address: str | Path, external: bool = True) -> str:
    ext = ", external: true" if external else ""
    return f"  {name}: {{kind: socket, transport: stream, mode: listen, address: '{address}'{ext}}}\n"


def dgram(name: str, address: str | Path, local: str | Path) -> str:
    return f"  {name}: {{kind: socket, transport: dgram, address: '{address}', local: '{local}', external: true}}\n"


def stale_socket(path: Path) -> int:
    """A socket file nobody serves (its program is gone); returns its inode."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
    return os.lstat(path).st_ino


def failure(lab) -> str:
    assert lab.proc.wait(30) == 1, "the lab started"
    return "\n".join(lab.errors)


# -- someone else's paths ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stream", "dgram"])
def test_a_path_another_program_serves_is_refused_and_left_to_it(make_lab, outside, transport):
    path = outside / "qemu.sock"
    kind = socket.SOCK_STREAM if transport == "stream" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_UNIX, kind) as server:  # stands for a QEMU serving its end
        server.bind(str(path))
        if transport == "stream":
            server.listen(4)
            node, who = listen("s0", path), f"{Path('/proc/self/comm').read_text().strip()} (pid {os.getpid()})"
        else:
            node, who = dgram("s0", outside / "peer.sock", path), "another program"  # a datagram socket tells no peer
        inode = os.lstat(path).st_ino
        lab = make_lab("", "--duration", "3", wait=False, text=topology(node))
        assert f"s0: {path} is already served by {who}; stop it or choose another path" in failure(lab)
        assert os.lstat(path).st_ino == inode  # its file, untouched
        with socket.socket(socket.AF_UNIX, kind) as client:  # and still served
            client.connect(str(path))
            if transport == "dgram":
                client.send(b"still here")
                assert server.recv(100) == b"still here"
    assert not lab_namespaces(lab.name)


@pytest.mark.parametrize("what", ["stale socket", "file"])
def test_a_file_the_lab_did_not_make_is_refused_not_unlinked(make_lab, outside, what):
    path = outside / "old.sock"
    if what == "file":
        path.write_text("someone's data\n")
        inode, message = os.lstat(path).st_ino, f"s0: {path} exists and is not a socket; choose another path"
    else:
        inode = stale_socket(path)
        message = f"s0: {path} is a socket this lab did not make and nobody serves; remove it yourself if it is stale"
    lab = make_lab("", "--duration", "3", wait=False, text=topology(listen("s0", path)))
    assert message in failure(lab)
    assert os.lstat(path).st_ino == inode
    if what == "file":
        assert path.read_text() == "someone's data\n"


# -- the lab's own socket files ------------------------------------------------------------


def own_sockets_lab(make_lab, outside: Path):
    """A lab binding three socket files: one in its folder, two outside
    (external), and dialling a QEMU guest NIC's (QEMU binds that one, not
    the lab). Returns the lab and the three."""
    text = topology(
        listen("s0", "s0.sock", external=False),
        listen("s1", outside / "ext.sock"),
        dgram("d0", outside / "peer.sock", outside / "d0.sock"),
        "  vm9: {kind: guest_nic, mac: '52:54:00:00:00:09', qemu: true}\n",
    )
    lab = make_lab("", text=text)
    folder = protocol.lab_dir(lab.name)
    paths = [folder / "s0.sock", outside / "ext.sock", outside / "d0.sock"]
    assert not (folder / "vm9.sock").exists()  # the VM's own, when it runs
    return lab, paths


def test_the_labs_sockets_are_recorded_and_removed_at_stop(make_lab, outside):
    lab, paths = own_sockets_lab(make_lab, outside)
    state = json.loads(protocol.state_path(lab.name).read_text())
    recorded = {(r["path"], r["dev"], r["ino"]) for r in state["sockets"]}
    assert recorded == {(str(p), os.lstat(p).st_dev, os.lstat(p).st_ino) for p in paths}
    assert lab.stop() == 0
    assert [p for p in paths if os.path.lexists(p)] == []


def test_the_watchdog_removes_the_sockets_of_a_killed_worker(make_lab, outside):
    lab, paths = own_sockets_lab(make_lab, outside)
    lab.proc.kill()
    lab.proc.wait(10)
    wait_for(lambda: not protocol.state_path(lab.name).exists(), 15, "the watchdog to clean up")
    assert [p for p in paths if os.path.lexists(p)] == []


def test_the_next_run_removes_a_dead_runs_sockets_but_not_a_file_put_in_their_place(make_lab, outside):
    lab, paths = own_sockets_lab(make_lab, outside)
    os.kill(watchdog_of(lab.proc.pid), signal.SIGKILL)
    lab.proc.kill()
    lab.proc.wait(10)
    assert all(os.path.lexists(p) for p in paths)  # nobody cleaned: the next run must
    ext = outside / "ext.sock"
    old = os.lstat(ext).st_ino
    new = stale_socket(outside / "new.sock")  # made while the old one still holds its inode
    os.rename(outside / "new.sock", ext)  # another program's socket now, at the same path
    assert new != old
    # The next run of the lab (its sockets gone from the topology meanwhile).
    lab.file.write_text(topology().replace("name: x", f"name: {lab.name}"))
    again = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "removed what a killed run of lab" in again.stderr and str(outside / "d0.sock") in again.stderr
    assert [p for p in paths if os.path.lexists(p)] == [ext]
    assert os.lstat(ext).st_ino == new  # not the dead run's: left alone


def test_records_that_prove_nothing_remove_nothing(outside):
    """A damaged state file, or a run killed between recording a path and
    recording the inode it made there: nothing is unlinked."""
    unsure = outside / "unsure.sock"
    inode = stale_socket(unsure)
    other = outside / "other.sock"
    stale_socket(other)
    st = os.lstat(other)
    records = [
        None,
        {"path": 5},
        {"path": "a\0b", "dev": 1, "ino": 2},
        {"node": "s0", "path": str(unsure), "dev": None, "ino": None},  # the intent only
        {"node": "s1", "path": str(other), "dev": st.st_dev, "ino": st.st_ino + 1},  # another file
    ]
    warnings: list[str] = []
    assert remove_recorded(records, warnings.append) == []
    assert os.lstat(unsure).st_ino == inode and other.is_socket()
    assert warnings == [f"left {unsure} alone: a killed run was binding it but had not yet recorded which file it made"]
    assert remove_recorded("damaged") == []


# -- paths the worker refuses whatever validation said -------------------------------------


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[Builder]:
    """A Builder of a lab whose folder is tmp_path/run/lab, for the socket part alone."""
    folder = tmp_path / "run" / "lab"
    folder.mkdir(parents=True)
    lab = Lab("lab", Topology("lab"), folder, Loop(), lambda level, message: None)
    yield Builder(lab)
    for port in lab.ports.values():
        port.close()
    lab.files.release_all()
    lab.loop.close()


def socket_node(builder: Builder, name: str, **attrs: object) -> Node:
    attrs = {"transport": "stream", "family": "unix", "mode": "listen", **attrs}
    return builder.t.add(Node(name, Kind.SOCKET, attrs))


def refusal(builder: Builder, node: Node) -> str:
    with pytest.raises(RealizeError) as info:
        if node.kind is Kind.SOCKET:
            builder.socket(node)
        else:
            builder.port(None, node, PlannedHub(node.id, None, (node.id,), False, False))
    message = str(info.value)
    assert message.startswith(f"{node.id}: ") and not message.startswith(f"{node.id}: {node.id}:"), message
    return message


def test_relative_paths_that_lead_out_of_the_labs_folder_are_refused(builder, tmp_path):
    folder = builder.lab.runtime_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "sub").symlink_to(elsewhere)
    (folder / "last.sock").symlink_to(elsewhere / "target.sock")
    for text in ("../x.sock", "sub/x.sock", "last.sock"):
        message = refusal(builder, socket_node(builder, "s1", address=text))
        assert f"s1: {text} leads out of the lab's folder {folder}; keep it inside" == message
    dgram_node = socket_node(builder, "d1", transport="dgram", address="../peer.sock", local="d1.sock")
    assert "d1: ../peer.sock leads out of the lab's folder" in refusal(builder, dgram_node)
    assert os.listdir(elsewhere) == [] and sorted(os.listdir(tmp_path / "run")) == ["lab"]


def test_an_absolute_path_needs_external(builder, tmp_path):
    path = tmp_path / "abs.sock"
    message = refusal(builder, socket_node(builder, "s1", address=str(path)))
    assert message.startswith(f"s1: {path} is outside the lab's folder; set external: true")
    assert not path.exists()
    builder.socket(socket_node(builder, "s2", address=str(path), external=True))
    assert path.is_socket()


def test_the_labs_own_files_are_no_socket_path(builder):
    folder = builder.lab.runtime_dir
    for name in ("control.sock", "state.json", "lock"):
        message = refusal(builder, socket_node(builder, "s1", address=name))
        assert message == f"s1: {name} is the lab's own {name}; choose another name"
    absolute = socket_node(builder, "s2", address=str(folder / "control.sock"), external=True)
    assert "is the lab's own control.sock" in refusal(builder, absolute)
    # A QEMU guest NIC named control would serve control.sock.
    guest = builder.t.add(Node("control", Kind.GUEST_NIC, {"mac": "52:54:00:00:00:07", "qemu": True}))
    assert refusal(builder, guest) == "control: control.sock is the lab's own control.sock; choose another name"


def test_two_nodes_of_one_lab_on_one_path(builder):
    first = builder.socket(socket_node(builder, "s0", address="a.sock"))
    builder.lab.ports["s0"] = first
    path = builder.lab.runtime_dir / "a.sock"
    inode = os.lstat(path).st_ino
    second = socket_node(builder, "d0", transport="dgram", address="peer.sock", local="a.sock")
    assert refusal(builder, second) == f"d0: {path} is already the socket of s0 in this lab"
    assert os.lstat(path).st_ino == inode  # s0's socket, still there


def test_an_over_long_path_is_refused_naming_node_path_and_limit(builder):
    text = "s" * 100
    path = builder.lab.runtime_dir / text
    size = len(str(path).encode())
    assert size > SUN_PATH_MAX >= len(text)  # short enough alone: the lab's folder makes it too long
    message = refusal(builder, socket_node(builder, "s1", address=text))
    assert message == f"s1: the socket path {path} is {size} bytes long; a unix socket path holds at most 107"
