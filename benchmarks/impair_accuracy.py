#!/usr/bin/env python3
"""Impairment accuracy: what the worker's emulated delay, loss and rate do to
real programs, against the same link unimpaired in the same run.

    sudo .venv/bin/python benchmarks/impair_accuracy.py [--seconds 10] [--repeat 4] [--only delay,loss]

One lab, 'qnetimpair', two hubs of two namespace guests each: hub0 joins vm1
and vm2 (the link hub0 - vm2 is the one impaired, live, with `qnet-tui
impair`), hub1 joins vm3 and vm4 (never impaired). The targets are issue 14's:

  delay  delay=50ms both ways adds 100 ms to ping's RTT (within 2 ms): 50 pings,
         one every 50 ms (a ping process each: ping prints a reply's time to
         the microsecond in its summary only), median against the unimpaired
         link's median
  pair   the same on a direct pair: guest NIC vm5 peered with tap0, whose
         bridge br0 reaches host NIC up0's outside host
  loss   loss=10% one way loses 10 +- 1% of 10,000 frames: ping -f -c 10000
         (what came back) and the worker's own impair-loss counter
  rate   rate=10mbit one way gives iperf3 TCP 9.5-10 Mbit/s
  bdp    delay=10ms each way still lets one iperf3 TCP stream reach 1 Gbit/s;
         then again with the sender's tcp_wmem raised from the kernel's 4 MiB
         to 32 MiB, which shows what limits it (the sender, or the worker)
  other  an impairment on hub0 costs hub1 nothing: hub1's iperf3 TCP and
         64-byte UDP figures (benchmarks/forwarding.py's) with hub0's link
         impaired against unimpaired, alternating, median of --repeat: within
         noise (the impaired median inside the unimpaired runs' range), ratio
         ~1.0; ping runs through hub0 in both, so the impairment's timers fire

Prints a table with pass or fail per target and the machine's load (on two
cores shared with other work, the delay's median and the forwarding figures
move with it: run it more than once and take the quietest run); exit 1 if a
target is missed."""

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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.forwarding import run_in, rx_packets, spawn_in, start_lab
from qnet_tui.lab import netns, sysctl

LAB = "qnetimpair"
GUESTS = {"vm1": "10.78.0.1", "vm2": "10.78.0.2", "vm3": "10.78.1.3", "vm4": "10.78.1.4", "vm5": "10.78.2.5"}
ADDRESS = {**GUESTS, "up0": "10.78.2.1"}
WMEM = "net/ipv4/tcp_wmem"  # per namespace: the sender's socket buffer, min default max
PING_RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/")
PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


class Lab:
    """`qnet-tui run --json` of the benchmark's topology, with its statistics
    read as they come."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="qnet-impair-"))
        nodes: dict[str, dict] = {"hub0": {"kind": "hub", "vlan": 0}, "hub1": {"kind": "hub", "vlan": 1}}
        for i, (name, address) in enumerate(GUESTS.items(), 1):
            nodes[name] = {"kind": "guest_nic", "mac": f"52:54:00:78:00:{i:02x}", "ipv4": f"{address}/24"}
        # A direct pair: vm5 peered with tap0, whose kernel side reaches up0's outside host through br0.
        nodes |= {
            "up0": {"kind": "host_nic", "ipv4": "10.78.2.1/24"},
            "br0": {"kind": "bridge"},
            "tap0": {"kind": "tap"},
        }
        topology = {
            "version": 1,
            "name": LAB,
            "nodes": nodes,
            "links": [
                *(["hub0", vm] for vm in ("vm1", "vm2")),
                *(["hub1", vm] for vm in ("vm3", "vm4")),
                *(["up0", "br0"], ["br0", "tap0"], ["tap0", "vm5"]),
            ],
        }
        self.file = self.folder / "impair.yaml"
        self.file.write_text(json.dumps(topology))
        self.env = dict(os.environ, QNET_RUNTIME_DIR=str(self.folder / "run"))
        cmd = [sys.executable, "-m", "qnet_tui", "run", str(self.file), "--json", "--interval", "0.2"]
        self.proc = start_lab(cmd, self.env, stdout=subprocess.PIPE)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # never let stderr fill
        self.stats: dict = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._read_stats, daemon=True).start()

    def _read_stats(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.stats = json.loads(line)
                self.changed.notify_all()

    def port(self, vlan: str, port: str, after: float) -> dict:
        """A port's counters from a statistics line made after `after` (time.time())."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.stats.get("time", 0) > after, timeout=10):
                raise RuntimeError("the lab sent no statistics for 10 s")
            return self.stats["vlans"][vlan]["ports"][port]

    def guest(self, node: str) -> str:
        return netns.node_ns(LAB, node)

    def impair(self, a: str, b: str, spec: str, one_way: bool = False) -> None:
        args = [sys.executable, "-m", "qnet_tui", "impair", str(self.file), a, b, *spec.split()]
        done = subprocess.run(args + ["--one-way"] * one_way, env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"impair {a} {b} {spec}: {done.stderr.strip()}")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)


def pings(lab: Lab, src: str, dst: str, count: int = 50) -> list[float]:
    """RTTs (ms) of count pings sent every 50 ms. One ping process each: ping
    prints a reply's time to 1 ms from 100 ms up, its summary to the microsecond."""
    procs = []
    for _ in range(count):
        procs.append(
            subprocess.Popen(
                ["ping", "-c", "1", "-W", "2", ADDRESS[dst]],
                preexec_fn=lambda: netns.enter(lab.guest(src)),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        time.sleep(0.05)
    times = []
    for proc in procs:
        m = PING_RTT.search(proc.communicate(timeout=30)[0])
        if m:
            times.append(float(m[1]))
    return times


def iperf_tcp(lab: Lab, src: str, dst: str, seconds: float) -> tuple[float, int]:
    """One TCP stream src -> dst: bits/s as the receiver counted them, and the
    sender's largest congestion window (bytes)."""
    server = spawn_in(lab.guest(dst), "iperf3", "-s", "-1", "-B", ADDRESS[dst])
    try:
        time.sleep(0.5)
        out = run_in(lab.guest(src), "iperf3", "-c", ADDRESS[dst], "-t", str(seconds), "-J", timeout=seconds + 60)
        end = json.loads(out.stdout)["end"]
        return end["sum_received"]["bits_per_second"], end["streams"][0]["sender"].get("max_snd_cwnd", 0)
    finally:
        server.kill()
        server.wait()


def small_frames(lab: Lab, src: str, dst: str, seconds: float) -> float:
    """64-byte UDP payloads src -> dst, as fast as iperf3 sends: frames/s that reached dst."""
    server = spawn_in(lab.guest(dst), "iperf3", "-s", "-1", "-B", ADDRESS[dst])
    try:
        time.sleep(0.5)
        rx0, t0 = rx_packets(lab.guest(dst)), time.monotonic()
        run_in(
            lab.guest(src),
            *("iperf3", "-c", ADDRESS[dst], "-u", "-b", "0", "-l", "64", "-t", str(seconds)),
            timeout=seconds + 60,
        )
        return (rx_packets(lab.guest(dst)) - rx0) / (time.monotonic() - t0)
    finally:
        server.kill()
        server.wait()


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20)
    return f"p5 {q[0]:.2f}, p95 {q[-1]:.2f}"


# -- the targets -----------------------------------------------------------------


def delay(lab: Lab, a: str = "hub0", b: str = "vm2", src: str = "vm1", dst: str = "vm2") -> dict:
    """delay=50ms both ways on link a - b, pinging from src to dst across it."""
    base = pings(lab, src, dst)
    lab.impair(a, b, "delay=50ms")
    try:
        pings(lab, src, dst, count=3)  # the queue fills at its new pace
        slow = pings(lab, src, dst)
    finally:
        lab.impair(a, b, "none")
    added = statistics.median(slow) - statistics.median(base)
    return {
        "target": "+100 ms +- 2",
        "figure": f"+{added:.2f} ms",
        "detail": f"{src} -> {dst}: RTT median {statistics.median(base):.3f} -> {statistics.median(slow):.2f} ms "
        f"({len(slow)} of 50 back; {spread(slow)})",
        "pass": len(base) == len(slow) == 50 and abs(added - 100) <= 2,
        "added_ms": added,
    }


def loss(lab: Lab) -> dict:
    lab.impair("hub0", "vm2", "loss=10%", one_way=True)  # echo requests are lost, replies are not
    try:
        before = lab.port("0", "vm2", time.time())["drop_reasons"]["impair-loss"]
        out = run_in(lab.guest("vm1"), "ping", "-f", "-c", "10000", "-W", "1", ADDRESS["vm2"], timeout=300).stdout
        lost = lab.port("0", "vm2", time.time() + 0.1)["drop_reasons"]["impair-loss"] - before
    finally:
        lab.impair("hub0", "vm2", "none")
    sent, received = map(int, PING_SUMMARY.search(out).groups())
    by_ping, by_counter = 100 * (sent - received) / sent, 100 * lost / sent
    return {
        "target": "10 +- 1 %",
        "figure": f"{by_ping:.2f} %",
        "detail": f"ping: {sent - received} of {sent} unanswered; worker: {lost} counted as impair-loss "
        f"({by_counter:.2f} %)",
        "pass": sent == 10000 and abs(by_ping - 10) <= 1 and abs(by_counter - 10) <= 1,
        "loss_pct": by_ping,
        "counted_pct": by_counter,
    }


def rate(lab: Lab, seconds: float) -> dict:
    lab.impair("hub0", "vm2", "rate=10mbit", one_way=True)
    try:
        mbps = iperf_tcp(lab, "vm1", "vm2", seconds)[0] / 1e6
    finally:
        lab.impair("hub0", "vm2", "none")
    return {
        "target": "9.5-10 Mbit/s",
        "figure": f"{mbps:.2f} Mbit/s",
        "detail": "iperf3 TCP vm1 -> vm2, rate=10mbit towards vm2",
        "pass": 9.5 <= mbps <= 10,
        "mbps": mbps,
    }


def bdp(lab: Lab, seconds: float) -> dict:
    """The target with the kernel's defaults; then again with the sender's
    socket buffer raised, which shows whether the worker or the sender limits."""
    vm1 = lab.guest("vm1")
    wmem = sysctl.read(vm1, WMEM)
    lab.impair("hub0", "vm2", "delay=10ms")
    try:
        rtt = statistics.median(pings(lab, "vm1", "vm2", count=10))
        bits, cwnd = iperf_tcp(lab, "vm1", "vm2", seconds)
        sysctl.write(vm1, WMEM, "4096 16384 33554432")
        wide = iperf_tcp(lab, "vm1", "vm2", seconds)[0]
    finally:
        sysctl.write(vm1, WMEM, wmem)
        lab.impair("hub0", "vm2", "none")
    gbps = bits / 1e9
    return {
        "target": ">= 1 Gbit/s",
        "figure": f"{gbps:.2f} Gbit/s",
        "detail": f"iperf3 TCP vm1 -> vm2, delay=10ms each way (RTT {rtt:.1f} ms, largest cwnd "
        f"{cwnd / 2**20:.1f} MiB, tcp_wmem max {int(wmem.split()[-1]) / 2**20:g} MiB); "
        f"{wide / 1e9:.2f} Gbit/s with tcp_wmem max 32 MiB",
        "pass": gbps >= 1,
        "gbps": gbps,
        "gbps_wmem_32m": wide / 1e9,
    }


def other_hub(lab: Lab, seconds: float, repeat: int) -> dict:
    """hub1's forwarding with hub0's link impaired, against none, alternating."""
    runs: dict[str, list[tuple[float, float]]] = {"none": [], "impaired": []}
    background = spawn_in(lab.guest("vm1"), "ping", "-i", "0.01", "-q", ADDRESS["vm2"])
    try:
        for i in range(repeat):
            # ABBA: a drift of the machine's load weighs on both alike.
            for state in ("none", "impaired")[:: 1 if i % 2 == 0 else -1]:
                lab.impair("hub0", "vm2", "delay=10ms loss=10%" if state == "impaired" else "none")
                runs[state].append(
                    (iperf_tcp(lab, "vm3", "vm4", seconds)[0] / 1e9, small_frames(lab, "vm3", "vm4", seconds))
                )
    finally:
        background.kill()
        background.wait()
        lab.impair("hub0", "vm2", "none")
    tcp = {s: statistics.median(r[0] for r in runs[s]) for s in runs}
    fps = {s: statistics.median(r[1] for r in runs[s]) for s in runs}
    ratio_tcp, ratio_fps = tcp["impaired"] / tcp["none"], fps["impaired"] / fps["none"]

    def noise(i: int) -> tuple[float, float]:  # the unimpaired runs' own range
        return min(r[i] for r in runs["none"]), max(r[i] for r in runs["none"])

    (tcp_lo, tcp_hi), (fps_lo, fps_hi) = noise(0), noise(1)
    return {
        "target": "within noise (ratio ~1.0)",
        "figure": f"TCP {ratio_tcp:.2f}x, 64 B {ratio_fps:.2f}x",
        "detail": f"hub1 TCP {tcp['none']:.2f} (runs {tcp_lo:.2f}-{tcp_hi:.2f}) -> {tcp['impaired']:.2f} Gbit/s, "
        f"64 B {fps['none']:,.0f} ({fps_lo:,.0f}-{fps_hi:,.0f}) -> {fps['impaired']:,.0f} frames/s "
        f"(median of {repeat})",
        # Within noise: the impaired median lies within the range of the unimpaired runs.
        "pass": tcp_lo <= tcp["impaired"] <= tcp_hi and fps_lo <= fps["impaired"] <= fps_hi,
        "tcp_ratio": ratio_tcp,
        "fps_ratio": ratio_fps,
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="iperf3's length for rate and bdp")
    parser.add_argument("--repeat", type=int, default=4, help="alternations for the other-hub check")
    parser.add_argument("--only", default="delay,pair,loss,rate,bdp,other")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the benchmark makes namespaces: run it as root", file=sys.stderr)
        return 2
    checks = {
        "delay": lambda lab: delay(lab),
        "pair": lambda lab: delay(lab, "tap0", "vm5", "vm5", "up0"),
        "loss": lambda lab: loss(lab),
        "rate": lambda lab: rate(lab, args.seconds),
        "bdp": lambda lab: bdp(lab, args.seconds),
        "other": lambda lab: other_hub(lab, min(args.seconds, 5), args.repeat),
    }
    wanted = [c for c in args.only.split(",") if c]
    load0 = os.getloadavg()[0]
    lab = Lab()
    results = {}
    try:
        for src, dst in (("vm1", "vm2"), ("vm3", "vm4"), ("vm5", "up0")):  # ARP and warm-up
            run_in(lab.guest(src), "ping", "-c", "3", "-i", "0.2", "-W", "1", ADDRESS[dst])
        for name in wanted:
            print(f"measuring {name} ...", file=sys.stderr)
            results[name] = checks[name](lab)
    finally:
        lab.close()
    load1 = os.getloadavg()[0]
    print(f"\nimpairment accuracy ({time.strftime('%Y-%m-%d %H:%M')}, load {load0:.2f} -> {load1:.2f})")
    print(f"{'check':<6} {'target':<26} {'measured':<26} {'':<4} detail")
    for name, r in results.items():
        verdict = "pass" if r["pass"] else "FAIL"
        print(f"{name:<6} {r['target']:<26} {r['figure']:<26} {verdict:<4} {r['detail']}")
    if args.json:
        print(json.dumps({"load": [load0, load1], "results": results}))
    return 0 if all(r["pass"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
