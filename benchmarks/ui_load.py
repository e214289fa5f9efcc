#!/usr/bin/env python3
"""The app under load: with a flood of small frames through the worker, do the
traffic panes keep refreshing and do keys still answer? Against the same app
with the lab idle (the peer), in one run. Needs root.

    sudo .venv/bin/python benchmarks/ui_load.py [--seconds 8]

The flood is iperf3 UDP with 64-byte payloads from one guest to the other in
eight parallel streams (so the conversation table has rows to sort and
redraw), inside the lab; the app runs the worker as it always does (r), and
the pane shows its conversation table (o) the whole time. --forwarding worker
makes the worker forward the hub (the default: the kernel's fast path).
Reported: the flood's frame rate (from the worker's own statistics), how often
the panes were refreshed, and key-to-repaint latency for selection moves, idle
and under the flood. Targets: >= 50,000 frames/s, panes >= 4 Hz, keys < 50 ms."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.keytiming import KeyTiming  # noqa: E402
from qnet_tui.model.yamlio import load_file  # noqa: E402
from qnet_tui.ui.app import QnetApp  # noqa: E402
from qnet_tui.ui.traffic import TrafficView  # noqa: E402

TOPOLOGY = """\
version: 1
name: uiload
nodes:
  hub0: {kind: hub, vlan: 0, forwarding: FORWARDING}
  vm1: {kind: guest_nic, mac: "52:54:00:00:00:01", ipv4: 10.88.0.1/24}
  vm2: {kind: guest_nic, mac: "52:54:00:00:00:02", ipv4: 10.88.0.2/24}
links: [[hub0, vm1], [hub0, vm2]]
"""


def exec_in(path: Path, node: str, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "exec", str(path), node, "--", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(seconds: float, forwarding: str) -> dict[str, dict[str, float]]:
    folder = Path(tempfile.mkdtemp(prefix="qnet-uiload-"))
    os.environ["QNET_RUNTIME_DIR"] = str(folder / "run")
    path = folder / "uiload.yaml"
    path.write_text(TOPOLOGY.replace("FORWARDING", forwarding))
    app = QnetApp(load_file(path))
    results: dict[str, dict[str, float]] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("r")
        while app.lab.state != "running" or not app.query_one(TrafficView).panes:
            await pilot.pause(0.1)
        view = app.query_one(TrafficView)
        await pilot.press("o", "escape")  # the conversation table, and the keys back to the canvas
        shows: list[tuple[float, float]] = []  # (when, fps)
        show = view.show

        def counting(snapshot):
            shows.append((time.perf_counter(), snapshot.vlans["0"]["fps"]))
            show(snapshot)

        view.show = counting
        timing = KeyTiming(app)

        async def phase(name: str) -> None:
            shows.clear()
            latencies = []
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                timing.clear()
                await pilot.press("tab")  # always moves the selection, so always repaints
                await pilot.pause(0.25)
                if (lag := timing.latency()) is not None:
                    latencies.append(lag)
            span = shows[-1][0] - shows[0][0] if len(shows) > 1 else 0
            results[name] = {
                "pane_hz": (len(shows) - 1) / span if span else 0.0,
                "frames_per_s": statistics.median(f for _, f in shows) if shows else 0.0,
                "key_p50_ms": statistics.median(latencies) * 1000,
                "key_p95_ms": sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)] * 1000,
            }

        await phase("idle")
        server = exec_in(path, "vm2", "iperf3", "-s", "-B", "10.88.0.2")
        await asyncio.sleep(1)
        client = exec_in(
            path,
            "vm1",
            "iperf3",
            "-c",
            "10.88.0.2",
            "-u",
            "-b",
            "0",
            "-l",
            "64",
            "-P",
            "8",
            "-t",
            str(int(2 * seconds) + 6),
        )
        await asyncio.sleep(3)  # past iperf3's start, which slows the first seconds
        await phase("flood")
        await pilot.press("o")  # the frame log again: the peer of the table under the same flood
        await phase("flood, log")
        for proc in (client, server):
            proc.kill()
            proc.wait()
        await pilot.press("s")
        while app.lab.client is not None:
            await pilot.pause(0.1)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--forwarding", choices=("auto", "worker"), default="auto", help="the hub's forwarding")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the benchmark runs a lab: run it as root", file=sys.stderr)
        return 2
    results = asyncio.run(run(args.seconds, args.forwarding))
    print(f"{'lab':<10} {'frames/s':>10} {'panes Hz':>9} {'key p50 ms':>11} {'key p95 ms':>11}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['frames_per_s']:>10,.0f} {r['pane_hz']:>9.1f} {r['key_p50_ms']:>11.1f} "
            f"{r['key_p95_ms']:>11.1f}"
        )
    idle, flood = results["idle"], results["flood"]
    print(
        f"flood / idle: panes {flood['pane_hz'] / idle['pane_hz']:.2f}x, "
        f"key p95 {flood['key_p95_ms'] / idle['key_p95_ms']:.2f}x"
    )
    ok = flood["frames_per_s"] >= 50_000 and flood["pane_hz"] >= 4 and flood["key_p95_ms"] < 50
    print("targets (>= 50k frames/s, panes >= 4 Hz, keys < 50 ms):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
