"""Cable pull: a link of a running lab taken down and up, both ways or one,
with real traffic; the guest sees NO-CARRIER; drops are counted `link-down`."""

from __future__ import annotations

import subprocess
import sys
import time

from qnet_tui.lab import netns

from .conftest import wait_for
from .test_forwarding import ping

IFF_LOWER_UP = 0x10000

DIRECT_PAIR = """version: 1
name: x
nodes:
  vm1: {kind: guest_nic, mac: '52:54:00:00:09:01', ipv4: 10.9.0.1/24}
  tap0: {kind: tap}
  br0: {kind: bridge, ipv4: 10.9.0.2/24}
links: [[vm1, tap0], [tap0, br0]]
"""


def link(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qnet_tui", "link", str(lab.file), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def carrier(lab, guest: str, ifname: str = "eth0") -> bool:
    """Whether the guest's interface has carrier (LOWER_UP), as the guest sees it."""
    with netns.iproute(netns.node_ns(lab.name, guest)) as ipr:
        (found,) = ipr.get_links(ifname=ifname)
    return bool(found["flags"] & IFF_LOWER_UP) and found.get_attr("IFLA_CARRIER") == 1


def port_stats(lab, vlan: str, port: str) -> dict:
    return lab.vlan(vlan, after=time.time() + 0.3)["ports"][port]


def test_a_pulled_cable_stops_ping_and_shows_no_carrier_until_put_back(make_lab):
    lab = make_lab("two-vlans.yaml")
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0
    assert carrier(lab, "vm2")

    done = link(lab, "hub1", "vm2", "down")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "link hub1 - vm2: down"
    wait_for(lambda: not carrier(lab, "vm2"), 5, "vm2's eth0 to lose carrier")
    result = ping(lab, "vm1", "10.0.0.2", count=2)
    assert result.returncode != 0 and "100% packet loss" in result.stdout
    vm2 = port_stats(lab, "1", "vm2")
    assert vm2["drop_reasons"]["link-down"] >= 2  # vm1's requests (ARP or ICMP), flooded to vm2's cable
    assert lab.latest(after=time.time())["links"] == [{"a": "hub1", "b": "vm2", "a_b": False, "b_a": False}]
    assert carrier(lab, "vm1")  # the other cable of the hub is untouched

    done = link(lab, "vm2", "hub1", "up")  # either order names the link
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "link vm2 - hub1: up"
    wait_for(lambda: carrier(lab, "vm2"), 5, "vm2's eth0 to get carrier back")
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0
    assert lab.latest(after=time.time())["links"] == []
    assert lab.stop() == 0


def test_one_direction_down_drops_that_way_only(make_lab):
    lab = make_lab("two-vlans.yaml")
    n = 300
    done = link(lab, "hub1", "vm2", "down", "--direction", "hub1-vm2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "link hub1 - vm2: hub1 -> vm2 down, vm2 -> hub1 up"
    assert carrier(lab, "vm2")  # a one-way fault: the guest cannot see it

    # hub1 -> vm2 is down: vm1's frames never reach vm2, and are counted
    before = port_stats(lab, "1", "vm2")["drop_reasons"]["link-down"]
    counter = lab.frames("vm2", "count", "eth0", "1.5")
    assert counter.stdout.readline().strip() == "ready"
    assert lab.frames("vm1", "send", "eth0", "52:54:00:00:01:01", str(n)).wait(60) == 0
    assert counter.communicate(timeout=60)[0].split()[-2:] == ["0", "0"]
    vm2 = port_stats(lab, "1", "vm2")
    assert vm2["drop_reasons"]["link-down"] - before >= n  # and the odd IPv6 neighbour message
    assert vm2["drops"] >= n

    # vm2 -> hub1 is up: vm2's frames reach vm1, every one
    counter = lab.frames("vm1", "count", "eth0", "1.5")
    assert counter.stdout.readline().strip() == "ready"
    assert lab.frames("vm2", "send", "eth0", "52:54:00:00:01:02", str(n)).wait(60) == 0
    assert counter.communicate(timeout=60)[0].split()[-2:] == [str(n), "0"]
    assert lab.latest(after=time.time())["links"] == [{"a": "hub1", "b": "vm2", "a_b": False, "b_a": True}]

    # the other direction alone: vm2's frames are dropped where they enter
    assert link(lab, "hub1", "vm2", "up").returncode == 0
    assert link(lab, "hub1", "vm2", "down", "--direction", "vm2-hub1").returncode == 0
    before = port_stats(lab, "1", "vm2")["drop_reasons"]["link-down"]
    counter = lab.frames("vm1", "count", "eth0", "1.5")
    assert counter.stdout.readline().strip() == "ready"
    assert lab.frames("vm2", "send", "eth0", "52:54:00:00:01:02", str(n)).wait(60) == 0
    assert counter.communicate(timeout=60)[0].split()[-2:] == ["0", "0"]
    assert port_stats(lab, "1", "vm2")["drop_reasons"]["link-down"] - before >= n
    assert lab.stop() == 0


def test_a_direct_pair_cable_takes_both_taps_carrier(make_lab):
    lab = make_lab("", text=DIRECT_PAIR)
    assert ping(lab, "vm1", "10.9.0.2").returncode == 0
    assert link(lab, "vm1", "tap0", "down").returncode == 0
    wait_for(lambda: not carrier(lab, "vm1"), 5, "vm1 to lose carrier")
    with netns.iproute(netns.host_ns(lab.name)) as ipr:
        (tap,) = ipr.get_links(ifname="tap0")
    assert tap.get_attr("IFLA_CARRIER") == 0  # the bridge's side of the cable is out too
    assert ping(lab, "vm1", "10.9.0.2", count=2).returncode != 0
    peers = lab.latest(after=time.time() + 0.3)["peers"]["vm1-tap0"]["ports"]
    assert peers["vm1"]["drop_reasons"]["link-down"] + peers["tap0"]["drop_reasons"]["link-down"] >= 1
    assert link(lab, "vm1", "tap0", "up").returncode == 0
    wait_for(lambda: carrier(lab, "vm1"), 5, "vm1's carrier back")
    assert ping(lab, "vm1", "10.9.0.2").returncode == 0
    assert lab.stop() == 0


def test_the_cli_says_what_is_wrong_in_one_line(make_lab, tmp_path):
    lab = make_lab("", text=DIRECT_PAIR)
    cases = [
        (("vm1", "nope", "down"), "has no node 'nope'"),
        (("vm1", "br0", "down"), "has no link vm1 - br0; vm1 links to tap0"),
        (("tap0", "br0", "down"), "tap0 - br0 is not forwarded by the lab"),
        (("vm1", "tap0", "down", "--direction", "sideways"), "--direction is 'sideways'"),
    ]
    for args, expected in cases:
        result = link(lab, *args)
        assert result.returncode == 1, (args, result)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert lab.latest(after=time.time())["links"] == []
    assert lab.stop() == 0
    result = link(lab, "vm1", "tap0", "down")
    assert result.returncode == 1 and "is not running" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_worker_refuses_a_link_it_does_not_have_with_an_error_reply(make_lab):
    from qnet_tui import protocol

    from .test_control import Client

    lab = make_lab("", text=DIRECT_PAIR)
    client = Client(lab.name)
    assert client.next("state")["state"] == "running"
    for message, expected in [
        (protocol.Link("vm1", "nope", False), 'link: no node "nope"'),
        (protocol.Link("vm1", "br0", False), "link: no link vm1 - br0"),
        (protocol.Link("br0", "tap0", False), "br0 - tap0 is not forwarded by the lab"),
    ]:
        client.send(protocol.encode(message))
        assert expected in client.next("error")["message"]
    client.send(b'{"type": "link", "a": "vm1", "b": "tap0", "up": false, "direction": "up"}\n')
    assert 'link.direction is "up"' in client.next("error")["message"]
    client.send(protocol.encode(protocol.Link("tap0", "vm1", False, "a-b")))
    reply = client.next("link_state")
    assert (reply["a_b"], reply["b_a"]) == (False, True)
    client.close()
    assert lab.latest(after=time.time())["links"] == [{"a": "vm1", "b": "tap0", "a_b": True, "b_a": False}]
    assert lab.stop() == 0


def test_what_a_guest_sends_into_its_pulled_cable_is_link_down_not_a_full_queue(make_lab):
    lab = make_lab("two-vlans.yaml")
    assert link(lab, "hub1", "vm2", "down").returncode == 0
    wait_for(lambda: not carrier(lab, "vm2"), 5, "vm2's eth0 to lose carrier")
    sent = lab.exec("vm2", "ping", "-c", "6", "-i", "0.3", "-W", "1", "10.0.0.1")
    assert sent.returncode != 0
    with netns.iproute(netns.node_ns(lab.name, "vm2")) as ipr:
        (eth0,) = ipr.get_links(ifname="eth0")
    dropped = eth0.get_attr("IFLA_STATS64")["tx_dropped"]
    assert dropped >= 1  # the kernel dropped what vm2 sent with no carrier
    vm2 = wait_for(
        lambda: (p := port_stats(lab, "1", "vm2"))["drop_reasons"]["link-down"] >= dropped and p, 10, "the drops"
    )
    assert vm2["drop_reasons"]["guest-queue"] == 0
    assert lab.stop() == 0
