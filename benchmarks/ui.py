#!/usr/bin/env python3
"""UI benchmark: a generated 300-node topology against the 6-node seed sample
(the peer), in one run, measured with Pilot at 160x45.

    .venv/bin/python benchmarks/ui.py [--nodes 300] [--presses 40]

Reports time to first paint (app start until the first frame is on screen,
wall clock) and key-to-repaint latency for selection moves (arrows, tab) and
edits (duplicate, undo), as medians and 95th percentiles, and the big
topology's ratio to the small one. Key-to-repaint runs from the key event
entering the app to the first line the canvas paints after it (what the
person sees change); Pilot's own waits around a press are not counted. The
inspector and the problem list follow a moment later (SETTLE_S); their CPU
time per key is reported too. Targets: first paint < 1 s, key-to-repaint < 50 ms."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.keytiming import KeyTiming  # noqa: E402
from qnet_tui.model.yamlio import load_file, new_document  # noqa: E402
from qnet_tui.ui.app import QnetApp  # noqa: E402
from tests.topogen import big_topology  # noqa: E402

SIZE = (160, 45)


async def measure(document, presses: int) -> dict[str, float]:
    app = QnetApp(document)
    start = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        first_paint = time.perf_counter() - start
        timing = KeyTiming(app)

        async def timed(*keys: str, pace: float) -> tuple[list[float], list[float]]:
            latency, cpu = [], []
            for key in keys:
                timing.clear()
                c = time.process_time()
                await pilot.press(key)
                await pilot.pause(pace)
                cpu.append(time.process_time() - c)
                if (lag := timing.latency()) is not None:
                    latency.append(lag)
            return latency, cpu

        # Keys at a person's pace: each lands on an idle app, as typed keys do.
        moves, move_cpu = await timed(*(["down", "down", "right", "up", "left", "tab"] * presses)[:presses], pace=0.2)
        edits, edit_cpu = await timed(*(["d", "ctrl+z"] * presses)[:presses], pace=0.4)

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, int(len(values) * 0.95) - 1)] * 1000

    return {
        "first_paint_ms": first_paint * 1000,
        "move_p50_ms": statistics.median(moves) * 1000,
        "move_p95_ms": p95(moves),
        "edit_p50_ms": statistics.median(edits) * 1000,
        "edit_p95_ms": p95(edits),
        "move_cpu_ms": statistics.median(move_cpu) * 1000,
        "edit_cpu_ms": statistics.median(edit_cpu) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--presses", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        big = new_document(big_topology(args.nodes), path=Path(folder) / "big.yaml")
        small = load_file(ROOT / "sample_topologies" / "seed-path.yaml")
        results = {
            "seed (6 nodes)": asyncio.run(measure(small, args.presses)),
            f"generated ({len(big.topology.nodes)} nodes)": asyncio.run(measure(big, args.presses)),
        }
    names = list(results)
    print(
        f"{'topology':<24} {'first paint':>12} {'move p50':>9} {'move p95':>9} {'edit p50':>9} {'edit p95':>9}"
        f" {'move CPU':>9} {'edit CPU':>9}  (ms)"
    )
    for name, r in results.items():
        print(
            f"{name:<24} {r['first_paint_ms']:>12.0f} {r['move_p50_ms']:>9.1f} {r['move_p95_ms']:>9.1f} "
            f"{r['edit_p50_ms']:>9.1f} {r['edit_p95_ms']:>9.1f} {r['move_cpu_ms']:>9.1f} {r['edit_cpu_ms']:>9.1f}"
        )
    small_r, big_r = results[names[0]], results[names[1]]
    print("ratio big/small: " + ", ".join(f"{k.removesuffix('_ms')} {big_r[k] / small_r[k]:.2f}x" for k in big_r))
    ok = big_r["first_paint_ms"] < 1000 and big_r["move_p95_ms"] < 50 and big_r["edit_p95_ms"] < 50
    print("targets (first paint < 1 s, key-to-repaint < 50 ms):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
