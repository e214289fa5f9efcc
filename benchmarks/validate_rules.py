#!/usr/bin/env python3
"""Validation benchmark: each topology shape against itself at half the size,
in the same run, and against tests/topogen's mixed topology of the same size.

    .venv/bin/python benchmarks/validate_rules.py [--nodes 40000] [--repeat 3]

Reported per shape: seconds for N and N/2 nodes (CPU time, median of
--repeat) and their ratio: about 2 when validation is linear, 4 when it is
quadratic. The YAML reader is left out: these are Topology objects, as the
app validates after each edit. Target: a file at the 4 MiB limit (about
190,000 unconnected taps, or 45,000 guest NICs with addresses on one hub)
under a second."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.validate import validate
from tests.topogen import big_topology


def mac(n: int) -> str:
    return f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def taps(n: int) -> Topology:
    t = Topology(name="bench")
    for i in range(n):
        t.add(Node(f"t{i}", Kind.TAP))
    return t


def one_hub(n: int) -> Topology:
    t = Topology(name="bench")
    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    t.add(Node("tap0", Kind.TAP))
    t.links.append(("hub0", "tap0"))
    for i in range(n - 2):
        a = i + 1
        t.add(Node(f"v{i}", Kind.GUEST_NIC, {"mac": mac(a), "ipv4": f"10.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}/8"}))
        t.links.append(("hub0", f"v{i}"))
    return t


def vlans(n: int) -> Topology:
    """Hub and guest pairs, a segment each (one VLAN for all: an error per hub but the first)."""
    t = Topology(name="bench")
    for i in range(n // 2):
        t.add(Node(f"h{i}", Kind.HUB, {"vlan": 0}))
        t.add(Node(f"v{i}", Kind.GUEST_NIC, {"mac": mac(i + 1), "ipv4": "10.0.0.1/24"}))
        t.links.append((f"h{i}", f"v{i}"))
    return t


def loops(n: int) -> Topology:
    t = Topology(name="bench")
    for i in range(n // 4):
        t.add(Node(f"b{i}", Kind.BRIDGE))
        t.add(Node(f"h{i}", Kind.HUB, {"vlan": 0}))
        t.add(Node(f"ta{i}", Kind.TAP))
        t.add(Node(f"tb{i}", Kind.TAP))
        t.links += [(f"b{i}", f"ta{i}"), (f"b{i}", f"tb{i}"), (f"ta{i}", f"h{i}"), (f"tb{i}", f"h{i}")]
    return t


def sockets(n: int) -> Topology:
    t = Topology(name="bench")
    t.add(Node("hub0", Kind.HUB, {"vlan": 0}))
    for i in range(n - 1):
        mode = "listen" if i % 2 == 0 else "connect"
        attrs = {"transport": "stream", "mode": mode, "address": f"s{i // 2}.sock"}
        t.add(Node(f"s{i}", Kind.SOCKET, attrs))
        t.links.append(("hub0", f"s{i}"))
    return t


SHAPES: dict[str, Callable[[int], Topology]] = {
    "mixed (topogen)": big_topology,
    "unconnected taps": taps,
    "one hub, addresses": one_hub,
    "a segment per guest": vlans,
    "bridge loops": loops,
    "socket pairs": sockets,
}


def cpu_seconds(t: Topology, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        validate(t)
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.nodes
    print(f"{'shape':<22} {f'{n // 2} nodes':>12} {f'{n} nodes':>12} {'ratio':>7}")
    for name, shape in SHAPES.items():
        half, full = cpu_seconds(shape(n // 2), args.repeat), cpu_seconds(shape(n), args.repeat)
        print(f"{name:<22} {half:>11.3f}s {full:>11.3f}s {full / half:>7.2f}")


if __name__ == "__main__":
    main()
