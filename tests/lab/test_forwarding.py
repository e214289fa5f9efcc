"""Frames cross the lab for real: host NIC -> bridge -> tap -> hub -> guests,
VLANs stay apart, and a hub floods exactly, never back to the source."""

from __future__ import annotations

import os
import signal
import time

import pytest

from .conftest import wait_for


def ping(lab, node: str, address: str, count: int = 3):
    return lab.exec(node, "ping", "-c", str(count), "-i", "0.2", "-W", "2", address)


def test_seed_path_outside_and_guests_reach_each_other(make_lab):
    lab = make_lab("seed-path.yaml")
    before = lab.vlan("0")["protocols"]["icmp"]
    for guest in ("10.0.0.11", "10.0.0.12"):
        result = ping(lab, "eth0", guest)  # the outside host, across bridge, tap and hub
        assert result.returncode == 0, result.stdout + result.stderr
        assert " 0% packet loss" in result.stdout
    for guest in ("vm1", "vm2"):
        result = ping(lab, guest, "10.0.0.1")
        assert result.returncode == 0, result.stdout + result.stderr
    stamp = time.time()
    vlan = lab.vlan("0", after=stamp)
    # 4 pings of 3 requests and 3 replies each, all through hub0
    assert vlan["protocols"]["icmp"] - before >= 24
    assert vlan["hub"] == "hub0" and vlan["drops"] == 0
    ports = vlan["ports"]
    assert set(ports) == {"tap0", "vm1", "vm2"}
    assert ports["tap0"]["rx_frames"] >= 12 and ports["vm1"]["rx_frames"] >= 6
    assert lab.stop() == 0


def test_guest_to_guest_tcp_with_iperf3(make_lab):
    lab = make_lab("seed-path.yaml")
    server = lab.spawn("vm2", "iperf3", "-s", "-1", "-B", "10.0.0.12")

    def listening() -> bool:
        assert server.poll() is None, server.communicate()[1]  # the server gave up
        return bool(lab.exec("vm2", "ss", "-Hltn", "sport = :5201").stdout.strip())

    try:
        # The client starts once the server listens, however long a loaded machine takes.
        wait_for(listening, 30, "iperf3 to listen in vm2")
        result = lab.exec("vm1", "iperf3", "-c", "10.0.0.12", "-t", "1", "-J")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        assert '"bits_per_second"' in result.stdout
    finally:
        server.kill()
        server.wait()
    vlan = lab.vlan("0", after=time.time())
    assert vlan["protocols"]["tcp"] > 1000


def test_vlans_are_isolated(make_lab):
    lab = make_lab("two-vlans.yaml")
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0  # same VLAN
    assert ping(lab, "vm3", "10.0.0.4").returncode == 0
    result = ping(lab, "vm1", "10.0.0.3", count=2)  # same subnet, other VLAN
    assert result.returncode != 0 and "100% packet loss" in result.stdout
    assert ping(lab, "vm4", "10.0.0.2", count=2).returncode != 0


def test_flood_counts_exactly_and_stays_in_its_vlan(make_lab):
    lab = make_lab("two-vlans.yaml")
    n = 3000
    counters = {node: lab.frames(node, "count", "eth0", "1.5") for node in ("vm1", "vm2", "vm3", "vm4")}
    for proc in counters.values():
        assert proc.stdout.readline().strip() == "ready"
    before = lab.latest(after=time.time())
    sender = lab.frames("vm1", "send", "eth0", "52:54:00:00:01:01", str(n))
    assert sender.wait(60) == 0, sender.stderr.read()
    got = {node: proc.communicate(timeout=60)[0].split()[-2:] for node, proc in counters.items()}
    # flooded once, intact at every size from 60 to 1514 bytes, never back, never across
    assert got == {"vm1": ["0", "0"], "vm2": [str(n), "0"], "vm3": ["0", "0"], "vm4": ["0", "0"]}

    after = lab.latest(after=time.time() + 0.3)
    v1, v1_before = after["vlans"]["1"], before["vlans"]["1"]
    assert v1["protocols"]["other"] - v1_before["protocols"]["other"] == n
    assert v1["ports"]["vm1"]["rx_frames"] - v1_before["ports"]["vm1"]["rx_frames"] >= n
    assert after["vlans"]["2"]["protocols"]["other"] == 0
    assert v1["drops"] == 0


def test_direct_peer_guest_and_tap(make_lab):
    lab = make_lab("direct-peer.yaml")
    result = ping(lab, "eth0", "192.168.77.10")
    assert result.returncode == 0, result.stdout + result.stderr
    stamp = time.time()
    peers = wait_for(lambda: (s := lab.latest(after=stamp))["peers"].get("vm1-tap0") and s["peers"], 10, "peer stats")
    assert peers["vm1-tap0"]["protocols"]["icmp"] >= 6
    assert lab.latest()["vlans"] == {}


def test_a_port_that_is_down_drops_without_stalling_the_others(tmp_path, make_lab):
    text = (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 3}\n"
        + "".join(f"  vm{i}: {{kind: guest_nic, mac: '52:54:00:00:03:0{i}'}}\n" for i in (1, 2, 3))
        + "links: [[hub0, vm1], [hub0, vm2], [hub0, vm3]]\n"
    )
    lab = make_lab("", text=text)
    assert lab.exec("vm3", "ip", "link", "set", "eth0", "down").returncode == 0
    n = 500
    counter = lab.frames("vm2", "count", "eth0", "1.5")
    assert counter.stdout.readline().strip() == "ready"
    before = lab.vlan("3", after=time.time())["ports"]["vm3"]["drop_reasons"]["gone"]
    assert lab.frames("vm1", "send", "eth0", "52:54:00:00:03:01", str(n)).wait(60) == 0
    assert counter.communicate(timeout=60)[0].split()[-2:] == [str(n), "0"]
    vm3 = lab.vlan("3", after=time.time() + 0.3)["ports"]["vm3"]
    assert vm3["drop_reasons"]["gone"] - before >= n


def test_bridges_honour_stp(make_lab):
    from qnet_tui.lab import netns

    text = (
        "version: 1\nname: x\nnodes:\n  br0: {kind: bridge, stp: true}\n  br1: {kind: bridge}\n"
        "  up0: {kind: host_nic}\n  up1: {kind: host_nic}\nlinks: [[up0, br0], [up1, br1]]\n"
    )
    lab = make_lab("", text=text)
    ipr = netns.iproute(netns.host_ns(lab.name))
    try:
        state = {
            name: ipr.get_links(ifname=name)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_BR_STP_STATE")
            for name in ("br0", "br1")
        }
    finally:
        ipr.close()
    assert state == {"br0": 1, "br1": 0}


def test_demo_traffic_reaches_the_vlan(make_lab):
    import sys

    lab = make_lab("two-vlans.yaml")
    before = lab.latest(after=time.time())["vlans"]["1"]["protocols"]
    for args in (["arp", "10.0.0.2"], ["dhcp"], ["udp", "10.0.0.2", "300"]):
        result = lab.exec("vm1", sys.executable, "-m", "qnet_tui.lab.demo", *args)
        assert result.returncode == 0 and result.stdout.startswith("sent "), result.stdout + result.stderr
    after = wait_for(
        lambda: (v := lab.vlan("1", after=time.time()))["protocols"]["udp"] - before["udp"] >= 301 and v,
        10,
        "the demo frames",
    )["protocols"]
    assert after["arp"] - before["arp"] >= 1
    assert lab.latest()["vlans"]["2"]["protocols"]["udp"] == 0


@pytest.mark.parametrize(
    ("sample", "vlan", "sender", "port", "device"),
    [
        ("two-vlans.yaml", "1", ("vm1", "eth0"), "vm1", ("vm1", "eth0")),  # a guest's eth0
        ("seed-path.yaml", "0", ("eth0", "eth0"), "tap0", (None, "tap0")),  # a tap node, fed by its bridge
        ("router.yaml", "2", ("router-v2", "eth1"), "router-v2", ("router", "eth1")),  # a guest's second NIC
    ],
)
def test_frames_the_kernel_could_not_queue_to_the_worker_are_drops(make_lab, sample, vlan, sender, port, device):
    """A sender faster than the worker (here: a worker stopped for a moment)
    overflows the tap's queue; the kernel counts those frames in the device's
    tx_dropped, and the lab reports them as the port's `guest-queue` drops."""
    from qnet_tui.lab import netns

    from .conftest import SAMPLES

    # The worker's taps: a kernel hub's guest hands its frames on in its own send call, with no queue to overflow.
    lab = make_lab(
        "", text=(SAMPLES / sample).read_text().replace("kind: hub\n", "kind: hub\n    forwarding: worker\n")
    )
    node, ifname = device
    ns = netns.node_ns(lab.name, node) if node else netns.host_ns(lab.name)

    def tx_dropped() -> int:
        ipr = netns.iproute(ns)
        try:
            return ipr.get_links(ifname=ifname)[0].get_attr("IFLA_STATS64")["tx_dropped"]
        finally:
            ipr.close()

    assert lab.vlan(vlan)["ports"][port]["drop_reasons"]["guest-queue"] == tx_dropped() == 0
    os.kill(lab.proc.pid, signal.SIGSTOP)
    try:
        sender_proc = lab.frames(sender[0], "send", sender[1], "52:54:00:00:0f:01", "3000")
        assert sender_proc.wait(60) == 0, sender_proc.stderr.read()
    finally:
        os.kill(lab.proc.pid, signal.SIGCONT)
    assert tx_dropped() >= 1000  # 3000 frames into a queue of 1000 (the tap's txqueuelen)

    def counted() -> tuple[dict, int] | None:
        # The device's count as the statistics saw it (the queue may drop
        # a frame more until the worker, woken, has drained it).
        v, dropped = lab.vlan(vlan, after=time.time()), tx_dropped()
        return (v, dropped) if v["ports"][port]["drop_reasons"]["guest-queue"] == dropped else None

    v, dropped = wait_for(counted, 15, "the guest-queue drops in the statistics")
    assert dropped >= 1000
    assert v["ports"][port]["drops"] >= dropped and v["drops"] >= dropped
    assert tx_dropped() == dropped
