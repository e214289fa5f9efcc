#!/usr/bin/env python3
"""Forwarding benchmark: guest-to-guest through one hub, against its peers in
the same run.

    sudo .venv/bin/python benchmarks/forwarding.py [--seconds 5] [--ports 2] [--repeat 3]

Each forwarder joins N guest namespaces (eth0, 10.77.0.i/24); vm1 sends to
vm2, the other ports (with --ports 8) only receive the hub's copies:

  qnet    qnet-tui's worker (`qnet-tui run`), statistics counted as always
  bridge  a Linux bridge with a veth to each guest (the kernel, no copy to user space)
  qemu    QEMU's own hub: qemu-system-x86_64 -machine none with one
          `-netdev tap,vhost=off` + `-netdev hubport,hubid=0` per guest

Measured: iperf3 TCP (one stream), UDP 64-byte payloads (frames/s delivered,
read from vm2's interface counters, since iperf3's receiver caps first), ping
RTT (200 pings), and the forwarder's CPU. Prints a table and qnet's ratios;
median of --repeat runs. Everything runs in namespaces this script makes
(prefix qnb-, and lab 'qnetbench') and removes."""

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
from qnet_tui.lab import netns

SUBNET = "10.77.0"
HZ = os.sysconf("SC_CLK_TCK")


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


def configure_guest(ns: str, i: int, ifname: str = "eth0") -> None:
    with ipr_in(ns) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, address=f"52:54:00:77:00:{i:02x}")
        ipr.addr("add", index=idx, address=guest_ip(i), prefixlen=24)
        ipr.link("set", index=idx, state="up")


# -- the forwarders ------------------------------------------------------------


class Qnet:
    name = "qnet"

    def __init__(self, ports: int) -> None:
        self.ports = ports
        self.folder = Path(tempfile.mkdtemp(prefix="qnb-"))
        nodes = {"hub0": {"kind": "hub", "vlan": 0}}
        for i in range(1, ports + 1):
            nodes[f"vm{i}"] = {"kind": "guest_nic", "mac": f"52:54:00:77:00:{i:02x}", "ipv4": f"{guest_ip(i)}/24"}
        topo = {
            "version": 1,
            "name": "qnetbench",
            "nodes": nodes,
            "links": [["hub0", f"vm{i}"] for i in range(1, ports + 1)],
        }
        self.file = self.folder / "bench.yaml"
        self.file.write_text(json.dumps(topo))
        env = dict(os.environ, QNET_RUNTIME_DIR=str(self.folder / "run"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qnet_tui", "run", str(self.file), "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stderr:
            if "is running" in line:
                break
        else:
            raise RuntimeError("qnet-tui run did not start")
        self.pid = self.proc.pid

    def guest(self, i: int) -> str:
        return netns.node_ns("qnetbench", f"vm{i}")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)


class Bridge:
    name = "bridge"

    def __init__(self, ports: int) -> None:
        self.ports = ports
        self.namespaces = ["qnb-br"] + [f"qnb-br.vm{i}" for i in range(1, ports + 1)]
        for ns in self.namespaces:
            netns.create(ns)
        with ipr_in("qnb-br") as ipr:
            ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0)
            br = ipr.link_lookup(ifname="br0")[0]
            ipr.link("set", index=br, state="up")
            for i in range(1, ports + 1):
                ipr.link("add", ifname=f"p{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.guest(i)})
                idx = ipr.link_lookup(ifname=f"p{i}")[0]
                ipr.link("set", index=idx, master=br, state="up")
        for i in range(1, ports + 1):
            configure_guest(self.guest(i), i)
        self.pid = None

    def guest(self, i: int) -> str:
        return f"qnb-br.vm{i}"

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            netns.remove(ns)


class Qemu:
    name = "qemu"

    def __init__(self, ports: int) -> None:
        self.ports = ports
        self.namespaces = ["qnb-qemu"] + [f"qnb-qemu.vm{i}" for i in range(1, ports + 1)]
        for ns in self.namespaces:
            netns.create(ns)
        args = ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none"]
        for i in range(1, ports + 1):
            args += [
                "-netdev",
                f"tap,id=t{i},ifname=qt{i},script=no,downscript=no,vhost=off",
                "-netdev",
                f"hubport,id=h{i},hubid=0,netdev=t{i}",
            ]
        self.proc = subprocess.Popen(
            args, preexec_fn=lambda: netns.enter("qnb-qemu"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.pid = self.proc.pid
        with ipr_in("qnb-qemu") as ipr:
            deadline = time.monotonic() + 20
            while len([x for x in ipr.get_links() if x.get_attr("IFLA_IFNAME").startswith("qt")]) < ports:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qemu did not start: {self.proc.stderr.read().decode()[:500]}")
                time.sleep(0.1)
            # QEMU holds the taps' fds; the devices can move to the guests' namespaces.
            for i in range(1, ports + 1):
                idx = ipr.link_lookup(ifname=f"qt{i}")[0]
                ipr.link("set", index=idx, ifname="eth0", net_ns_fd=self.guest(i))
        for i in range(1, ports + 1):
            configure_guest(self.guest(i), i)

    def guest(self, i: int) -> str:
        return f"qnb-qemu.vm{i}"

    def close(self) -> None:
        # Stop QEMU before its taps' namespaces go: it spins otherwise.
        self.proc.kill()
        self.proc.wait(10)
        for ns in reversed(self.namespaces):
            netns.remove(ns)


# -- the measurements -----------------------------------------------------------


def measure(fw, seconds: float) -> dict[str, float]:
    vm1, vm2 = fw.guest(1), fw.guest(2)
    run_in(vm1, "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))  # ARP and warm-up
    server = spawn_in(vm2, "iperf3", "-s", "-B", guest_ip(2))
    time.sleep(0.5)
    try:
        cpu0, t0 = (cpu_ticks(fw.pid) if fw.pid else 0), time.monotonic()
        tcp = run_in(vm1, "iperf3", "-c", guest_ip(2), "-t", str(seconds), "-J", timeout=seconds + 30)
        cpu = (cpu_ticks(fw.pid) - cpu0) / HZ / (time.monotonic() - t0) * 100 if fw.pid else float("nan")
        gbps = json.loads(tcp.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        rx0, t0 = rx_packets(vm2), time.monotonic()
        run_in(
            vm1,
            "iperf3",
            "-c",
            guest_ip(2),
            "-u",
            "-b",
            "0",
            "-l",
            "64",
            "-t",
            str(seconds),
            "-J",
            timeout=seconds + 30,
        )
        fps = (rx_packets(vm2) - rx0) / (time.monotonic() - t0)
    finally:
        server.kill()
        server.wait()
    ping = run_in(vm1, "ping", "-c", "200", "-i", "0.005", "-q", guest_ip(2), timeout=60).stdout
    rtt = float(re.search(r"= [\d.]+/([\d.]+)/", ping).group(1))
    return {"tcp_gbps": gbps, "small_fps": fps, "ping_ms": rtt, "cpu_pct": cpu}


def bench(kind, ports: int, seconds: float, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        fw = kind(ports)
        try:
            runs.append(measure(fw, seconds))
        finally:
            fw.close()
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--ports", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="qnet,bridge,qemu")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the benchmark makes namespaces: run it as root", file=sys.stderr)
        return 2
    kinds = {"qnet": Qnet, "bridge": Bridge, "qemu": Qemu}
    wanted = [k for k in args.only.split(",") if k]
    if "qemu" in wanted and not shutil.which("qemu-system-x86_64"):
        print("no qemu-system-x86_64 (Debian: apt-get install qemu-system-x86); skipping QEMU", file=sys.stderr)
        wanted.remove("qemu")
    results = {}
    for name in wanted:
        print(f"measuring {name} ({args.ports} ports, {args.repeat} x {args.seconds:g} s) ...", file=sys.stderr)
        results[name] = bench(kinds[name], args.ports, args.seconds, args.repeat)
    print(f"\n{args.ports}-port hub, median of {args.repeat}")
    print(f"{'forwarder':<8} {'TCP Gbit/s':>11} {'64B frames/s':>13} {'ping ms':>8} {'CPU %':>6}")
    for name, r in results.items():
        print(f"{name:<8} {r['tcp_gbps']:>11.2f} {r['small_fps']:>13,.0f} {r['ping_ms']:>8.3f} {r['cpu_pct']:>6.0f}")
    if "qnet" in results:
        q = results["qnet"]
        for peer in ("qemu", "bridge"):
            if peer in results:
                p = results[peer]
                print(
                    f"qnet / {peer}: TCP {q['tcp_gbps'] / p['tcp_gbps']:.2f}x, "
                    f"small frames {q['small_fps'] / p['small_fps']:.2f}x, "
                    f"ping {q['ping_ms'] / p['ping_ms']:.2f}x (lower is better)"
                )
    if args.json:
        print(json.dumps({"ports": args.ports, "seconds": args.seconds, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
