"""Faults: SIGKILL of the worker, of the app that started it, or of both the
worker and its watchdog, at random moments during start, run and stop, round
after round. Afterwards no lab object is left and the next run starts cleanly."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from qnet_tui import protocol
from qnet_tui.lab import netns
from qnet_tui.lab.runstate import is_running

from .conftest import lab_namespaces, wait_for

ROUNDS = int(os.environ.get("QNET_FAULT_ROUNDS", "30"))  # CI; more for a long hunt
VM_ROUNDS = int(os.environ.get("QNET_FAULT_VM_ROUNDS", "8"))  # each boots a VM under TCG
TOPOLOGY = (
    "version: 1\nname: {name}\nnodes:\n  eth0: {{kind: host_nic, ipv4: 10.0.0.1/24}}\n  br0: {{kind: bridge}}\n"
    "  tap0: {{kind: tap}}\n  hub0: {{kind: hub, vlan: 0}}\n"
    "  vm1: {{kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.0.0.11/24}}\n"
    "links: [[eth0, br0], [br0, tap0], [tap0, hub0], [hub0, vm1]]\n"
)


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# A VM guest on the same hub: its QEMU must go with the lab, however the lab goes.
WITH_VM = TOPOLOGY.replace(
    "links: [",
    "  r1: {{kind: guest, vm: true}}\n  r1e0: {{kind: guest_nic, guest: r1, mac: '52:54:00:00:00:02'}}\n"
    "links: [[hub0, r1e0], ",
)


def qemus_of(name: str) -> list[int]:
    """QEMU processes started for lab `name` (their files are in its folder)."""
    folder = str(protocol.lab_dir(name)).encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"qemu-system-x86_64") and any(folder in a for a in argv):
                out.append(int(entry))
    return out


@pytest.fixture
def name() -> Iterator[str]:
    """The fault test's lab: whatever a failing round leaves of it is removed
    after the test (its failure said what was left), never left on the machine."""
    lab = f"f{uuid.uuid4().hex[:8]}"
    yield lab
    for pid in qemus_of(lab):
        kill(pid)
    for ns in lab_namespaces(lab):
        netns.remove(ns)


@pytest.mark.parametrize(
    ("topology", "rounds", "longest"),
    [(TOPOLOGY, ROUNDS, 1.2), (WITH_VM, VM_ROUNDS, 3.0)],
    ids=["namespaces", "with-a-vm"],
)
def test_random_kills_leave_nothing(tmp_path, runtime, topology, rounds, longest, name):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    file = tmp_path / "lab.yaml"
    file.write_text(topology.format(name=name))
    run = [sys.executable, "-m", "qnet_tui", "run", str(file), "--interval", "0.2"]
    for round_ in range(rounds):
        what = rng.choice(["worker", "worker+watchdog", "app", "stopping"])
        delay = rng.uniform(0.0, longest)  # inside start (namespaces half made, a VM starting) or while running
        if what == "app":
            app = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import os, subprocess, sys, time\n"
                    "subprocess.Popen([*sys.argv[1:], str(os.getpid())])\n"
                    "time.sleep(60)",
                    *run,
                    "--exit-with-parent",
                ],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            kill(app.pid)
            app.wait()
        else:
            worker = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if what == "stopping":
                worker.send_signal(signal.SIGTERM)
                time.sleep(rng.uniform(0.0, 0.2))  # somewhere in the teardown
            watchdogs = children(worker.pid)
            kill(worker.pid)
            if what == "worker+watchdog":
                for pid in watchdogs:
                    kill(pid)
            worker.wait()
        # Whatever survived finishes on its own (a worker stopping, a watchdog clearing).
        wait_for(lambda: not is_running(name), 20, f"round {round_} ({what}) to settle, seed {seed}")
        wait_for(lambda: not qemus_of(name), 10, f"round {round_} ({what}): its QEMU to end, seed {seed}")
    # The next run starts cleanly, removing what a killed run and its killed watchdog left.
    final = subprocess.run([*run, "--duration", "0.3"], capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"
    assert lab_namespaces(name) == [], f"seed {seed}"
    assert not protocol.state_path(name).exists()
    assert not protocol.lab_dir(name).exists(), list(protocol.lab_dir(name).iterdir())  # no overlay, log, socket
    assert qemus_of(name) == []


REAPER = """\
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans come here, not to init (as with systemd --user)
app = subprocess.Popen([sys.executable, "-c", "import os, subprocess, sys; "
                        "subprocess.Popen([*sys.argv[1:], str(os.getpid())]); os._exit(0)", *sys.argv[1:]])
app.wait()  # the app is gone before its worker could ask to die with it
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.waitpid(-1, 0)  # the orphaned worker, and its watchdog
    except ChildProcessError:
        break
"""


def test_a_worker_whose_app_died_at_once_stops_even_under_a_subreaper(tmp_path, runtime):
    name = f"t{uuid.uuid4().hex[:8]}"
    file = tmp_path / f"{name}.yaml"
    file.write_text(f"version: 1\nname: {name}\nnodes:\n  hub0: {{kind: hub, vlan: 0}}\n")
    reaper = subprocess.run(
        [sys.executable, "-c", REAPER, sys.executable, "-m", "qnet_tui", "run", str(file), "--exit-with-parent"],
        timeout=60,
        capture_output=True,
    )
    assert reaper.returncode == 0
    assert not is_running(name) and not lab_namespaces(name)
