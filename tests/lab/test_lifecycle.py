"""A lab leaves nothing behind: after stop, Ctrl-C, SIGTERM, --duration, a
control client's stop, or SIGKILL (cleaned by the watchdog, or by the next
run when the watchdog died too)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from qnet_tui import protocol

from .conftest import lab_namespaces, wait_for, watchdog_of


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(make_lab, sig):
    lab = make_lab("seed-path.yaml")
    assert len(lab_namespaces(lab.name)) == 4  # host side, outside host, two guests
    assert lab.stop(sig) == 0
    assert lab_namespaces(lab.name) == []
    assert not protocol.state_path(lab.name).exists()
    assert any("everything it made is removed" in line for line in lab.errors)


def test_duration_stops_cleanly(make_lab):
    lab = make_lab("two-vlans.yaml", "--duration", "1")
    assert lab.proc.wait(30) == 0
    assert lab_namespaces(lab.name) == []
    assert len(lab.stats) >= 2


def test_control_client_stops_lab(make_lab):
    lab = make_lab("direct-peer.yaml")
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(protocol.control_path(lab.name)))
        reader = client.makefile("rb")
        hello = protocol.decode(reader.readline(), protocol.WORKER)
        assert hello == protocol.Hello(lab.name, hello.file, lab.proc.pid, protocol.PROTOCOL_VERSION)
        assert protocol.decode(reader.readline(), protocol.WORKER) == protocol.State(protocol.LabState.RUNNING)
        stats = next(m for m in (protocol.decode(x, protocol.WORKER) for x in reader) if isinstance(m, protocol.Stats))
        assert "vm1-tap0" in stats.peers
        client.sendall(protocol.encode(protocol.Stop()))
        states = [m["state"] for m in map(json.loads, reader) if m["type"] == "state"]
        assert states == ["stopping", "stopped"]
    assert lab.proc.wait(30) == 0
    assert lab_namespaces(lab.name) == []


def test_second_run_is_refused(make_lab):
    lab = make_lab("seed-path.yaml")
    again = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file)], capture_output=True, text=True, timeout=30
    )
    assert again.returncode == 1
    assert f"lab {lab.name} is already running (pid {lab.proc.pid}" in again.stderr
    assert len(lab_namespaces(lab.name)) == 4  # the running lab is untouched
    assert protocol.state_path(lab.name).exists()


def test_sigkill_watchdog_cleans_up(make_lab):
    lab = make_lab("seed-path.yaml")
    lab.proc.kill()
    lab.proc.wait(10)
    wait_for(lambda: not lab_namespaces(lab.name), 10, "the watchdog to remove the namespaces")
    assert not protocol.state_path(lab.name).exists()


def dead(pid: int) -> bool:
    """Gone, or a zombie (SIGKILLed, not yet reaped by its new parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_sigkill_of_worker_and_watchdog_then_next_run_cleans(make_lab):
    lab = make_lab("seed-path.yaml")
    watchdog = watchdog_of(lab.proc.pid)
    os.kill(watchdog, signal.SIGKILL)
    lab.proc.kill()
    lab.proc.wait(10)
    wait_for(lambda: dead(watchdog), 10, "the watchdog to die")  # then nobody is left who could clean up
    left = lab_namespaces(lab.name)
    assert len(left) == 4 and protocol.state_path(lab.name).exists()  # nobody cleaned: the next run must
    again = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--duration", "0.5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "removed what a killed run of lab" in err and all(ns in err for ns in left)
    assert lab_namespaces(lab.name) == []


def test_validation_errors_start_nothing(make_lab):
    lab = make_lab("seed-path.yaml", wait=False, text=("version: 1\nname: x\nnodes:\n  h0: {kind: hub, vlan: 99999}\n"))
    assert lab.proc.wait(30) == 1
    err = "\n".join(lab.errors)
    assert "vlan must be from 0 to 4095" in err and "nothing was started" in err
    assert lab_namespaces(lab.name) == []


def test_failed_start_leaves_nothing(make_lab):
    # A socket address that cannot be bound fails the start halfway through.
    lab = make_lab(
        "qemu-socket.yaml",
        wait=False,
        text=(
            "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
            "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01'}\n"
            "  s0: {kind: socket, transport: stream, mode: listen, address: /nonexistent/dir/s.sock, external: true}\n"
            "links: [[hub0, vm1], [hub0, s0]]\n"
        ),
    )
    assert lab.proc.wait(30) == 1
    assert any("s0: cannot listen on /nonexistent/dir/s.sock" in line for line in lab.errors), lab.errors
    assert lab_namespaces(lab.name) == []


def test_exec_becomes_the_command(make_lab):
    lab = make_lab("seed-path.yaml")
    assert lab.exec("vm1", "sh", "-c", "exit 3").returncode == 3
    missing = lab.exec("vm1", "no-such-program")
    assert missing.returncode == 127 and "command not found: no-such-program" in missing.stderr
    # The exec process is the command: a signal to it reaches the program, and nothing is left running.
    sleeper = lab.spawn("vm1", "sleep", "300")
    comm = Path(f"/proc/{sleeper.pid}/comm")
    wait_for(lambda: comm.read_text().strip() == "sleep", 10, "sleep to start")
    sleeper.terminate()
    assert sleeper.wait(10) == -signal.SIGTERM


def test_sigterm_while_the_lab_is_built_leaves_nothing(tmp_path, runtime):
    """SIGTERM while the namespaces are still being made ends the worker at
    once (a namespace half made by pyroute2's helper process could outlive an
    interrupted teardown); its watchdog removes what the state file records."""
    name = f"t{uuid.uuid4().hex[:8]}"
    guests = "".join(f"  g{i}: {{kind: guest_nic, mac: '52:54:00:00:0a:{i:02x}'}}\n" for i in range(30))
    links = ", ".join(f"[hub0, g{i}]" for i in range(30))
    file = tmp_path / f"{name}.yaml"
    file.write_text(f"version: 1\nname: {name}\nnodes:\n  hub0: {{kind: hub, vlan: 0}}\n{guests}links: [{links}]\n")
    run = [sys.executable, "-m", "qnet_tui", "run", str(file)]
    proc = subprocess.Popen(
        run,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(lab_namespaces(name)) >= 3 or proc.poll() is not None, 30, "the building to be under way")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, err)
    wait_for(lambda: not lab_namespaces(name), 20, "the watchdog to remove the namespaces")
    again = subprocess.run([*run, "--duration", "0.3"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr  # nothing of it is left that no run recorded
