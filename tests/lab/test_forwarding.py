"""Frames cross the lab for real: host NIC -> bridge -> tap -> hub -> guests,
VLANs stay apart, and a hub floods exactly, never back to the source."""

from __future__ import annotations

import time

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
    try:
        time.sleep(0.5)
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
    got = {node: int(proc.communicate(timeout=60)[0].split()[-1]) for node, proc in counters.items()}
    assert got == {"vm1": 0, "vm2": n, "vm3": 0, "vm4": 0}  # flooded once, never back, never across

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
