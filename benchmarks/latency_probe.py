#!/usr/bin/env python3
"""`qnet-tui run` with a stopwatch on its loop, for benchmarks/latency.py.

    python benchmarks/latency_probe.py OUT.json run FILE [run's options]

Wraps the worker's epoll and os.write in this process only (the product's
path is untouched): every turn of the Loop records when epoll_wait was
entered and returned, and when each write that turn made returned, in
time.monotonic_ns(). At exit it writes OUT.json: per turn that wrote
something, the time from epoll's return to the first write (the worker's own
code), that write (the kernel: the receiver's stack runs in it), and from
the last write back into epoll_wait; and how long each wait lasted."""

from __future__ import annotations

import atexit
import gc
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qnet_tui import cli
from qnet_tui.lab import loop as loop_module

now = time.monotonic_ns
turns: list[tuple[int, int, list[int]]] = []  # (entered epoll_wait, returned, writes' starts and returns)
writes: list[int] = []
collections: list[tuple[int, int, int]] = []  # the garbage collector's runs: (generation, start, ns)
_gc_start = 0


def on_gc(phase: str, info: dict) -> None:
    global _gc_start
    if phase == "start":
        _gc_start = now()
    else:
        collections.append((info["generation"], _gc_start, now() - _gc_start))


real_write = os.write


def write(fd: int, data: bytes) -> int:
    writes.append(now())
    try:
        return real_write(fd, data)
    finally:
        writes.append(now())


class Epoll:
    def __init__(self, real) -> None:
        self.real = real
        self.register, self.modify, self.unregister, self.close = (
            real.register,
            real.modify,
            real.unregister,
            real.close,
        )
        self.fileno = real.fileno

    def poll(self, timeout: float = -1, maxevents: int = -1):
        global writes
        if turns:
            turns[-1] = (*turns[-1][:2], writes)
        writes = []
        entered = now()
        try:
            return self.real.poll(timeout, maxevents)
        finally:
            turns.append((entered, now(), []))


def summary() -> dict:
    # (to the first write's start, that write, last write's return to the next wait, writes)
    busy = []
    waits = [returned - entered for entered, returned, _ in turns]
    for (_, returned, ws), (entered_next, _, _) in itertools.pairwise(turns):
        if ws:
            busy.append((ws[0] - returned, ws[1] - ws[0], entered_next - ws[-1], len(ws) // 2))
    return {
        "turns": len(turns),
        "waits_ns": waits,
        "busy_ns": busy,
        "gc_ns": collections,
        "objects": len(gc.get_objects()),
    }


def dump(path: str) -> None:
    Path(path).write_text(json.dumps(summary()))


def main() -> int:
    out = sys.argv[1]
    init = loop_module.Loop.__init__

    def probed_init(self) -> None:
        init(self)
        self.epoll = Epoll(self.epoll)

    loop_module.Loop.__init__ = probed_init
    os.write = write
    gc.callbacks.append(on_gc)
    atexit.register(dump, out)
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
