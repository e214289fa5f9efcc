"""Guests with several NICs, for real: the router sample forwards between its
two VLANs in one namespace, and both VLANs count what crosses."""

from __future__ import annotations

import re
import sys
import time

from qnet_tui.lab import netns

from .conftest import SAMPLES, wait_for


def ping(lab, node: str, *args: str, count: int = 3):
    return lab.exec(node, "ping", "-c", str(count), "-i", "0.2", "-W", "2", *args)


def icmp(lab, after: float) -> tuple[int, int]:
    s = lab.latest(after)
    return s["vlans"]["1"]["protocols"]["icmp"], s["vlans"]["2"]["protocols"]["icmp"]


def test_router_sample_forwards_between_its_vlans(make_lab):
    lab = make_lab("router.yaml")
    v1, v2 = icmp(lab, time.time())
    for node, address in (("hostA", "10.0.2.10"), ("hostB", "10.0.1.10"), ("hostA", "fd00:2::10")):
        result = ping(lab, node, address)
        assert result.returncode == 0 and " 0% packet loss" in result.stdout, result.stdout + result.stderr
        assert re.search(r"(ttl|hlim)=63 ", result.stdout), result.stdout  # one hop: through the router
    # 3 pings of 3 requests and 3 replies, each on both VLANs: both panes show all of it
    stamp = time.time()
    wait_for(lambda: min(a - b for a, b in zip(icmp(lab, stamp), (v1, v2), strict=True)) >= 18, 10, "the ICMP counts")
    s = lab.latest(stamp)
    assert set(s["vlans"]["1"]["ports"]) == {"hostA", "router-v1"}
    assert set(s["vlans"]["2"]["ports"]) == {"hostB", "router-v2"}
    for vlan, nic in (("1", "router-v1"), ("2", "router-v2")):
        assert s["vlans"][vlan]["ports"][nic]["rx_frames"] >= 9 and s["vlans"][vlan]["drops"] == 0
    assert lab.stop() == 0


def test_a_guest_is_one_namespace_with_an_interface_per_nic(make_lab):
    lab = make_lab("router.yaml")
    names = {n.removeprefix(f"qnet-{lab.name}.") for n in netns.existing() if n.startswith(f"qnet-{lab.name}.")}
    assert names == {"router", "hostA", "hostB"}  # not one per NIC
    links = lab.exec("router", "ip", "-br", "link").stdout
    assert re.search(r"^eth0(@\S+)? .* 52:54:00:00:01:01", links, re.M) and re.search(
        r"^eth1(@\S+)? .* 52:54:00:00:02:01", links, re.M
    )
    forwarding = lab.exec("router", "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")
    assert forwarding.stdout.split() == ["1", "1"]
    assert lab.exec("hostA", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    routes = lab.exec("hostA", "ip", "route", "show", "default").stdout
    assert routes.startswith("default via 10.0.1.1 dev eth0"), routes
    assert "default via fd00:1::1 dev eth0" in lab.exec("hostA", "ip", "-6", "route", "show", "default").stdout
    # exec on a NIC runs in its guest, told its interface; a guest's hostname is its programs'
    told = lab.exec("router-v2", "sh", "-c", 'echo "$QNET_IFNAME $(hostname)"').stdout.split()
    assert told == ["eth1", "router"]
    assert lab.exec("router", "hostname").stdout.strip() == "router"
    # demo traffic from a guest's second NIC leaves through that NIC: onto VLAN 2
    before = lab.latest(time.time())["vlans"]["2"]["protocols"]["arp"]
    result = lab.exec("router-v2", sys.executable, "-m", "qnet_tui.lab.demo", "arp", "10.0.2.99")
    assert result.returncode == 0 and "52:54:00:00:02:01" in result.stdout, result.stdout + result.stderr
    wait_for(lambda: lab.latest(time.time())["vlans"]["2"]["protocols"]["arp"] > before, 10, "the ARP on VLAN 2")


def test_without_forwarding_the_router_routes_nothing(make_lab):
    text = (SAMPLES / "router.yaml").read_text().replace("forwarding: true", "forwarding: false")
    lab = make_lab("", text=text)
    assert ping(lab, "hostA", "10.0.1.1", count=1).returncode == 0  # its own VLAN still answers
    result = ping(lab, "hostA", "10.0.2.10", count=2)
    assert result.returncode != 0 and "100% packet loss" in result.stdout, result.stdout
