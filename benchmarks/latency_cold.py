#!/usr/bin/env python3
"""The worker's forwarding code on cold caches, piece by piece, against the
least a Python forwarder does: one frame each, right after sweeping a buffer
larger than the caches (what an idle stretch with other programs running
does to them). No root, no namespaces: datagram socketpairs stand in for the
taps (one frame per read, EAGAIN when empty).

    .venv/bin/python benchmarks/latency_cold.py [--rounds 400] [--warm]

Pieces (median microseconds for one frame):
  read+write   os.read then os.write: the two syscalls alone
  floor        read until EAGAIN, writing each (the floor of latency.py)
  hub setup    Hub.forward with no frame: what a turn costs before the first
  hub, 1 frame Hub.forward of one frame already read (no EAGAIN read)
  worker       TapPort.on_readable: read until EAGAIN through Hub.forward"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qnet_tui.lab.ports import Hub, TapPort

FRAME = bytes(10) + bytes.fromhex("525400770002525400770001") + b"\x08\x00" + bytes(84)  # vnet header + 98 B


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--sweep-mb", type=int, default=32)
    parser.add_argument("--warm", action="store_true", help="no sweep between frames")
    args = parser.parse_args()
    a_in, a_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b_in, b_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (a_in, a_out, b_in, b_out):
        s.setblocking(False)
    fd, out = a_in.fileno(), b_out.fileno()
    hub = Hub("hub0", 0)
    src = TapPort("vm1", fd, True)
    hub.attach(src)
    hub.attach(TapPort("vm2", out, True))
    junk = bytearray(args.sweep_mb << 20)
    ones = b"\x01" * (len(junk) // 64)

    def read_write() -> None:
        os.write(out, os.read(fd, 65600))

    def floor() -> None:
        for _ in range(64):
            try:
                frame = os.read(fd, 65600)
            except BlockingIOError:
                break
            os.write(out, frame)

    def hub_setup() -> None:
        hub.forward(src, iter(()))

    def hub_one() -> None:
        hub.forward(src, [os.read(fd, 65600)])

    pieces = {
        "read+write": read_write,
        "floor": floor,
        "hub setup": hub_setup,
        "hub, 1 frame": hub_one,
        "worker": src.on_readable,
    }
    times: dict[str, list[float]] = {name: [] for name in pieces}
    for _ in range(args.rounds):
        for name, piece in pieces.items():  # in turn, so that the machine's moods fall on all alike
            hub.sample_budget = 0  # samples are a few a second: not on a typical frame's path
            a_out.send(FRAME)
            if not args.warm:
                junk[::64] = ones
            t0 = time.perf_counter_ns()
            piece()
            times[name].append((time.perf_counter_ns() - t0) / 1000)
            for sock in (a_in, b_in):  # what a piece left unread
                while True:
                    try:
                        sock.recv(70000)
                    except BlockingIOError:
                        break
    print(f"one frame, {'warm' if args.warm else 'cold'}, median of {args.rounds} (us); load {os.getloadavg()[0]:.2f}")
    for name, ts in times.items():
        print(f"{name:<14} {statistics.median(ts):>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
