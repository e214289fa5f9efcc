#!/usr/bin/env python3
"""Soak: the app runs a lab while iperf3 floods it with 64-byte UDP frames for
a long time (default 10 minutes). Reports the resident memory of the worker
and of the app at the start and the end of the flood, and checks the frame
accounting of the hub against the kernel's own counters: every frame the hub
took in was delivered to a guest's interface or counted as a drop. Needs root.

    sudo .venv/bin/python benchmarks/soak.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyroute2 import IPRoute  # noqa: E402

from qnet_tui.lab import netns  # noqa: E402
from qnet_tui.model.yamlio import load_file  # noqa: E402
from qnet_tui.ui.app import QnetApp  # noqa: E402

TOPOLOGY = """\
version: 1
name: soak
nodes:
  hub0: {kind: hub, vlan: 0}
  vm1: {kind: guest_nic, mac: "52:54:00:00:00:01", ipv4: 10.89.0.1/24}
  vm2: {kind: guest_nic, mac: "52:54:00:00:00:02", ipv4: 10.89.0.2/24}
links: [[hub0, vm1], [hub0, vm2]]
"""


def say(text: str) -> None:
    print(f"soak: {text}", file=sys.stderr, flush=True)  # progress, so a long run's figures survive a hang


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def delivered(guest: str) -> int:
    with netns.inside(netns.node_ns("soak", guest)):
        ipr = IPRoute()
    with ipr:
        return ipr.get_links(ifname="eth0")[0].get_attr("IFLA_STATS64")["rx_packets"]


async def soak(seconds: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="qnet-soak-"))
    os.environ["QNET_RUNTIME_DIR"] = str(folder / "run")
    path = folder / "soak.yaml"
    path.write_text(TOPOLOGY)
    app = QnetApp(load_file(path))
    latest: dict = {}  # only the newest snapshot: a list of them all would be growth of our own
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("r")
        while app.lab.state != "running":
            await pilot.pause(0.1)
        view_show = app.query_one("TrafficView").show

        def record(snapshot: dict) -> None:
            latest["stats"] = snapshot
            latest["shown"] = latest.get("shown", 0) + 1
            view_show(snapshot)

        app.query_one("TrafficView").show = record
        worker = app.lab.client.pid
        run = [sys.executable, "-m", "qnet_tui", "exec", str(app.lab.client.file)]
        server = subprocess.Popen(
            [*run, "vm2", "--", "iperf3", "-s", "-B", "10.89.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await pilot.pause(1.5)  # asyncio.sleep would stop the app's loop from drawing
        while not latest:
            await pilot.pause(0.2)
        # pyroute2's blocking calls want a thread of their own, away from the app's loop
        before = (
            dict(latest["stats"]["vlans"]["0"]),
            await asyncio.to_thread(delivered, "vm1"),
            await asyncio.to_thread(delivered, "vm2"),
        )
        start = {"worker": rss_kb(worker), "app": rss_kb(os.getpid())}
        client = subprocess.Popen(
            [*run, "vm1", "--", "iperf3", "-c", "10.89.0.2", "-u", "-b", "0", "-l", "64", "-t", str(int(seconds))],
            stdout=subprocess.DEVNULL,
        )
        began = time.monotonic()
        trace = [(0.0, start["worker"], start["app"])]
        while client.poll() is None:
            await pilot.pause(1)
            if time.monotonic() - began >= trace[-1][0] + seconds / 10:
                trace.append((time.monotonic() - began, rss_kb(worker), rss_kb(os.getpid())))
                t, w, a = trace[-1]
                say(f"{t:.0f} s: RSS worker {w / 1024:.1f} MiB, app {a / 1024:.1f} MiB; panes drawn {latest['shown']}")
        elapsed = time.monotonic() - began
        end = {"worker": rss_kb(worker), "app": rss_kb(os.getpid())}
        server.kill()
        server.wait()
        await pilot.pause(1.5)  # quiet: the last frames have landed and been counted
        after = (
            dict(latest["stats"]["vlans"]["0"]),
            await asyncio.to_thread(delivered, "vm1"),
            await asyncio.to_thread(delivered, "vm2"),
        )
        say("flood over; stopping the lab")
        await pilot.press("s")
        asked = time.monotonic()
        while app.lab.client is not None:
            await pilot.pause(0.1)
            if time.monotonic() - asked > 20:
                say(f"s did not stop the lab: state {app.lab.state}, focus {app.focused}, screen {app.screen}")
                app.lab.stop()
                asked = time.monotonic()
    hub_in = after[0]["frames"] - before[0]["frames"]
    # Only drops on the way out balance the hub's intake; guest-queue drops
    # happened before a frame reached the hub, and are reported beside them.
    drops = sent_drops(after[0]) - sent_drops(before[0])
    queue = guest_queue_drops(after[0]) - guest_queue_drops(before[0])
    landed = (after[1] - before[1]) + (after[2] - before[2])
    return {
        "seconds": elapsed,
        "frames_in": hub_in,
        "delivered": landed,
        "drops": drops,
        "guest_queue": queue,
        "worker_rss_start_kb": start["worker"],
        "worker_rss_end_kb": end["worker"],
        "app_rss_start_kb": start["app"],
        "app_rss_end_kb": end["app"],
        "trace": trace,
    }


def sent_drops(vlan: dict) -> int:
    reasons = ("full", "gone", "oversized", "mtu")
    return sum(port["drop_reasons"][why] for port in vlan["ports"].values() for why in reasons)


def guest_queue_drops(vlan: dict) -> int:
    return sum(port["drop_reasons"]["guest-queue"] for port in vlan["ports"].values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the soak runs a lab: run it as root", file=sys.stderr)
        return 2
    r = asyncio.run(soak(args.seconds))
    print(
        f"flood of {r['seconds']:.0f} s: {r['frames_in']:,} frames into the hub "
        f"({r['frames_in'] / r['seconds']:,.0f}/s)"
    )
    print(
        f"accounting: delivered {r['delivered']:,} + dropped {r['drops']:,} = {r['delivered'] + r['drops']:,}; "
        f"drift {r['frames_in'] - r['delivered'] - r['drops']:+,}; "
        f"{r['guest_queue']:,} more dropped by the senders' kernels before the hub (guest-queue)"
    )
    points = (f"{t:.0f}s {w / 1024:.1f}/{a / 1024:.1f}" for t, w, a in r["trace"])
    print("RSS of worker/app over the flood, MiB: " + ", ".join(points))
    for who in ("worker", "app"):
        print(
            f"{who} RSS: {r[f'{who}_rss_start_kb'] / 1024:.1f} MiB at the start, "
            f"{r[f'{who}_rss_end_kb'] / 1024:.1f} MiB at the end"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
