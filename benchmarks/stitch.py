#!/usr/bin/env python3
"""Stitch benchmark: a lab across two machines, its hub stitched by remote
ports (VXLAN), against two Linux bridges joined by kernel vxlan devices, in
one run.

    sudo .venv/bin/python benchmarks/stitch.py [--seconds 5] [--repeat 3]

The machines are namespaces qnb-st-a and qnb-st-b with a veth underlay
(10.78.0.1, 10.78.0.2, MTU 1550, so that the guests keep 1500); guest vm1
sits on a, vm2 on b (eth0, 10.77.0.i/24).

  stitch  the product: a topology file (hosts: {b: {address: 10.78.0.2}}, hub
          VLAN 10, vm1 without host:, vm2 on host b), `qnet-tui run FILE` in
          a and `qnet-tui run FILE --host b --controller 10.78.0.1` in b (a
          host without ssh: is started by hand); the guests are then
          qnet-qnbstitch.vm1 and qnet-qnbstitch@b.vm2
  kernel  each machine a bridge with a veth to its guest and a vxlan device
          (VNI 42, remote the other machine)

Measured: iperf3 TCP (one stream, vm1 to vm2) and small frames (trafgen's
60-byte frames into vm1, frames/s delivered to vm2: benchmarks/framegen.py),
and for the stitch the CPU of both machines' workers (their process trees,
/proc/PID/stat), also per million frames delivered; the kernel's forwarding
is softirq work on both "machines" at once, not attributed. Stitch and kernel
are measured in turns, --repeat times; prints the median of each figure, its
range, and the stitch/kernel ratios. Everything it makes, it removes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.forwarding import configure_guest, guest_ip, guest_mac, ipr_in, preflight, run_in, spawn_in
from benchmarks.framegen import HZ, blast, loadavg, ticks_of, wait_quiet
from qnet_tui.lab import netns
from qnet_tui.lab.remote import share_name

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {"a": "10.78.0.1", "b": "10.78.0.2"}
GUESTS = {"a": 1, "b": 2}  # the guest number on each machine
UNDERLAY_MTU = 1550
VNI = 42
LAB = "qnbstitch"
START_S = 60.0


def ns(role: str) -> str:
    return f"qnb-st-{role}"


def underlay(guests: bool) -> list[str]:
    """The two machines (and, for the kernel, their guests' namespaces), the underlay between the machines."""
    made = [ns("a"), ns("b")] + ([ns("vm1"), ns("vm2")] if guests else [])
    for name in made:
        netns.create(name)
    with ipr_in(ns("a")) as ipr:
        ipr.link("add", ifname="under0", kind="veth", peer={"ifname": "under0", "net_ns_fd": ns("b")})
    for role, address in MACHINES.items():
        with ipr_in(ns(role)) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            index = ipr.link_lookup(ifname="under0")[0]
            ipr.link("set", index=index, mtu=UNDERLAY_MTU, state="up")
            ipr.addr("add", index=index, address=address, prefixlen=24)
    return made


def other(role: str) -> str:
    return MACHINES["b" if role == "a" else "a"]


def topology() -> dict:
    """vm1 on the controller's machine (a), vm2 on host b, one hub between them."""
    guest = {"kind": "guest_nic"}
    return {
        "version": 1,
        "name": LAB,
        "hosts": {"b": {"address": MACHINES["b"]}},  # no ssh: its share is started by hand (here, below)
        "nodes": {
            "hub10": {"kind": "hub", "vlan": 10},
            "vm1": guest | {"mac": guest_mac(1), "ipv4": f"{guest_ip(1)}/24"},
            "vm2": guest | {"mac": guest_mac(2), "ipv4": f"{guest_ip(2)}/24", "host": "b"},
        },
        "links": [["vm1", "hub10"], ["vm2", "hub10"]],
    }


class Share:
    """One machine's `qnet-tui run`, started inside its machine's namespace; its stderr is kept (and drained)."""

    def __init__(self, role: str, args: list[str], env: dict[str, str]) -> None:
        self.role = role
        self.lines: list[str] = []
        self.running = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qnet_tui", "run", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: netns.enter(ns(role)),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "is running" in line:
                self.running.set()

    def wait_running(self) -> None:
        deadline = time.monotonic() + START_S
        while not self.running.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"machine {self.role}'s qnet-tui run did not start:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        self.reader.join(5)
        return code


class Stitch:
    name = "stitch"

    def __init__(self) -> None:
        self.namespaces = underlay(guests=False)
        self.folder = Path(tempfile.mkdtemp(prefix="qnb-st-"))
        self.shares: list[Share] = []
        try:
            file = self.folder / "stitch.yaml"
            file.write_text(json.dumps(topology()))
            env = dict(os.environ, QNET_RUNTIME_DIR=str(self.folder / "run"), PYTHONPATH=str(ROOT))
            self.shares.append(Share("a", [str(file)], env))
            self.shares.append(Share("b", [str(file), "--host", "b", "--controller", MACHINES["a"]], env))
            for share in self.shares:
                share.wait_running()
        except BaseException:
            self.close()
            raise
        self.pid = tuple(share.proc.pid for share in self.shares)

    def guest(self, i: int) -> str:
        return netns.node_ns(LAB, "vm1") if i == 1 else netns.node_ns(share_name(LAB, "b"), "vm2")

    def close(self) -> None:
        codes = {share.role: share.stop() for share in self.shares}
        left = [n for n in netns.existing() if netns.belongs_to(n, LAB) or netns.belongs_to(n, share_name(LAB, "b"))]
        for name in left:  # never leave them behind, but say so: the product should have removed them
            netns.remove(name)
        for name in self.namespaces:
            netns.remove(name)
        shutil.rmtree(self.folder, ignore_errors=True)
        failed = {role: code for role, code in codes.items() if code != 0}
        if failed or left:
            said = "\n".join(line for share in self.shares for line in share.lines[-10:])
            raise RuntimeError(f"stitch: exit codes {failed}, namespaces left behind {left}:\n{said}")


class Kernel:
    name = "kernel"
    pid = None

    def __init__(self) -> None:
        self.namespaces = underlay(guests=True)
        for role, i in GUESTS.items():
            with ipr_in(ns(role)) as ipr:
                under = ipr.link_lookup(ifname="under0")[0]
                ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0)
                br = ipr.link_lookup(ifname="br0")[0]
                ipr.link(
                    "add",
                    ifname="vx0",
                    kind="vxlan",
                    vxlan_id=VNI,
                    vxlan_group=other(role),
                    vxlan_local=MACHINES[role],
                    vxlan_port=4789,
                    vxlan_link=under,
                )
                ipr.link("add", ifname="p0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns(f"vm{i}")})
                for ifname in ("vx0", "p0"):
                    ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], master=br, state="up")
                ipr.link("set", index=br, state="up")
            configure_guest(ns(f"vm{i}"), i)

    def guest(self, i: int) -> str:
        return ns(f"vm{i}")

    def close(self) -> None:
        for name in self.namespaces:
            netns.remove(name)


def reachable(vm1: str, deadline_s: float = 30) -> None:
    """vm1 pings vm2 (ARP, the remote ports' path MTU probes): the stitch is up."""
    deadline = time.monotonic() + deadline_s
    while run_in(vm1, "ping", "-c", "1", "-W", "1", guest_ip(2)).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"vm2 ({guest_ip(2)}) does not answer vm1")


def measure(fw, seconds: float) -> dict[str, float]:
    vm1, vm2 = fw.guest(1), fw.guest(2)
    reachable(vm1)
    run_in(vm1, "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))
    quiet = wait_quiet()
    server = spawn_in(vm2, "iperf3", "-s", "-B", guest_ip(2))
    time.sleep(0.5)
    try:
        cpu0, t0 = (ticks_of(fw.pid) if fw.pid else 0), time.monotonic()
        tcp = run_in(vm1, "iperf3", "-c", guest_ip(2), "-t", str(seconds), "-J", timeout=seconds + 30)
        cpu = (ticks_of(fw.pid) - cpu0) / HZ / (time.monotonic() - t0) * 100 if fw.pid else float("nan")
        gbps = json.loads(tcp.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()
    quiet = max(quiet, wait_quiet())
    small = blast(fw.pid, [(vm1, guest_mac(1), vm2)], seconds)
    nan = float("nan")
    return {
        "busy_before_pct": quiet,
        "tcp_gbps": gbps,
        "tcp_cpu_pct": cpu,
        "small_fps": small["delivered_fps"],
        "offered_fps": small["offered_fps"],
        "cpu_pct": small["cpu_pct"],
        "softirq_pct": small["softirq_pct"],
        "busy_pct": small["busy_pct"],
        # Without a process the blast counts softirq as the cost; on one machine standing for two it is both
        # machines' at once, and partly inside trafgen's own send call: left out.
        "cpu_s_per_mframe": small["cpu_s_per_mframe"] if fw.pid else nan,
    }


def bench(seconds: float, repeat: int) -> dict[str, list[dict[str, float]]]:
    """`repeat` runs of each, in turns, so that a busy spell of the machine hits both."""
    runs: dict[str, list[dict[str, float]]] = {"stitch": [], "kernel": []}
    for n in range(repeat):
        for kind in (Stitch, Kernel):
            print(f"measuring {kind.name} (run {n + 1} of {repeat}, {seconds:g} s) ...", file=sys.stderr)
            fw = kind()
            try:
                runs[kind.name].append(measure(fw, seconds))
            finally:
                fw.close()
    return runs


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(runs: list[dict[str, float]], key: str) -> float:
    """(max - min) / median: how far apart the repeats were."""
    values = [r[key] for r in runs]
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else float("nan")


def cell(value: float, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if value != value else f"{value:>{width}{fmt}}"  # NaN: no process to read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print every run as JSON too")
    args = parser.parse_args()
    if (why := preflight()) is not None:
        print(why, file=sys.stderr)
        return 2
    if args.repeat < 1:
        print("--repeat: at least 1", file=sys.stderr)
        return 2
    load0 = loadavg()
    runs = bench(args.seconds, args.repeat)
    print(f"\nmedian of {args.repeat} runs of {args.seconds:g} s; load average {load0} before, {loadavg()} after")
    print(f"underlay MTU {UNDERLAY_MTU} (VXLAN's 50 bytes on top of the guests' 1500)")
    print("60 B frames: trafgen into vm1, frames/s delivered to vm2; CPU: both machines' workers (% of one core)")
    print("kernel: softirq, not attributed (softirq % is the whole machine's, both 'machines' at once)")
    head = f"{'':8} {'TCP Gbit/s':>10} {'TCP CPU %':>9} {'60B frames/s':>12} {'offered':>9} {'CPU %':>6}"
    print(head + f" {'softirq %':>9} {'CPU s/Mfr':>9} {'pre %':>5}")
    for name, rs in runs.items():
        m = {key: median(rs, key) for key in rs[0]}
        print(
            f"{name:8} {m['tcp_gbps']:>10.2f} {cell(m['tcp_cpu_pct'], '.0f', 9)} {m['small_fps']:>12,.0f}"
            f" {m['offered_fps']:>9,.0f} {cell(m['cpu_pct'], '.0f', 6)} {m['softirq_pct']:>9.0f}"
            f" {cell(m['cpu_s_per_mframe'], '.2f', 9)} {m['busy_before_pct']:>5.0f}"
        )
    if args.repeat > 1:
        print("spread of the repeats, (max - min) / median:")
        for name, rs in runs.items():
            print(f"  {name:8} TCP {spread(rs, 'tcp_gbps'):.0%}, small frames {spread(rs, 'small_fps'):.0%}")
    s, k = runs["stitch"], runs["kernel"]
    tcp = median(s, "tcp_gbps") / median(k, "tcp_gbps")
    small = median(s, "small_fps") / median(k, "small_fps")
    print(f"stitch / kernel: TCP {tcp:.2f}x, small frames {small:.2f}x")
    if args.json:
        print(json.dumps({"seconds": args.seconds, "load": [load0, loadavg()], "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
