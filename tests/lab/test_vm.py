"""A VM guest's process and wiring, with a real QEMU (no guest system
needed): the lab dials each NIC's stream server and redials after the VM
restarts; QMP answers and sets links; a VM a killed run left is found by
its pid file and ended, and nothing else is."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qnet_tui.lab import vm
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.qmp import Qmp
from qnet_tui.lab.sockets import StreamPort
from qnet_tui.lab.unixpaths import SocketFiles
from qnet_tui.lab.vm import VmFiles, VmNic, VmSpec

from .conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason="needs qemu-system-x86_64")

SPEC = VmSpec("g1", [VmNic("g1e0", "52:54:00:00:07:01", "virtio-net-pci"), VmNic("g1e1", "52:54:00:00:07:02", "e1000")])


def run_until(loop: Loop, done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout

    def tick() -> None:
        if done() or time.monotonic() > deadline:
            loop.stop()
        else:
            loop.call_later(0.02, tick)

    loop.call_later(0, tick)
    loop.run()
    assert done(), f"no {what} within {timeout} s"


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    return folder


def test_the_lab_dials_each_nic_and_redials_after_the_vm_restarts(folder):
    files, loop, logs = VmFiles(folder, "g1"), Loop(), []  # logs: (level, text) pairs
    sockets = SocketFiles(folder, [], lambda: None)
    proc = vm.start(SPEC, files, "tcg")
    try:
        ports = [
            StreamPort(
                nic.id, loop, lambda *said: logs.append(said), "unix", "connect", files.nic_socket(nic.id).name, sockets
            )
            for nic in SPEC.nics
        ]
        for port in ports:
            port.start()
        run_until(loop, lambda: all(p.connected for p in ports), 20, "connection to both NICs")
        proc.kill()
        proc.wait()
        run_until(loop, lambda: not any(p.connected for p in ports), 10, "hang-up")
        proc = vm.start(SPEC, files, "tcg")
        run_until(loop, lambda: all(p.connected for p in ports), 20, "reconnection after the VM's restart")
    finally:
        vm.stop(proc)
        loop.close()
    assert proc.returncode is not None


def test_qmp_tells_the_state_and_sets_links(folder):
    files, loop = VmFiles(folder, "g1"), Loop()
    proc = vm.start(SPEC, files, "tcg")
    replies: dict[str, tuple] = {}
    closed: list[str] = []
    try:
        wait_for(lambda: files.qmp.exists() or proc.poll() is not None, 20, "the QMP socket")
        qmp = Qmp(loop, str(files.qmp), lambda name, data: None, closed.append)
        qmp.connect()
        qmp.command("query-status", reply=lambda value, error: replies.setdefault("status", (value, error)))
        qmp.command("set_link", {"name": "nic1", "up": False}, lambda v, e: replies.setdefault("down", (v, e)))
        qmp.command("set_link", {"name": "nope", "up": False}, lambda v, e: replies.setdefault("nope", (v, e)))
        run_until(loop, lambda: len(replies) == 3, 20, "QMP replies")
        assert replies["status"][0]["status"] == "running" and replies["status"][1] is None
        assert replies["down"] == ({}, None)
        assert replies["nope"][0] is None and "nope" in replies["nope"][1]
        proc.kill()
        run_until(loop, lambda: closed, 10, "QMP to see QEMU gone")
        assert closed == ["QEMU closed its QMP socket"]
    finally:
        vm.stop(proc)
        loop.close()


def test_a_leftover_vm_is_ended_by_its_pid_file_and_a_stranger_is_not(folder):
    files = VmFiles(folder, "g1")
    proc = subprocess.Popen(vm.qemu_argv(SPEC, files, "tcg"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: files.pidfile.exists() and files.pidfile.read_text().strip(), 20, "the pid file")
        stranger = folder / "stranger.pid"
        stranger.write_text(f"{os.getpid()}\n")  # this test's own pid: no QEMU of that pid file
        assert vm.end_recorded(stranger) is False and stranger.exists()
        assert vm.end_recorded(files.pidfile) is True
        assert proc.wait(10) == -9 and not files.pidfile.exists()
        assert vm.end_recorded(files.pidfile) is False  # gone already: nothing to do
    finally:
        proc.kill()
        proc.wait()
