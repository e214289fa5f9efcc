#!/usr/bin/env python3
"""Small-frame scaling: how many 60-byte frames a hub delivers as it grows,
for qnet-tui's worker, QEMU's hub and the Linux bridge in the same run.

    sudo .venv/bin/python benchmarks/smallframes.py [--seconds 4] [--repeat 2] [--guests 1,2,4,8,16] [--hubs]

trafgen (netsniff-ng, benchmarks/framegen.py) sends broadcast frames of
EtherType 0x88b5 into vm1's interface, faster than any forwarder here; the
hub floods them to its other guests:

  guests  vm1 plus G receiving guests on one hub (G = 1, 2, 4, 8, 16): frames/s
          delivered to one guest (vm2), and to all G together
  hubs    one lab with two hubs of two guests each: one generator into the
          first hub, then one into each at once (both busy), frames/s
          delivered to the hubs' vm2s together

Each figure is the median of --repeat runs, each on a fresh lab; the forwarder's
CPU and the machine's load average come with it. The set-up (namespaces
qnb-*, lab 'qnetbench') is benchmarks/forwarding.py's."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.forwarding import KINDS, chosen, cpu_cell, guest_mac, preflight, run_in
from benchmarks.framegen import blast, loadavg, wait_quiet


def warm_up(fw, hubs: int) -> float:
    # One round of frames through each hub, so nothing is learned or allocated during the count.
    for h in range(hubs):
        run_in(fw.guest(1, h), "ping", "-c", "1", "-W", "1", "-b", "10.77.0.255")
    return wait_quiet()


def guests_case(kind, guests: int, seconds: float) -> dict[str, float]:
    fw = kind(guests + 1)
    try:
        quiet = warm_up(fw, 1)
        others = [fw.guest(i) for i in range(3, guests + 2)]
        return blast(fw.pid, [(fw.guest(1), guest_mac(1), fw.guest(2))], seconds, others, in_kernel=fw.in_kernel) | {
            "busy_before_pct": quiet
        }
    finally:
        fw.close()


def hubs_case(kind, busy: int, seconds: float) -> dict[str, float]:
    fw = kind(2, hubs=2)
    try:
        quiet = warm_up(fw, 2)
        pairs = [(fw.guest(1, h), guest_mac(1, h), fw.guest(2, h)) for h in range(busy)]
        return blast(fw.pid, pairs, seconds, in_kernel=fw.in_kernel) | {"busy_before_pct": quiet}
    finally:
        fw.close()


def row(label: str, name: str, r: dict[str, float]) -> str:
    return (
        f"{label:<10} {name:<9} {r['delivered_fps']:>12,.0f} {r['delivered_all_fps']:>12,.0f}"
        f" {r['offered_fps']:>10,.0f} {cpu_cell(r):>6} {r['softirq_pct']:>9.0f} {r['gen_cpu_pct']:>6.0f}"
        f" {r['busy_pct']:>6.0f} {r['busy_before_pct']:>5.0f}"
        f" {r['cpu_s_per_mframe']:>9.2f}"
    )


def ratios(label: str, by_name: dict[str, dict[str, float]]) -> str:
    if "qnet" not in by_name:
        return ""
    q = by_name["qnet"]["delivered_fps"]
    parts = [f"qnet/{p} {q / by_name[p]['delivered_fps']:.2f}x" for p in ("qemu", "bridge") if p in by_name]
    if "qemu" in by_name:
        cost = by_name["qnet"]["cpu_s_per_mframe"] / by_name["qemu"]["cpu_s_per_mframe"]
        parts.append(f"CPU per frame qnet/qemu {cost:.2f}x")
    return f"{label:<10} " + ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--guests", default="1,2,4,8,16", help="receiving guests on one hub, comma-separated")
    parser.add_argument("--hubs", action="store_true", help="also 1 and 2 hubs busy at once")
    parser.add_argument("--only", default="qnet,worker,bridge,qemu")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if (why := preflight()) is not None:
        print(why, file=sys.stderr)
        return 2
    wanted = chosen(args.only)
    load0 = loadavg()
    results: dict[str, dict[str, dict[str, float]]] = {}
    cases = [(f"{g} guests", guests_case, g) for g in (int(x) for x in args.guests.split(",") if x)]
    if args.hubs:
        cases += [(f"{b} hub busy" if b == 1 else f"{b} hubs busy", hubs_case, b) for b in (1, 2)]
    # In turns (every case and forwarder once, then again) so that a busy spell of the machine hits them all.
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in range(args.repeat):
        for label, case, n in cases:
            for name in wanted:
                print(f"measuring {name}, {label} (run {rep + 1} of {args.repeat}) ...", file=sys.stderr)
                runs.setdefault((label, name), []).append(case(KINDS[name], n, args.seconds))
    for (label, name), rs in runs.items():
        results.setdefault(label, {})[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    print(f"\nmedian of {args.repeat} runs of {args.seconds:g} s; load average {load0} before, {loadavg()} after")
    print("frames/s: to one guest (vm2; with 2 hubs busy, both hubs' vm2s), to every receiving guest")
    print("CPU % of one core: the forwarder's processes, the generators (gen); the whole machine:")
    print("softirq and busy while frames flow, pre: busy in the second before (waited for below 30 %)")
    head = f"{'case':<10} {'hub':<9} {'frames/s':>12} {'all guests':>12} {'offered':>10}"
    print(head + f" {'CPU %':>6} {'softirq %':>9} {'gen %':>6} {'busy %':>6} {'pre %':>5} {'CPU s/Mfr':>9}")
    for label, by_name in results.items():
        for name, r in by_name.items():
            print(row(label, name, r))
    for label, by_name in results.items():
        if line := ratios(label, by_name):
            print(line)
    if args.json:
        print(json.dumps({"seconds": args.seconds, "load": [load0, loadavg()], "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
