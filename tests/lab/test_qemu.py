"""A real QEMU on the far side of a socket node: its own user-mode network
(slirp, 10.0.2.2) behind one of its hubs, plugged into our lab with the
arguments `qnet-tui qemu-args` prints. A namespace guest of the lab pings
slirp's gateway through our hub, over stream and over dgram."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .conftest import wait_for

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64 (Debian: qemu-system-x86)")

BASE = [QEMU or "qemu", "-machine", "none", "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none"]
Q35 = [QEMU or "qemu", "-machine", "q35", "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none"]
SLIRP = ["-netdev", "user,id=u0,net=10.0.2.0/24", "-netdev", "hubport,id=hu,hubid=0,netdev=u0"]


def qemu_args(lab, node: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "qemu-args", str(lab.file), node], capture_output=True, text=True, check=True
    )
    return shlex.split(result.stdout)


def topology(socket_node: str) -> str:
    return (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
        "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.0.2.15/24}\n"
        f"  q0: {socket_node}\n"
        "links: [[hub0, vm1], [hub0, q0]]\n"
    )


@contextlib.contextmanager
def plugged_in(lab, port: str, argv: list[str]) -> Iterator[subprocess.Popen]:
    """QEMU started with argv, once the lab shows it connected on port; killed after."""
    vm = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: lab.vlan("0", after=time.time())["ports"][port]["connected"] or vm.poll() is not None,
            20,
            "QEMU to plug in",
        )
        assert vm.poll() is None, vm.stderr.read()
        yield vm
    finally:
        vm.kill()
        vm.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping_slirp(make_lab, socket_node: str) -> None:
    lab = make_lab("", text=topology(socket_node))
    argv = qemu_args(lab, "q0")
    assert argv[0] == "-netdev" and argv[2] == "-device"
    # This QEMU has no bus for the printed -device: its hub port plays the NIC.
    netdev = argv[:2]
    with plugged_in(lab, "q0", [*BASE, *SLIRP, *netdev, "-netdev", "hubport,id=hq,hubid=0,netdev=q0"]):
        result = lab.exec("vm1", "ping", "-c", "3", "-i", "0.3", "-W", "2", "10.0.2.2")
        assert result.returncode == 0, result.stdout + result.stderr
        ports = lab.vlan("0", after=time.time())["ports"]
        assert ports["q0"]["rx_frames"] >= 4 and ports["q0"]["tx_frames"] >= 4  # ARP and ICMP both ways


def test_stream_socket_to_qemu(make_lab):
    ping_slirp(make_lab, "{kind: socket, transport: stream, mode: listen, address: q0.sock}")


def test_dgram_socket_to_qemu(make_lab):
    ours, theirs = free_port(), free_port()
    ping_slirp(
        make_lab,
        f"{{kind: socket, transport: dgram, family: inet, address: '127.0.0.1:{theirs}', local: '127.0.0.1:{ours}'}}",
    )


def test_qemu_accepts_the_printed_arguments_as_given(make_lab):
    lab = make_lab("", text=topology("{kind: socket, transport: stream, mode: listen, address: q0.sock}"))
    argv = qemu_args(lab, "q0")
    # A machine with a PCI bus for the printed NIC; no disk, so it idles in its firmware.
    with plugged_in(lab, "q0", [*Q35, *argv]):
        pass


def test_guest_nic_that_is_a_qemu_vm(make_lab):
    """A guest NIC marked qemu: true is served as a socket; the VM started with
    qemu-args' output (as given) plugs into the hub and the lab's namespace
    guest reaches the hub through it."""
    text = (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
        "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.0.2.15/24}\n"
        "  vm2: {kind: guest_nic, mac: '52:54:00:00:00:02', model: e1000, qemu: true}\n"
        "links: [[hub0, vm1], [hub0, vm2]]\n"
    )
    lab = make_lab("", text=text)
    argv = qemu_args(lab, "vm2")
    assert argv[2:] == ["-device", "e1000,netdev=vm2,mac=52:54:00:00:00:02"]
    assert ",server=on," in argv[1]  # QEMU listens, the lab dials
    with plugged_in(lab, "vm2", [*Q35, *argv]):
        assert lab.exec("vm2", "true").returncode == 1  # no namespace: it is a VM
        # A lab restart: the VM was never told, and it is plugged in again.
        assert lab.stop() == 0
        again = subprocess.Popen(
            [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--json", "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 10
            for line in again.stdout:  # a statistics line five times a second
                if json.loads(line)["vlans"]["0"]["ports"]["vm2"]["connected"] or time.monotonic() > deadline:
                    break
            assert json.loads(line)["vlans"]["0"]["ports"]["vm2"]["connected"], "the VM did not plug in again"
        finally:
            again.terminate()
            assert again.wait(30) == 0
