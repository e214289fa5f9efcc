#!/usr/bin/env python3
"""Stitch benchmark: a hub split over two machines, joined by remote ports
(lab/vxlan.py), against two Linux bridges joined by kernel vxlan devices, in
one run.

    sudo .venv/bin/python benchmarks/stitch.py [--seconds 5]

The machines are namespaces qnb-st-a and qnb-st-b with a veth underlay
(10.78.0.1, 10.78.0.2, MTU 1550, so that the guests keep 1500); guest vm1
sits on a, vm2 on b (eth0, 10.77.0.i/24).

  stitch  each machine a process of its own holding its guest's tap (no
          virtio-net header) in a hub with a VxlanPort to the other machine
  kernel  each machine a bridge with a veth to its guest and a vxlan device
          (VNI 42, remote the other machine)

Measured: iperf3 TCP (one stream, vm1 to vm2) and small frames (trafgen's
60-byte frames into vm1, frames/s delivered to vm2: benchmarks/framegen.py);
prints both and stitch/kernel ratios. Everything it makes, it removes.
Left to do: CPU per frame of the two machine processes, repeats and medians
(benchmarks/forwarding.py does both)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.forwarding import configure_guest, guest_ip, guest_mac, ipr_in, preflight, run_in, spawn_in
from benchmarks.framegen import blast, wait_quiet
from qnet_tui.lab import netns

MACHINES = {"a": "10.78.0.1", "b": "10.78.0.2"}
GUESTS = {"a": 1, "b": 2}  # the guest number on each machine
UNDERLAY_MTU = 1550
VNI = 42


def ns(role: str) -> str:
    return f"qnb-st-{role}"


def underlay() -> list[str]:
    """The two machines and their guests' namespaces, the underlay between the machines."""
    made = [ns("a"), ns("b"), ns("vm1"), ns("vm2")]
    for name in made:
        netns.create(name)
    with ipr_in(ns("a")) as ipr:
        ipr.link("add", ifname="under0", kind="veth", peer={"ifname": "under0", "net_ns_fd": ns("b")})
    for role, address in MACHINES.items():
        with ipr_in(ns(role)) as ipr:
            index = ipr.link_lookup(ifname="under0")[0]
            ipr.link("set", index=index, mtu=UNDERLAY_MTU, state="up")
            ipr.addr("add", index=index, address=address, prefixlen=24)
    return made


def other(role: str) -> str:
    return MACHINES["b" if role == "a" else "a"]


class Stitch:
    name = "stitch"

    def __init__(self) -> None:
        self.namespaces = underlay()
        self.procs = [
            subprocess.Popen([sys.executable, __file__, "--machine", role], stdout=subprocess.PIPE, text=True)
            for role in MACHINES
        ]
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a machine process did not start")
        for i in GUESTS.values():
            configure_guest(ns(f"vm{i}"), i)

    def close(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        for name in self.namespaces:
            netns.remove(name)


def machine(role: str) -> None:
    """One machine's share: its guest's tap and a remote port in one hub, on the worker's loop."""
    from qnet_tui.lab.loop import Loop
    from qnet_tui.lab.ports import Hub, TapPort
    from qnet_tui.lab.tap import open_tap
    from qnet_tui.lab.vxlan import VxlanEndpoint, VxlanPort

    loop = Loop()
    with netns.inside(ns(f"vm{GUESTS[role]}")):
        fd = open_tap("eth0", False)
    endpoint = VxlanEndpoint(loop, lambda level, message: print(message, file=sys.stderr), MACHINES[role])
    with netns.inside(ns(role)):
        endpoint.start()
    tap = TapPort(f"vm{GUESTS[role]}", fd, False)
    remote = VxlanPort(f"vxlan:{'b' if role == 'a' else 'a'}", endpoint, VNI, other(role))
    hub = Hub("hub0", 0)
    hub.attach(tap)
    hub.attach(remote)
    endpoint.add(remote)
    loop.add(fd, lambda mask: tap.on_readable())
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    print("ready", flush=True)
    loop.run()
    endpoint.close()
    os.close(fd)


class Kernel:
    name = "kernel"

    def __init__(self) -> None:
        self.namespaces = underlay()
        for role, i in GUESTS.items():
            with ipr_in(ns(role)) as ipr:
                under = ipr.link_lookup(ifname="under0")[0]
                ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0)
                br = ipr.link_lookup(ifname="br0")[0]
                ipr.link(
                    "add",
                    ifname="vx0",
                    kind="vxlan",
                    vxlan_id=VNI,
                    vxlan_group=other(role),
                    vxlan_local=MACHINES[role],
                    vxlan_port=4789,
                    vxlan_link=under,
                )
                ipr.link("add", ifname="p0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns(f"vm{i}")})
                for ifname in ("vx0", "p0"):
                    ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], master=br, state="up")
                ipr.link("set", index=br, state="up")
            configure_guest(ns(f"vm{i}"), i)

    def close(self) -> None:
        for name in self.namespaces:
            netns.remove(name)


def measure(seconds: float) -> dict[str, float]:
    vm1, vm2 = ns("vm1"), ns("vm2")
    run_in(vm1, "ping", "-c", "3", "-i", "0.2", "-W", "1", guest_ip(2))  # ARP, and the path MTU probed
    wait_quiet()
    server = spawn_in(vm2, "iperf3", "-s", "-B", guest_ip(2))
    time.sleep(0.5)
    try:
        tcp = run_in(vm1, "iperf3", "-c", guest_ip(2), "-t", str(seconds), "-J", timeout=seconds + 30)
        gbps = json.loads(tcp.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()
    wait_quiet()
    small = blast(None, [(vm1, guest_mac(1), vm2)], seconds)
    return {"tcp_gbps": gbps, "small_fps": small["delivered_fps"], "offered_fps": small["offered_fps"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--machine", choices=tuple(MACHINES), help=argparse.SUPPRESS)  # one machine's process
    args = parser.parse_args()
    if args.machine:
        machine(args.machine)
        return 0
    if (why := preflight()) is not None:
        print(why, file=sys.stderr)
        return 2
    results = {}
    for kind in (Stitch, Kernel):
        print(f"measuring {kind.name} ({args.seconds:g} s) ...", file=sys.stderr)
        setup = kind()
        try:
            results[kind.name] = measure(args.seconds)
        finally:
            setup.close()
    print(f"{'':8} {'TCP Gbit/s':>10} {'60B frames/s':>13} {'offered':>10}")
    for name, r in results.items():
        print(f"{name:8} {r['tcp_gbps']:>10.2f} {r['small_fps']:>13,.0f} {r['offered_fps']:>10,.0f}")
    s, k = results["stitch"], results["kernel"]
    tcp, small = s["tcp_gbps"] / k["tcp_gbps"], s["small_fps"] / k["small_fps"]
    print(f"stitch / kernel: TCP {tcp:.2f}x, small frames {small:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
