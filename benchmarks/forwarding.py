#!/usr/bin/env python3
"""Forwarding benchmark: guest-to-guest through one hub, against its peers in
the same run.

    sudo .venv/bin/python benchmarks/forwarding.py [--seconds 5] [--ports 2,8] [--repeat 3]

Each forwarder joins N guest namespaces (eth0, 10.77.0.i/24); vm1 sends to
vm2, the other ports (with --ports 8) only receive the hub's copies:

  qnet    qnet-tui (`qnet-tui run`): a hub of guests alone is forwarded by the kernel
          (lab/kernelhub.py), statistics, samples and drop counts on as always
  worker  qnet-tui with `forwarding: worker` on the hub: the worker's own forwarding
  bridge  a Linux bridge with a veth to each guest (the kernel, no copy to user space)
  hubbridge  the same with learning off on every port: it floods every frame, as a hub does
  qemu    QEMU's own hub: qemu-system-x86_64 -machine none with one
          `-netdev tap,vhost=off` + `-netdev hubport,hubid=0` per guest

Measured: iperf3 TCP (one stream), small frames (trafgen's 60-byte frames into
vm1, faster than any forwarder here; frames/s delivered, read from vm2's
interface counters: benchmarks/framegen.py), ping RTT (200 pings), and the
forwarder's CPU, also per million frames delivered. Forwarders are measured in
turns, each run after the machine has had a quiet second; prints a table and
qnet's ratios, median of --repeat runs, with the load average. Everything runs
in namespaces this script makes (prefix qnb-, and lab 'qnetbench') and removes.
benchmarks/smallframes.py scales the small-frame figure to 16 guests and 2 hubs."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.framegen import HZ, blast, loadavg, tree_ticks, wait_quiet
from qnet_tui.lab import netns

SUBNET = "10.77.0"


def guest_ip(i: int) -> str:
    return f"{SUBNET}.{i}"


def run_in(ns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, preexec_fn=lambda: netns.enter(ns), capture_output=True, text=True, **kw)


def spawn_in(ns: str, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, preexec_fn=lambda: netns.enter(ns), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def ipr_in(ns: str) -> IPRoute:
    with netns.inside(ns):
        return IPRoute()


def rx_packets(ns: str) -> int:
    with ipr_in(ns) as ipr:
        link = ipr.get_links(ifname="eth0")[0]
        return link.get_attr("IFLA_STATS64")["rx_packets"]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start_lab(cmd: list[str], env: dict[str, str], stdout: int = subprocess.DEVNULL, **kw) -> subprocess.Popen:
    """`qnet-tui run ...` (cmd), once it says the lab is running; its stderr is read on after that."""
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, **kw)
    for line in proc.stderr:
        if "is running" in line:
            break
    else:
        raise RuntimeError("qnet-tui run did not start")
    return proc


def preflight() -> str | None:
    """Why a small-frame benchmark cannot run here, or None."""
    if os.geteuid() != 0:
        return "the benchmark makes namespaces: run it as root"
    if not shutil.which("trafgen"):
        return "no trafgen (Debian: apt-get install netsniff-ng)"
    return None


def guest_name(i: int, hub: int = 0) -> str:
    """vm1, vm2, ... on the first hub; h1vm1, ... on the second (two hubs busy at once)."""
    return f"vm{i}" if hub == 0 else f"h{hub}vm{i}"


def guest_mac(i: int, hub: int = 0) -> str:
    return f"52:54:00:77:{hub:02x}:{i:02x}"


def configure_guest(ns: str, i: int, ifname: str = "eth0", mac: str | None = None) -> None:
    with ipr_in(ns) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, address=mac or guest_mac(i))
        ipr.addr("add", index=idx, address=guest_ip(i), prefixlen=24)
        ipr.link("set", index=idx, state="up")


# -- the forwarders ------------------------------------------------------------


class Qnet:
    name = "qnet"
    forwarding = "auto"
    in_kernel = True  # the kernel floods for its hubs: their cost is softirq time
    tree: Path | None = None  # qnet-tui's code from there (an older revision: see baseline), else this one

    def __init__(self, ports: int, hubs: int = 1) -> None:
        self.ports = ports
        self.folder = Path(tempfile.mkdtemp(prefix="qnb-"))
        nodes: dict[str, dict] = {}
        links = []
        for h in range(hubs):
            nodes[f"hub{h}"] = {"kind": "hub", "vlan": h, "forwarding": self.forwarding}
            for i in range(1, ports + 1):
                name = guest_name(i, h)
                nodes[name] = {"kind": "guest_nic", "mac": guest_mac(i, h), "ipv4": f"{guest_ip(i)}/24"}
                links.append([f"hub{h}", name])
        topo = {"version": 1, "name": "qnetbench", "nodes": nodes, "links": links}
        self.file = self.folder / "bench.yaml"
        self.file.write_text(json.dumps(topo))
        env = dict(os.environ, QNET_RUNTIME_DIR=str(self.folder / "run"))
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
        self.proc = start_lab([sys.executable, "-m", "qnet_tui", "run", str(self.file), "--json"], env)
        self.pid = self.proc.pid

    def guest(self, i: int, hub: int = 0) -> str:
        return netns.node_ns("qnetbench", guest_name(i, hub))

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)


class QnetWorker(Qnet):
    name = "worker"
    forwarding = "worker"
    in_kernel = False


def baseline(rev: str) -> dict[str, type]:
    """The worker and the kernel path of qnet-tui at git revision `rev`, as peers in the same run (what a
    change costs): its tree exported to a temporary folder, run with PYTHONPATH there."""
    tree = Path(tempfile.mkdtemp(prefix="qnb-base-"))
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "qnet_tui"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    short = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        f"qnet@{short}": type("QnetAt", (Qnet,), {"name": f"qnet@{short}", "tree": tree}),
        f"worker@{short}": type("WorkerAt", (QnetWorker,), {"name": f"worker@{short}", "tree": tree}),
    }


class Bridge:
    name = "bridge"
    in_kernel = True
    learning = True

    def __init__(self, ports: int, hubs: int = 1) -> None:
        self.ports = ports
        guests = [(i, h) for h in range(hubs) for i in range(1, ports + 1)]
        self.namespaces = ["qnb-br"] + [self.guest(i, h) for i, h in guests]
        for ns in self.namespaces:
            netns.create(ns)
        with ipr_in("qnb-br") as ipr:
            for h in range(hubs):
                ipr.link("add", ifname=f"br{h}", kind="bridge", br_stp_state=0)
                br = ipr.link_lookup(ifname=f"br{h}")[0]
                ipr.link("set", index=br, state="up")
                for i in range(1, ports + 1):
                    port = f"p{h}.{i}"
                    ipr.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.guest(i, h)})
                    idx = ipr.link_lookup(ifname=port)[0]
                    ipr.link("set", index=idx, master=br, state="up")
                    if not self.learning:
                        ipr.brport("set", index=idx, learning=0)
        for i, h in guests:
            configure_guest(self.guest(i, h), i, mac=guest_mac(i, h))
        self.pid = None

    def guest(self, i: int, hub: int = 0) -> str:
        return f"qnb-br.{guest_name(i, hub)}"

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            netns.remove(ns)


class HubBridge(Bridge):
    """A bridge with learning off: it floods every frame, a hub's semantics, as
    qnet-tui's kernel path does without the counting."""

    name = "hubbridge"
    learning = False


class Qemu:
    name = "qemu"
    in_kernel = False

    def __init__(self, ports: int, hubs: int = 1) -> None:
        self.ports = ports
        guests = [(i, h) for h in range(hubs) for i in range(1, ports + 1)]
        self.namespaces = ["qnb-qemu"] + [self.guest(i, h) for i, h in guests]
        for ns in self.namespaces:
            netns.create(ns)
        args = ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none"]
        for i, h in guests:
            args += [
                "-netdev",
                f"tap,id=t{h}.{i},ifname=qt{h}.{i},script=no,downscript=no,vhost=off",
                "-netdev",
                f"hubport,id=h{h}.{i},hubid={h},netdev=t{h}.{i}",
            ]
        self.proc = subprocess.Popen(
            args, preexec_fn=lambda: netns.enter("qnb-qemu"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.pid = self.proc.pid
        with ipr_in("qnb-qemu") as ipr:
            deadline = time.monotonic() + 20
            while len([x for x in ipr.get_links() if x.get_attr("IFLA_IFNAME").startswith("qt")]) < len(guests):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qemu did not start: {self.proc.stderr.read().decode()[:500]}")
                time.sleep(0.1)
            # QEMU holds the taps' fds; the devices can move to the guests' namespaces.
            for i, h in guests:
                idx = ipr.link_lookup(ifname=f"qt{h}.{i}")[0]
                ipr.link("set", index=idx, ifname="eth0", net_ns_fd=self.guest(i, h))
        for i, h in guests:
            configure_guest(self.guest(i, h), i, mac=guest_mac(i, h))

    def guest(self, i: int, hub: int = 0) -> str:
        return f"qnb-qemu.{guest_name(i, hub)}"

    def close(self) -> None:
        # Stop QEMU before its taps' namespaces go: it spins otherwise.
        self.proc.kill()
        self.proc.wait(10)
        for ns in reversed(self.namespaces):
            netns.remove(ns)


# -- the measurements -----------------------------------------------------------


UDP = False  # --frames udp: the small frames are IPv4 UDP datagrams vm1 -> vm2


def small_frames(fw, seconds: float) -> dict[str, float]:
    """trafgen's 60-byte frames from vm1 through the hub; frames/s delivered to vm2, and the forwarder's CPU."""
    others = [fw.guest(i) for i in range(3, fw.ports + 1)]
    udp = (guest_ip(1), guest_ip(2)) if UDP else None
    pairs = [(fw.guest(1), guest_mac(1), fw.guest(2))]
    return blast(fw.pid, pairs, seconds, listeners=others, in_kernel=fw.in_kernel, udp=udp)


def measure(fw, seconds: float) -> dict[str, float]:
    vm1, vm2 = fw.guest(1), fw.guest(2)
    run_in(vm1, "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))  # ARP and warm-up
    quiet = wait_quiet()
    server = spawn_in(vm2, "iperf3", "-s", "-B", guest_ip(2))
    time.sleep(0.5)
    try:
        cpu0, t0 = (tree_ticks(fw.pid) if fw.pid else 0), time.monotonic()
        tcp = run_in(vm1, "iperf3", "-c", guest_ip(2), "-t", str(seconds), "-J", timeout=seconds + 30)
        cpu = (tree_ticks(fw.pid) - cpu0) / HZ / (time.monotonic() - t0) * 100 if fw.pid else float("nan")
        gbps = json.loads(tcp.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()
    quiet = max(quiet, wait_quiet())  # iperf3's teardown, or another job, must not share the generator's core
    small = small_frames(fw, seconds)
    ping = run_in(vm1, "ping", "-c", "200", "-i", "0.005", "-q", guest_ip(2), timeout=60).stdout
    rtt = float(re.search(r"= [\d.]+/([\d.]+)/", ping).group(1))
    return {
        "busy_before_pct": quiet,
        "tcp_gbps": gbps,
        "tcp_cpu_pct": cpu,
        "ping_ms": rtt,
        "small_fps": small["delivered_fps"],
        "offered_fps": small["offered_fps"],
        "cpu_pct": small["cpu_pct"],
        "gen_cpu_pct": small["gen_cpu_pct"],
        "softirq_pct": small["softirq_pct"],
        "busy_pct": small["busy_pct"],
        "cpu_s_per_mframe": small["cpu_s_per_mframe"],
    }


def bench(kinds: dict, ports: int, seconds: float, repeat: int) -> dict[str, dict[str, float]]:
    """Median of `repeat` runs per forwarder, taken in turns so that a busy spell of the machine hits them all."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    for n in range(repeat):
        for name, kind in kinds.items():
            print(f"measuring {name} ({ports} ports, run {n + 1} of {repeat}, {seconds:g} s) ...", file=sys.stderr)
            fw = kind(ports)
            try:
                runs[name].append(measure(fw, seconds))
            finally:
                fw.close()
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}


def cpu_cell(r: dict[str, float]) -> str:
    return "kernel" if r["cpu_pct"] != r["cpu_pct"] else f"{r['cpu_pct']:.0f}"  # NaN: the bridge has no process


def ratio_line(ports: int, q: dict[str, float], peer: str, p: dict[str, float], name: str = "qnet") -> str:
    line = (
        f"{ports} ports, {name} / {peer}: TCP {q['tcp_gbps'] / p['tcp_gbps']:.2f}x, "
        f"small frames {q['small_fps'] / p['small_fps']:.2f}x, "
        f"ping {q['ping_ms'] / p['ping_ms']:.2f}x (lower is better)"
    )
    # Softirq shares leave out what runs in the sender's own call: CPU per frame compares like with like.
    line += f", CPU per frame {q['cpu_s_per_mframe'] / p['cpu_s_per_mframe']:.2f}x (lower is better)"
    return line


KINDS = {"qnet": Qnet, "worker": QnetWorker, "bridge": Bridge, "hubbridge": HubBridge, "qemu": Qemu}


def chosen(only: str) -> list[str]:
    """The forwarders --only names, less QEMU's hub on a machine without QEMU (said so)."""
    wanted = [k for k in only.split(",") if k]
    if "qemu" in wanted and not shutil.which("qemu-system-x86_64"):
        print("no qemu-system-x86_64 (Debian: apt-get install qemu-system-x86); skipping QEMU", file=sys.stderr)
        wanted.remove("qemu")
    return wanted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--ports", default="2", help="port counts, comma-separated (e.g. 2,8)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="qnet,worker,bridge,hubbridge,qemu")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--frames", choices=("raw", "udp"), default="raw", help="small frames: 0x88b5, or IPv4 UDP")
    parser.add_argument(
        "--baseline", metavar="REV", help="also run qnet-tui at git revision REV (qnet@REV, worker@REV)"
    )
    args = parser.parse_args()
    if (why := preflight()) is not None:
        print(why, file=sys.stderr)
        return 2
    global UDP
    UDP = args.frames == "udp"
    kinds = {name: KINDS[name] for name in chosen(args.only)}
    if args.baseline:
        at = baseline(args.baseline)
        kinds |= {name: kind for name, kind in at.items() if name.split("@")[0] in kinds}
    load0 = loadavg()
    results = {ports: bench(kinds, ports, args.seconds, args.repeat) for ports in map(int, args.ports.split(","))}
    print(f"\nmedian of {args.repeat} runs of {args.seconds:g} s; load average {load0} before, {loadavg()} after")
    print("60 B frames: trafgen into vm1, frames/s delivered to vm2; CPU while they flow (s per M frames delivered);")
    print("gen: trafgen's CPU; busy: the machine's, while frames flow; pre: before (waited for below 30 %)")
    head = f"{'ports':>5} {'forwarder':<10} {'TCP Gbit/s':>10} {'ping ms':>8} {'60B frames/s':>12} {'offered':>9}"
    print(head + f" {'CPU %':>6} {'softirq %':>9} {'gen %':>6} {'busy %':>6} {'pre %':>5} {'CPU s/Mfr':>9}")
    for ports, by_name in results.items():
        for name, r in by_name.items():
            print(
                f"{ports:>5} {name:<10} {r['tcp_gbps']:>10.2f} {r['ping_ms']:>8.3f} {r['small_fps']:>12,.0f}"
                f" {r['offered_fps']:>9,.0f} {cpu_cell(r):>6} {r['softirq_pct']:>9.0f}"
                f" {r['gen_cpu_pct']:>6.0f} {r['busy_pct']:>6.0f} {r['busy_before_pct']:>5.0f}"
                f" {r['cpu_s_per_mframe']:>9.2f}"
            )
        if "qnet" in by_name:
            for peer in ("qemu", "bridge", "hubbridge", "worker"):
                if peer in by_name:
                    print(ratio_line(ports, by_name["qnet"], peer, by_name[peer]))
        for name in by_name:
            if "@" in name:  # this revision against the baseline's
                mine = name.split("@")[0]
                print(ratio_line(ports, by_name[mine], name, by_name[name], mine))
    if args.json:
        print(json.dumps({"seconds": args.seconds, "load": [load0, loadavg()], "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
