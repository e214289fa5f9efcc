"""A QEMU on another machine joins a hub through a dgram socket node: two
network namespaces stand for two machines joined by a veth underlay. Machine
a runs the lab (a hub with a namespace guest and a UDP socket node); machine b
runs a real qemu-system-x86_64 booting the built-in guest image, its NIC on
`-netdev dgram` aimed at the socket node. QEMU's dgram netdev sends one
Ethernet frame per datagram, which is what the socket node speaks."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qnet_tui.lab import guestimage, netns
from qnet_tui.lab.guestinit import READY_MARK, GuestConfig, NicConfig
from tests.lab.conftest import underlay, wait_for

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64 (Debian: qemu-system-x86)")

# Not test_machines.py's 10.77.0.0/24: the two files may run side by side.
A_ADDR, B_ADDR = "10.78.0.1", "10.78.0.2"
LAB_PORT, QEMU_PORT = 5555, 5556
MAC = "52:54:00:78:00:02"

TOPOLOGY = f"""version: 1
name: x
nodes:
  hub10: {{kind: hub, vlan: 10}}
  vm1: {{kind: guest_nic, mac: "52:54:00:78:00:01", ipv4: 10.0.10.1/24}}
  q0: {{kind: socket, transport: dgram, family: inet, local: "{A_ADDR}:{LAB_PORT}", address: "{B_ADDR}:{QEMU_PORT}"}}
links:
  - [vm1, hub10]
  - [q0, hub10]
"""


@pytest.fixture(scope="module")
def guest_image() -> guestimage.GuestImage:
    try:
        return guestimage.ensure()  # the lab's own cache: built once, shared with the VM guest tests
    except guestimage.GuestImageError as exc:
        pytest.skip(f"the guest image cannot be built here: {exc}")


@pytest.fixture
def machines() -> Iterator[tuple[str, str]]:
    a, b = f"qd{uuid.uuid4().hex[:6]}a", f"qd{uuid.uuid4().hex[:6]}b"
    netns.create(a)
    netns.create(b)
    try:
        underlay(a, b, A_ADDR, B_ADDR)
        yield a, b
    finally:
        netns.remove(b)
        netns.remove(a)


def qemu_args(lab, node: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "qemu-args", str(lab.file), node], capture_output=True, text=True, check=True
    )
    return shlex.split(done.stdout)


def test_a_qemu_on_another_machine_joins_a_hub_over_dgram(
    make_lab, machines: tuple[str, str], guest_image: guestimage.GuestImage, tmp_path: Path
) -> None:
    a, b = machines
    lab = make_lab("", text=TOPOLOGY, inside=a)
    netdev = (
        f"dgram,id=n0,local.type=inet,local.host={B_ADDR},local.port={QEMU_PORT},"
        f"remote.type=inet,remote.host={A_ADDR},remote.port={LAB_PORT}"
    )
    # What the README tells the user to paste on machine b is what qemu-args prints.
    assert qemu_args(lab, "q0")[:2] == ["-netdev", netdev.replace("id=n0", "id=q0")]
    guest = GuestConfig("far", (NicConfig(MAC, ("10.0.10.2/24",)),))
    console = tmp_path / "console.log"
    argv = [
        QEMU, "-M", "q35", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none",
        "-monitor", "none", "-serial", f"file:{console}", "-no-reboot",
        "-kernel", str(guest_image.kernel), "-initrd", str(guest_image.initrd_for(guest, tmp_path / "initrd")),
        "-append", guestimage.APPEND,
        "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={MAC},romfile=",
    ]  # fmt: skip
    # This machine's KVM is software (stock kernels do not boot on it): TCG, as the lab's VM guests fall back to.
    vm = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: netns.enter(b)
    )
    started = time.monotonic()
    try:

        def answers() -> bool:
            assert vm.poll() is None, f"QEMU exited: {vm.stderr.read()}"
            return lab.exec("vm1", "ping", "-c", "1", "-W", "1", "10.0.10.2").returncode == 0

        wait_for(answers, 30, "the guest on machine b to answer ping")
        answered = time.monotonic() - started
        assert f"{READY_MARK} far" in console.read_text(errors="replace")
        ping = lab.exec("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.10.2")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # A full-size frame (1514 bytes) is a 1542-byte datagram: the kernels fragment it on the 1500-byte underlay.
        big = lab.exec("vm1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", "10.0.10.2")
        assert big.returncode == 0, big.stdout + big.stderr
        seen = time.time()
        # ARP and at least six echo replies came in over UDP from machine b.
        port = wait_for(
            lambda: (p := lab.vlan("10", seen)["ports"]["q0"])["rx_frames"] >= 7 and p, 10, "q0's rx frames"
        )
        assert port["tx_frames"] >= 7 and port["kind"] == "dgram", port
        print(f"guest on machine b answered {answered:.1f} s after QEMU started; q0: {port}")
    finally:
        vm.kill()
        vm.wait()
    assert lab.stop() == 0, "\n".join(lab.errors)
