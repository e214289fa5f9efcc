#!/usr/bin/env python3
"""Latency benchmark: ping RTT through one 2-port hub, by forwarder and by
ping interval, in one run.

    sudo .venv/bin/python benchmarks/latency.py [--count 500] [--intervals 0.005,0.001] [--rounds 2]

Forwarders (forwarding.py's, plus a floor):

  qnet    qnet-tui's worker (`qnet-tui run`)
  base    the same, from the checkout given by --baseline DIR (a change, before and after)
  qemu    QEMU's own hub, two `-netdev tap,vhost=off` hub ports
  bridge  a Linux bridge with two veths
  floor   the least a Python forwarder does: epoll over two taps (opened as
          the worker opens them, virtio-net header and offloads), read, write
          to the other, nothing counted. What is left between it and qnet is
          the worker's own code; between it and QEMU, the interpreter.

Each round measures every forwarder once per interval, in turn, so that a
change in the machine's load falls on all of them alike; the table gives the
median over rounds of each run's median RTT (ping's per-reply times), and of
its average. --pin CPU puts the forwarder on one CPU (sched_setaffinity),
--nice N sets its nice level, --ping-cpu runs ping on one CPU, and a
forwarder named with +slice (--only qnet,qnet+slice) gets an EEVDF slice of
--slice-us, to see what placement and scheduling do.

Everything runs in namespaces this script makes (prefixes qnb-, qnl-, and the
lab 'qnetbench') and removes."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import forwarding
from benchmarks.forwarding import configure_guest, guest_ip, ipr_in, run_in
from qnet_tui.lab import netns

LAB = "qnetlat"  # names of its own: forwarding.py may run at the same time

FLOOR = r"""
import os, select, sys
from qnet_tui.lab import netns
from qnet_tui.lab.tap import open_tap
fds = []
for ns in sys.argv[1:]:
    with netns.inside(ns):
        fds.append(open_tap("eth0", True))
peer = {fds[0]: fds[1], fds[1]: fds[0]}
ep = select.epoll()
for fd in fds:
    ep.register(fd, select.EPOLLIN)
print("ready", flush=True)
read, write = os.read, os.write
while True:
    for fd, _ in ep.poll():
        out = peer[fd]
        for _ in range(64):
            try:
                frame = read(fd, 65600)
            except BlockingIOError:
                break
            try:
                write(out, frame)
            except OSError:  # EIO: the other guest's interface is not up yet
                pass
"""


class Floor:
    name = "floor"

    def __init__(self, ports: int) -> None:
        self.namespaces = [f"qnl-floor.vm{i}" for i in (1, 2)]
        for ns in self.namespaces:
            netns.create(ns)
        self.proc = subprocess.Popen([sys.executable, "-c", FLOOR, *self.namespaces], stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor forwarder did not start")
        self.pid = self.proc.pid
        for i in (1, 2):
            configure_guest(self.guest(i), i)

    def guest(self, i: int) -> str:
        return self.namespaces[i - 1]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for ns in self.namespaces:
            netns.remove(ns)


class Qnet(forwarding.Qnet):
    """qnet-tui's worker, as lab LAB; with PROBE set, under latency_probe.py's stopwatch."""

    probe: str | None = None
    tree: str | None = None  # run the worker from this checkout (see --baseline)

    def __init__(self, ports: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="qnl-"))
        nodes = {"hub0": {"kind": "hub", "vlan": 0}}
        for i in (1, 2):
            nodes[f"vm{i}"] = {"kind": "guest_nic", "mac": f"52:54:00:77:00:{i:02x}", "ipv4": f"{guest_ip(i)}/24"}
        topo = {"version": 1, "name": LAB, "nodes": nodes, "links": [["hub0", "vm1"], ["hub0", "vm2"]]}
        self.file = self.folder / "lat.yaml"
        self.file.write_text(json.dumps(topo))
        env = dict(os.environ, QNET_RUNTIME_DIR=str(self.folder / "run"))
        head = [sys.executable, "-m", "qnet_tui"]
        if self.probe:
            head = [sys.executable, str(Path(__file__).with_name("latency_probe.py")), self.probe]
        self.proc = forwarding.start_lab([*head, "run", str(self.file), "--json"], env, cwd=self.tree)
        self.pid = self.proc.pid

    def guest(self, i: int) -> str:
        return netns.node_ns(LAB, f"vm{i}")


class Bridge(forwarding.Bridge):
    """A Linux bridge, two veths (forwarding.py's, in namespaces qnl-br*)."""

    def __init__(self, ports: int) -> None:
        self.namespaces = ["qnl-br", self.guest(1), self.guest(2)]
        for ns in self.namespaces:
            netns.create(ns)
        with ipr_in("qnl-br") as ipr:
            ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0)
            br = ipr.link_lookup(ifname="br0")[0]
            ipr.link("set", index=br, state="up")
            for i in (1, 2):
                ipr.link("add", ifname=f"p{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.guest(i)})
                ipr.link("set", index=ipr.link_lookup(ifname=f"p{i}")[0], master=br, state="up")
        for i in (1, 2):
            configure_guest(self.guest(i), i)
        self.pid = None

    def guest(self, i: int) -> str:
        return f"qnl-br.vm{i}"


class Qemu(forwarding.Qemu):
    """QEMU's hub with two tap hub ports (forwarding.py's, in namespaces qnl-qemu*)."""

    def __init__(self, ports: int) -> None:
        self.namespaces = ["qnl-qemu", self.guest(1), self.guest(2)]
        for ns in self.namespaces:
            netns.create(ns)
        args = ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none"]
        for i in (1, 2):
            args += ["-netdev", f"tap,id=t{i},ifname=qt{i},script=no,downscript=no,vhost=off"]
            args += ["-netdev", f"hubport,id=h{i},hubid=0,netdev=t{i}"]
        self.proc = subprocess.Popen(
            args, preexec_fn=lambda: netns.enter("qnl-qemu"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.pid = self.proc.pid
        with ipr_in("qnl-qemu") as ipr:
            deadline = time.monotonic() + 20
            while not all(ipr.link_lookup(ifname=f"qt{i}") for i in (1, 2)):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qemu did not start: {self.proc.stderr.read().decode()[:500]}")
                time.sleep(0.1)
            for i in (1, 2):  # QEMU holds the taps' fds; the devices can move
                ipr.link("set", index=ipr.link_lookup(ifname=f"qt{i}")[0], ifname="eth0", net_ns_fd=self.guest(i))
        for i in (1, 2):
            configure_guest(self.guest(i), i)

    def guest(self, i: int) -> str:
        return f"qnl-qemu.vm{i}"


class Baseline(Qnet):
    """qnet-tui's worker from another checkout (--baseline DIR), to compare a change in one run."""

    name = "base"


KINDS = {"base": Baseline, "qnet": Qnet, "qemu": Qemu, "bridge": Bridge, "floor": Floor}


def ping(fw, interval: float, count: int) -> dict[str, float]:
    out = run_in(
        fw.guest(1),
        "ping",
        "-c",
        str(count),
        "-i",
        f"{interval:g}",
        "-W",
        "1",
        guest_ip(2),
        timeout=count * interval + 60,
    ).stdout
    times = sorted(float(t) for t in re.findall(r"time=([\d.]+) ms", out))
    if len(times) < count * 0.9:
        raise RuntimeError(f"{fw.name}: {len(times)} of {count} replies")
    return {
        "min": times[0],
        "median": statistics.median(times),
        "avg": statistics.fmean(times),
        "p90": times[int(len(times) * 0.9)],
    }


SCHED_ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr, SCHED_ATTR_SIZE_VER1
SYS_SCHED_SETATTR, SYS_SCHED_GETATTR = 314, 315  # x86_64


def set_slice(tid: int, ns: int) -> None:
    """EEVDF's request size for tid (sched_attr.sched_runtime of SCHED_OTHER,
    Linux 6.12+): a shorter one gives an earlier deadline, so a waking task
    preempts a busy CPU's current task sooner."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(SCHED_ATTR.size)
    if libc.syscall(SYS_SCHED_GETATTR, tid, buf, SCHED_ATTR.size, 0) < 0:
        raise OSError(ctypes.get_errno(), "sched_getattr")
    nice = SCHED_ATTR.unpack(buf.raw)[3]
    attr = SCHED_ATTR.pack(SCHED_ATTR.size, 0, 0, nice, 0, ns, 0, 0, 0, 0)
    if libc.syscall(SYS_SCHED_SETATTR, tid, ctypes.c_char_p(attr), 0) < 0:
        raise OSError(ctypes.get_errno(), "sched_setattr")


def place(pid: int | None, cpu: int | None, nice: int | None, slice_us: int | None) -> None:
    """Put the forwarder (every thread of it) on one CPU, at a nice level, or with an EEVDF slice."""
    if pid is None:
        return
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        if cpu is not None:
            os.sched_setaffinity(tid, {cpu})
        if nice is not None:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        if slice_us is not None:
            set_slice(tid, slice_us * 1000)


def probe(intervals: list[float], count: int, rounds: int) -> int:
    """Where the worker's time goes per turn of its loop, by ping interval."""
    print("worker's loop per turn that forwarded (us, median; p90 in brackets); RTT ms median")
    print(f"{'interval s':>10} {'to 1st write':>14} {'the write':>14} {'back to epoll':>14} {'writes':>7} {'RTT':>6}")
    for _ in range(rounds):
        for interval in intervals:
            out = Path(tempfile.mkdtemp(prefix="qnl-")) / "probe.json"
            Qnet.probe = str(out)
            fw = Qnet(2)
            try:
                run_in(fw.guest(1), "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))
                start = time.monotonic_ns()
                rtt = ping(fw, interval, count)
            finally:
                fw.close()
                Qnet.probe = None
            probed = json.loads(out.read_text())
            busy = probed["busy_ns"]
            out.unlink()
            out.parent.rmdir()
            cols = []
            for k in range(3):
                xs = sorted(b[k] / 1000 for b in busy)
                cols.append(f"{statistics.median(xs):>6.1f} [{xs[int(len(xs) * 0.9)]:>5.1f}]")
            w = statistics.median(b[3] for b in busy)
            print(f"{interval:>10g} {cols[0]:>14} {cols[1]:>14} {cols[2]:>14} {w:>7g} {rtt['median']:>6.3f}")
            gcs = [(g, t) for g, when, t in probed["gc_ns"] if when >= start]  # while pinging
            longest = max((t for _, t in gcs), default=0) / 1e3
            print(
                f"  load {os.getloadavg()[0]:.2f}; {len(gcs)} garbage collections while pinging, by generation "
                f"{[sum(g == k for g, _ in gcs) for k in range(3)]}, longest {longest:.0f} us, "
                f"total {sum(t for _, t in gcs) / 1e6:.1f} ms; {probed['objects']} objects at exit; "
                f"{probed['turns']} turns of the loop, {len(busy)} of them wrote",
                file=sys.stderr,
            )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--intervals", default="0.005,0.001")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="qnet,qemu,floor,bridge")
    parser.add_argument("--pin", type=int, default=None, metavar="CPU")
    parser.add_argument("--nice", type=int, default=None)
    parser.add_argument("--slice-us", type=int, default=None, help="EEVDF slice of the forwarders marked +slice")
    parser.add_argument("--baseline", metavar="DIR", help="forwarder 'base': the worker of the checkout in DIR")
    parser.add_argument("--ping-cpu", type=int, default=None, metavar="CPU", help="run ping on this CPU")
    parser.add_argument("--probe", action="store_true", help="time the worker's loop instead (latency_probe.py)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the benchmark makes namespaces: run it as root", file=sys.stderr)
        return 2
    intervals = [float(x) for x in args.intervals.split(",")]
    global PING_CPU
    PING_CPU = args.ping_cpu
    Baseline.tree = args.baseline
    if args.probe:
        return probe(intervals, args.count, args.rounds)
    wanted = [k for k in args.only.split(",") if k]
    runs: dict[tuple[str, float], list[dict[str, float]]] = {}
    load = []
    for r in range(args.rounds):
        for name in wanted:
            fw = KINDS[name.removesuffix("+slice")](2)
            try:
                place(fw.pid, args.pin, args.nice, args.slice_us if name.endswith("+slice") else None)
                run_in(fw.guest(1), "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))  # ARP, warm-up
                for interval in intervals:
                    load.append(os.getloadavg()[0])
                    res = ping(fw, interval, args.count)
                    runs.setdefault((name, interval), []).append(res)
                    print(f"round {r + 1} {name:<6} -i {interval:g}: {res}", file=sys.stderr)
            finally:
                fw.close()
            time.sleep(0.5)
    print(f"\nping RTT ms, 2-port hub, {args.count} pings, median of {args.rounds} rounds")
    print(f"load average (1 min) during the run: {min(load):.2f}-{max(load):.2f}")
    print(f"{'forwarder':<8} {'interval s':>10} {'min':>7} {'median':>7} {'avg':>7} {'p90':>7}")
    for (name, interval), rs in runs.items():
        m = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(f"{name:<8} {interval:>10g} {m['min']:>7.3f} {m['median']:>7.3f} {m['avg']:>7.3f} {m['p90']:>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
