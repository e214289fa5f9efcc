#!/usr/bin/env python3
"""VM guest to namespace guest, through qnet-tui's hub, against the same VM
on a tap in a Linux bridge, in one run.

    sudo .venv/bin/python benchmarks/vm_path.py [--mb 20] [--pings 50] [--repeat 3]

Both sides boot the built-in guest (same kernel, initrd and configuration,
the accelerator the lab would pick) with one virtio-net NIC, 10.78.0.1/24,
and a namespace at 10.78.0.2/24:

  qnet    `qnet-tui run` with a VM guest and a namespace guest on one hub
          (QEMU's -netdev stream, which the lab dials)
  bridge  the VM on `-netdev tap` in a Linux bridge, the namespace on a
          veth to it (the kernel's path, what libvirt does)

Measured: ping RTT from the namespace to the VM (--pings, 50 ms apart), and
TCP from the VM to the namespace: busybox `dd | nc` in the guest, a counting
receiver in the namespace (the guest has no iperf3). Prints a table and
qnet's ratios; median of --repeat runs. Everything runs in namespaces this
script makes (prefix qvb-, lab 'qnetvmbench') and removes."""

from __future__ import annotations

import argparse
import contextlib
import queue
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qnet_tui import protocol
from qnet_tui.lab import guestimage, netns, vm
from qnet_tui.lab.accel import probe
from qnet_tui.lab.consoleclient import ConsoleClient, run_command
from qnet_tui.lab.guestinit import READY_MARK, GuestConfig, NicConfig

MAC = "52:54:00:00:4e:01"
VM_IP, NS_IP = "10.78.0.1", "10.78.0.2"
PORT = 5001
LAB = "qnetvmbench"
RECEIVER = """\
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0; t0 = None
while d := c.recv(1 << 20):
    t0 = t0 or time.monotonic(); n += len(d)
print(n, time.monotonic() - t0, flush=True)
"""
TOPOLOGY = f"""\
version: 1
name: {LAB}
nodes:
  hub0: {{kind: hub, vlan: 0}}
  vm1: {{kind: guest, vm: true}}
  vm1e0: {{kind: guest_nic, guest: vm1, mac: '{MAC}', ipv4: {VM_IP}/24}}
  ns2: {{kind: guest_nic, mac: '52:54:00:00:4e:02', ipv4: {NS_IP}/24}}
links: [[hub0, vm1e0], [hub0, ns2]]
"""


def wait(what: str, done, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := done():
            return value
        time.sleep(0.05)
    raise SystemExit(f"vm_path: no {what} within {timeout:g} s")


class DirectConsole:
    """A console client straight on QEMU's console socket (the bridge side has
    no lab). It drains the socket all the time, as the lab's relay does: a
    guest whose console output is not read stalls at its next write."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.chunks: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while data := self.sock.recv(65536):
            self.chunks.put(data)

    def type(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes:
        try:
            return self.chunks.get(timeout=timeout)
        except queue.Empty:
            return b""


def measure(ns: str, console, mb: int, pings: int) -> dict[str, float]:
    """Ping from namespace ns to the VM, then TCP from the VM to ns; after a
    warm-up (a guest just booted is still settling: its first pings are slow)."""
    subprocess.run(
        ["ping", "-q", "-c", "10", "-i", "0.1", VM_IP],
        preexec_fn=lambda: netns.enter(ns),
        capture_output=True,
        timeout=60,
    )
    out = subprocess.run(
        ["ping", "-q", "-c", str(pings), "-i", "0.05", VM_IP],
        preexec_fn=lambda: netns.enter(ns),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(PORT)],
        preexec_fn=lambda: netns.enter(ns),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout.readline().strip() == "ready"
    count = mb * 16  # 64 KiB blocks
    run_command(console, ["sh", "-c", f"dd if=/dev/zero bs=65536 count={count} 2>/dev/null | nc {NS_IP} {PORT}"], 300)
    got, seconds = receiver.stdout.readline().split()
    receiver.wait(10)
    return {"rtt_ms": float(rtt.group(1)) if rtt else float("nan"), "tcp_mbit": int(got) * 8 / float(seconds) / 1e6}


def qnet_side(folder: Path, mb: int, pings: int) -> dict[str, float]:
    file = folder / f"{LAB}.yaml"
    file.write_text(TOPOLOGY)
    worker = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "run", str(file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        log = protocol.lab_dir(LAB) / "vm1.console.log"
        wait("qnet VM boot", lambda: log.exists() and READY_MARK in log.read_text(errors="replace"))
        client = ConsoleClient(LAB, "vm1")
        client.open()
        try:
            return measure(netns.node_ns(LAB, "ns2"), client, mb, pings)
        finally:
            client.close()
    finally:
        worker.terminate()
        worker.wait(60)


def bridge_side(folder: Path, image: guestimage.GuestImage, accel: str, mb: int, pings: int) -> dict[str, float]:
    tag = f"qvb-{int(time.time()) % 100000}"
    host, peer = f"{tag}.br", f"{tag}.ns"
    proc = None
    try:
        for ns in (host, peer):
            netns.create(ns)
        with netns.inside(host):
            ipr = IPRoute()
        with ipr:
            ipr.link("add", ifname="br0", kind="bridge")
            ipr.link("add", ifname="v0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": peer})
            br = ipr.link_lookup(ifname="br0")[0]
            ipr.link("set", index=ipr.link_lookup(ifname="v0")[0], master=br, state="up")
            ipr.link("set", index=br, state="up")
            with netns.inside(peer):
                pipr = IPRoute()
            with pipr:
                eth0 = pipr.link_lookup(ifname="eth0")[0]
                pipr.addr("add", index=eth0, address=NS_IP, prefixlen=24)
                pipr.link("set", index=eth0, state="up")
                pipr.link("set", index=pipr.link_lookup(ifname="lo")[0], state="up")
            files = vm.VmFiles(folder, "bvm")
            initrd = image.initrd_for(GuestConfig("bvm", (NicConfig(MAC, (f"{VM_IP}/24",)),)), files.initrd)
            spec = vm.VmSpec("bvm", [], kernel=str(image.kernel), initrd=[str(initrd)])
            tap = ["-netdev", "tap,id=n0,ifname=bvtap,script=no,downscript=no,vhost=off"]
            nic = ["-device", f"virtio-net-pci,netdev=n0,mac={MAC}"]
            with open(files.stderr, "wb") as err:
                proc = subprocess.Popen(
                    vm.qemu_argv(spec, files, accel, [*tap, *nic]),
                    preexec_fn=lambda: netns.enter(host),
                    stdout=err,
                    stderr=err,
                )
            found = wait("QEMU's tap", lambda: ipr.link_lookup(ifname="bvtap"), 20)
            ipr.link("set", index=found[0], master=br, state="up")
            wait(
                "bridge VM boot",
                lambda: files.console_log.exists() and READY_MARK in files.console_log.read_text(errors="replace"),
            )
            console = DirectConsole(files.console)
            return measure(peer, console, mb, pings)
    finally:
        if proc is not None:
            vm.stop(proc)
        for ns in (host, peer):
            with contextlib.suppress(OSError):
                netns.remove(ns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=20, help="MB the VM sends over TCP")
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    image, accel = guestimage.ensure(), probe()
    print(f"accelerator: {accel}")
    runs: dict[str, list[dict[str, float]]] = {"qnet": [], "bridge": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            runs["qnet"].append(qnet_side(Path(tmp), args.mb, args.pings))
            runs["bridge"].append(bridge_side(Path(tmp), image, accel.name, args.mb, args.pings))
            print(f"run {i + 1}: qnet {runs['qnet'][-1]}  bridge {runs['bridge'][-1]}", flush=True)
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
    note = f"(median of {args.repeat}, {args.mb} MB, {args.pings} pings)"
    print(f"\n{'':8} {'ping RTT ms':>12} {'TCP Mbit/s':>12}   {note}")
    for side, m in med.items():
        print(f"{side:8} {m['rtt_ms']:>12.3f} {m['tcp_mbit']:>12.1f}")
    q, b = med["qnet"], med["bridge"]
    print(f"\nqnet/bridge: RTT x{q['rtt_ms'] / b['rtt_ms']:.2f}, TCP x{q['tcp_mbit'] / b['tcp_mbit']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
