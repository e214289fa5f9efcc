"""VM guests booted by the lab (the built-in guest image under TCG here):
a VM and a namespace guest ping each other through a hub, the router sample
forwards through a VM router, a VM that dies is marked and restarts and
reconnects, and a killed worker leaves no QEMU behind."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qnet_tui import protocol
from qnet_tui.lab import vm

from .conftest import wait_for, watchdog_of

pytestmark = pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason="needs qemu-system-x86_64")

VM_AND_NS = """\
version: 1
name: x
nodes:
  hub0: {kind: hub, vlan: 0}
  vm1: {kind: guest, vm: true}
  vm1e0: {kind: guest_nic, guest: vm1, mac: '52:54:00:00:09:01', ipv4: 10.9.0.1/24}
  ns2: {kind: guest_nic, mac: '52:54:00:00:09:02', ipv4: 10.9.0.2/24}
links: [[hub0, vm1e0], [hub0, ns2]]
"""


def booted(lab, guest: str) -> None:
    """Until the guest's /init has set its NICs up (it says so on the console)."""
    log = Path(protocol.lab_dir(lab.name)) / f"{guest}.console.log"
    wait_for(lambda: log.exists() and "qnet-guest: ready" in log.read_text(errors="replace"), 60, f"{guest} to boot")


def vm_state(lab, guest: str, after: float) -> str:
    return lab.latest(after)["vms"][guest]["state"]


def qemu_pid(lab, guest: str) -> int:
    return int((Path(protocol.lab_dir(lab.name)) / f"{guest}.pid").read_text())


def ping(lab, node: str, address: str) -> None:
    result = lab.exec(node, "ping", "-c", "2", "-W", "3", address)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_vm_and_a_namespace_guest_ping_each_other(make_lab):
    lab = make_lab("", text=VM_AND_NS)
    states = {vm_state(lab, "vm1", 0.0)}
    wait_for(lambda: states.add(vm_state(lab, "vm1", time.time())) or "running" in states, 60, "the VM running")
    assert "booting" in states  # until the guest's /init said it was ready
    booted(lab, "vm1")
    ping(lab, "ns2", "10.9.0.1")
    ping(lab, "vm1", "10.9.0.2")  # through the VM's console shell
    ping(lab, "vm1e0", "10.9.0.2")  # a NIC of the VM: the same machine
    s = lab.latest(time.time())
    assert s["vms"]["vm1"] == {"state": "running", "reason": None, "accel": "tcg", "links": {"vm1e0": True}}
    assert s["vlans"]["0"]["ports"]["vm1e0"]["kind"] == "stream" and s["vlans"]["0"]["protocols"]["icmp"] >= 8
    for demo in (
        ["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.0.2"],
        ["arping", "-c", "1", "-I", "eth0", "10.9.0.2"],
    ):
        sent = lab.exec("vm1e0", *demo)  # what the app's g sends from a VM's NIC
        assert sent.returncode == 0, sent.stdout + sent.stderr
    failed = lab.exec("vm1", "sh", "-c", "echo out; exit 3")
    assert (failed.returncode, failed.stdout) == (3, "out\n")


def test_the_router_sample_forwards_through_a_vm_router(make_lab):
    lab = make_lab("vm-router.yaml")
    booted(lab, "router")
    before = lab.latest(time.time())
    ping(lab, "hostA", "10.0.2.10")
    ping(lab, "hostB", "10.0.1.10")
    after = lab.latest(time.time())
    for vlan in ("1", "2"):  # both VLANs carried the pings, the router's ports among them
        grew = after["vlans"][vlan]["protocols"]["icmp"] - before["vlans"][vlan]["protocols"]["icmp"]
        assert grew >= 8, (vlan, grew)
    assert after["vlans"]["1"]["ports"]["router-v1"]["rx_frames"] > 0
    assert after["vlans"]["2"]["ports"]["router-v2"]["rx_frames"] > 0


def test_a_vm_that_dies_is_marked_and_restarts(make_lab):
    lab = make_lab("", text=VM_AND_NS)
    booted(lab, "vm1")
    os.kill(qemu_pid(lab, "vm1"), signal.SIGKILL)
    wait_for(lambda: vm_state(lab, "vm1", time.time()) == "crashed", 15, "the VM marked crashed")
    assert "killed by signal 9" in lab.latest(time.time())["vms"]["vm1"]["reason"]
    assert any("vm1: the VM died" in line for line in lab.errors)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(protocol.control_path(lab.name)))
        client.sendall(protocol.encode(protocol.VmControl("vm1")))
        wait_for(lambda: vm_state(lab, "vm1", time.time()) == "running", 30, "the restarted VM")
    log = Path(protocol.lab_dir(lab.name)) / "vm1.console.log"
    wait_for(lambda: log.read_text(errors="replace").count("qnet-guest: ready") == 2, 60, "the second boot")
    ping(lab, "ns2", "10.9.0.1")  # the lab redialled the new QEMU's NIC
    assert lab.latest(time.time())["vlans"]["0"]["ports"]["vm1e0"]["connected"]


def test_a_killed_worker_and_watchdog_leave_no_qemu(make_lab):
    lab = make_lab("", text=VM_AND_NS)
    pid = qemu_pid(lab, "vm1")
    watchdog = watchdog_of(lab.proc.pid)
    os.kill(watchdog, signal.SIGKILL)
    lab.proc.kill()
    lab.proc.wait()
    # QEMU goes with its worker (a death signal set before it started).
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 10, "QEMU to end")
    # The next run of the lab removes what is left of it, and says so.
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "removed what a killed run" in result.stderr, result.stderr
    folder = Path(protocol.lab_dir(lab.name))
    assert not folder.exists() or not list(folder.glob("vm1.*"))  # no pid file, socket, initrd or log left


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_console_verb_attaches_a_terminal_until_ctrl_bracket(make_lab):
    lab = make_lab("", text=VM_AND_NS)
    booted(lab, "vm1")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "console", str(lab.file), "vm1e0"],  # a NIC names its guest
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = bytearray()

    def screen_has(text: bytes) -> bool:
        while select.select([controller], [], [], 0.1)[0]:
            try:
                seen.extend(os.read(controller, 4096))
            except OSError:
                break
        return text in seen

    try:
        wait_for(lambda: screen_has(b"qnet-guest: ready vm1"), 20, "the scrollback")  # printed before we came
        os.write(controller, b"echo sum-$((40+2))\r")
        wait_for(lambda: screen_has(b"sum-42"), 20, "the guest's answer")
        os.write(controller, b"\x1d")
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        os.close(controller)


def test_a_disk_image_boots_through_an_overlay_and_stays_untouched(make_lab, tmp_path):
    base = tmp_path / "disk.qcow2"
    subprocess.run([vm.QEMU_IMG, "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    before = base.read_bytes()
    text = VM_AND_NS.replace("vm1: {kind: guest, vm: true}", f"vm1: {{kind: guest, vm: true, disk: '{base}'}}")
    lab = make_lab("", text=text)
    overlay = Path(protocol.lab_dir(lab.name)) / "vm1.overlay.qcow2"
    info = subprocess.run([vm.QEMU_IMG, "info", "-U", str(overlay)], capture_output=True, text=True, check=True)
    assert f"backing file: {base}" in info.stdout and "backing file format: qcow2" in info.stdout
    wait_for(lambda: vm_state(lab, "vm1", time.time()) == "running", 15, "the VM")  # its firmware finds no system
    assert lab.stop() == 0
    assert base.read_bytes() == before and not overlay.exists()


def test_a_kernel_of_ones_own_boots(make_lab):
    from qnet_tui.lab import guestimage

    image = guestimage.ensure()  # built once, as the lab builds it for the tests above
    text = VM_AND_NS.replace(
        "vm1: {kind: guest, vm: true}",
        f"vm1: {{kind: guest, vm: true, kernel: '{image.kernel}', initrd: '{image.initrd}', append: quiet}}",
    )
    lab = make_lab("", text=text)
    booted(lab, "vm1")  # the image's /init, with no configuration of ours: no addresses
    cmdline = lab.exec("vm1", "cat", "/proc/cmdline")
    assert cmdline.returncode == 0 and cmdline.stdout.strip() == "console=ttyS0 quiet"


def test_a_pulled_cable_of_a_vm_nic_is_qmp_set_link(make_lab):
    lab = make_lab("", text=VM_AND_NS)
    booted(lab, "vm1")
    ping(lab, "ns2", "10.9.0.1")

    def carrier() -> str:
        return lab.exec("vm1", "cat", "/sys/class/net/eth0/carrier").stdout.strip()

    assert carrier() == "1"
    done = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "link", str(lab.file), "hub0", "vm1e0", "down"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: lab.latest(time.time())["vms"]["vm1"]["links"] == {"vm1e0": False}, 10, "the VM NIC down")
    wait_for(lambda: carrier() == "0", 20, "the guest to see no carrier")
    assert lab.exec("ns2", "ping", "-c", "2", "-W", "1", "10.9.0.1").returncode != 0
    done = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "link", str(lab.file), "hub0", "vm1e0", "up"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: carrier() == "1", 20, "the guest's carrier back")
    wait_for(lambda: lab.exec("ns2", "ping", "-c", "1", "-W", "2", "10.9.0.1").returncode == 0, 20, "ping back")


def test_apply_adds_a_vm_guest_and_restarts_it_when_its_settings_change(make_lab):
    without = VM_AND_NS.replace("  vm1: {kind: guest, vm: true}\n", "").replace(
        "  vm1e0: {kind: guest_nic, guest: vm1, mac: '52:54:00:00:09:01', ipv4: 10.9.0.1/24}\n", ""
    )
    lab = make_lab("", text=without.replace("links: [[hub0, vm1e0], [hub0, ns2]]", "links: [[hub0, ns2]]"))
    text = VM_AND_NS.replace("name: x", f"name: {lab.name}")

    def apply(text: str) -> str:
        lab.file.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "qnet_tui", "apply", str(lab.file)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "+ guest vm1" in apply(text)
    booted(lab, "vm1")
    ping(lab, "ns2", "10.9.0.1")
    first = qemu_pid(lab, "vm1")

    said = apply(text.replace("vm: true", "vm: true, memory: 192"))
    assert "VM guest vm1 restarts with its new settings" in said

    def restarted() -> bool:
        try:
            return qemu_pid(lab, "vm1") != first
        except (FileNotFoundError, ValueError):  # the new pid file is not written yet
            return False

    wait_for(restarted, 30, "a new QEMU")
    booted(lab, "vm1")
    ping(lab, "ns2", "10.9.0.1")  # the hub's port for vm1e0 dialled the new QEMU
    assert "-m 192" in " ".join(Path(f"/proc/{qemu_pid(lab, 'vm1')}/cmdline").read_text().split("\0"))
    assert not Path(f"/proc/{first}").exists()
    assert lab.stop() == 0
