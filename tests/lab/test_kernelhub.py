"""The kernel's fast path: a hub of namespace guests alone is a Linux bridge
with learning off, and the lab still counts, samples, captures and pulls
its cables as it does for the hubs it forwards itself."""

from __future__ import annotations

import time

from qnet_tui import protocol
from qnet_tui.lab import netns

from .conftest import wait_for
from .test_control import Client
from .test_forwarding import ping
from .test_impair import impair, rtt

TWO_HUBS = """version: 1
name: x
nodes:
  hub1: {kind: hub, vlan: 1}
  hub2: {kind: hub, vlan: 2, forwarding: worker}
  a1: {kind: guest_nic, mac: '52:54:00:00:0a:01', ipv4: 10.8.1.1/24}
  a2: {kind: guest_nic, mac: '52:54:00:00:0a:02', ipv4: 10.8.1.2/24}
  a3: {kind: guest_nic, mac: '52:54:00:00:0a:03', ipv4: 10.8.1.3/24}
  b1: {kind: guest_nic, mac: '52:54:00:00:0b:01', ipv4: 10.8.2.1/24}
  b2: {kind: guest_nic, mac: '52:54:00:00:0b:02', ipv4: 10.8.2.2/24}
links: [[hub1, a1], [hub1, a2], [hub1, a3], [hub2, b1], [hub2, b2]]
"""


def kind_of(lab, guest: str) -> str:
    with netns.iproute(netns.node_ns(lab.name, guest)) as ipr:
        (link,) = ipr.get_links(ifname="eth0")
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else ""


def test_a_hub_of_guests_is_the_kernels_and_counts_as_the_workers_do(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    stats = lab.latest(after=time.time())
    assert stats["vlans"]["1"]["forwarding"] == "kernel"
    assert stats["vlans"]["2"]["forwarding"] == "worker"  # as the file asks
    assert kind_of(lab, "a1") == "veth" and kind_of(lab, "b1") == "tun"
    assert "qnet-tui: info: the kernel forwards hub1 (hubs of namespace guests alone)" in lab.errors
    assert ping(lab, "a1", "10.8.1.2").returncode == 0
    assert ping(lab, "b1", "10.8.2.2").returncode == 0

    # Flooded once to every other port, counted exactly, kept in its VLAN.
    n = 2000
    counters = {g: lab.frames(g, "count", "eth0", "1.5") for g in ("a1", "a2", "a3", "b1")}
    for proc in counters.values():
        assert proc.stdout.readline().strip() == "ready"
    before = lab.vlan("1", after=time.time())
    assert lab.frames("a1", "send", "eth0", "52:54:00:00:0a:01", str(n)).wait(60) == 0
    got = {g: proc.communicate(timeout=60)[0].split()[-2:] for g, proc in counters.items()}
    assert got == {"a1": ["0", "0"], "a2": [str(n), "0"], "a3": [str(n), "0"], "b1": ["0", "0"]}
    after = lab.vlan("1", after=time.time() + 0.3)
    assert after["protocols"]["other"] - before["protocols"]["other"] == n
    assert after["ports"]["a1"]["rx_frames"] - before["ports"]["a1"]["rx_frames"] >= n
    assert after["ports"]["a2"]["tx_frames"] - before["ports"]["a2"]["tx_frames"] >= n
    assert after["ports"]["a2"]["kind"] == "veth" and after["drops"] == 0


def test_tcp_through_the_kernel_is_counted_in_wire_frames(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    server = lab.spawn("a2", "iperf3", "-s", "-1")
    try:
        wait_for(lambda: lab.exec("a2", "ss", "-ltn").stdout.count(":5201"), 10, "iperf3 to listen")
        before = lab.vlan("1", after=time.time())
        sent = lab.exec("a1", "iperf3", "-c", "10.8.1.2", "-t", "1", "-J")
        assert sent.returncode == 0, sent.stdout[-500:]
    finally:
        server.wait(30)
    after = lab.vlan("1", after=time.time() + 0.3)
    frames, size = after["frames"] - before["frames"], after["bytes"] - before["bytes"]
    assert size > 10_000_000
    # GSO super-frames count as the wire frames they stand for: at most 1514 bytes each.
    assert size / frames <= 1514
    assert frames - 50 <= after["protocols"]["tcp"] - before["protocols"]["tcp"] <= frames  # and ARP, neighbours


def test_samples_and_a_capture_come_from_the_kernels_hub(make_lab, tmp_path):
    from tests.unit.test_capture import read_pcapng

    lab = make_lab("", text=TWO_HUBS)
    client = Client(lab.name)
    pcap = tmp_path / "hub1.pcapng"
    client.send(protocol.encode(protocol.Capture("hub1", str(pcap))))
    assert ping(lab, "a1", "10.8.1.3").returncode == 0
    deadline = time.monotonic() + 15
    seen: list[dict] = []
    while not any("ICMP" in s["summary"] and s["port"] == "a3" for s in seen):
        assert time.monotonic() < deadline, seen
        seen += [s for s in client.next("samples")["samples"] if s["hub"] == "hub1"]
    assert all(s["vlan"] == 1 for s in seen)
    client.send(protocol.encode(protocol.Capture("hub1", None)))
    while client.next("stats")["vlans"]["1"]["capture"] is not None:
        assert time.monotonic() < deadline + 15, "the capture did not stop"
    client.close()
    packets = read_pcapng(pcap)[1]
    icmp = [p for p in packets if len(p.data) >= 24 and p.data[12:14] == b"\x08\x00" and p.data[23] == 1]
    assert len(icmp) >= 6  # three echo requests and three replies, each once


def test_a_pulled_cable_on_the_kernels_hub(make_lab):
    from .test_links import carrier, link

    lab = make_lab("", text=TWO_HUBS)
    assert ping(lab, "a1", "10.8.1.2").returncode == 0
    assert link(lab, "hub1", "a2", "down").returncode == 0
    wait_for(lambda: not carrier(lab, "a2"), 5, "a2 to lose carrier")
    assert ping(lab, "a1", "10.8.1.2", count=2).returncode != 0
    assert lab.vlan("1", after=time.time() + 0.3)["ports"]["a2"]["drop_reasons"]["link-down"] >= 2
    assert ping(lab, "a1", "10.8.1.3").returncode == 0  # the hub's other cables are untouched
    assert link(lab, "hub1", "a2", "up").returncode == 0
    wait_for(lambda: carrier(lab, "a2"), 5, "a2's carrier back")
    assert ping(lab, "a1", "10.8.1.2").returncode == 0

    # One way: a2 -> hub1 down, the port is locked; a2's frames count as dropped.
    assert link(lab, "hub1", "a2", "down", "--direction", "b-a").returncode == 0
    assert carrier(lab, "a2")
    before = lab.vlan("1", after=time.time())["ports"]["a2"]["drop_reasons"]["link-down"]
    counter = lab.frames("a1", "count", "eth0", "1.5")
    assert counter.stdout.readline().strip() == "ready"
    assert lab.frames("a2", "send", "eth0", "52:54:00:00:0a:02", "300").wait(60) == 0
    assert counter.communicate(timeout=60)[0].split()[-2:] == ["0", "0"]
    assert lab.vlan("1", after=time.time() + 0.3)["ports"]["a2"]["drop_reasons"]["link-down"] - before >= 300
    assert lab.stop() == 0


def test_an_impairment_moves_the_hub_to_the_worker_and_keeps_the_guests(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    assert rtt(lab, "a1", "10.8.1.2")[1] < 30
    # What the guests set by hand, and the neighbours they know, outlive their NICs being made anew.
    assert lab.exec("a2", "ip", "addr", "add", "10.9.9.2/24", "dev", "eth0").returncode == 0
    assert lab.exec("a2", "ip", "route", "add", "10.50.0.0/16", "via", "10.8.1.1").returncode == 0
    before = lab.vlan("1", after=time.time())
    done = impair(lab, "hub1", "a2", "delay=40ms")
    assert done.returncode == 0, done.stderr
    after = lab.vlan("1", after=time.time())
    assert after["forwarding"] == "worker"
    # The panes count on: the hub's totals and each port's.
    assert after["frames"] >= before["frames"] >= 10 and after["protocols"]["icmp"] >= before["protocols"]["icmp"]
    assert after["ports"]["a2"]["rx_frames"] >= before["ports"]["a2"]["rx_frames"]
    assert after["ports"]["a2"]["tx_frames"] >= before["ports"]["a2"]["tx_frames"] > 0
    assert kind_of(lab, "a2") == "tun"
    assert "10.9.9.2/24" in lab.exec("a2", "ip", "-br", "addr", "show", "eth0").stdout
    assert "10.50.0.0/16 via 10.8.1.1" in lab.exec("a2", "ip", "route").stdout
    assert "10.8.1.2 lladdr 52:54:00:00:0a:02" in lab.exec("a1", "ip", "neigh", "show", "dev", "eth0").stdout
    low, avg, _ = rtt(lab, "a1", "10.8.1.2")
    assert low >= 70 and avg <= 200, (low, avg)
    assert rtt(lab, "a1", "10.8.1.3")[1] < 30  # a3 made anew too, with its address back
    assert any("forwarded by the worker now" in line for line in lab.errors)
    assert lab.stop() == 0


def test_apply_moves_a_nic_between_kernel_hubs_and_a_hub_to_the_worker(make_lab):
    from .test_apply import apply, edit

    lab = make_lab(
        "", text=TWO_HUBS.replace("hub2: {kind: hub, vlan: 2, forwarding: worker}", "hub2: {kind: hub, vlan: 2}")
    )
    assert lab.latest(after=time.time())["vlans"]["2"]["forwarding"] == "kernel"
    # a3 moves to hub2 with its veth: one bridge lets it go, the other takes it.
    edit(lab, ("[hub1, a3]", "[hub2, a3]"), ("10.8.1.3/24", "10.8.2.3/24"))
    done = apply(lab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ping(lab, "b1", "10.8.2.3").returncode == 0
    assert ping(lab, "a1", "10.8.2.3", count=1).returncode != 0
    stats = lab.latest(after=time.time())
    assert set(stats["vlans"]["2"]["ports"]) == {"a3", "b1", "b2"} and stats["vlans"]["2"]["forwarding"] == "kernel"
    # hub1 asked to the worker: its NICs are made anew as taps, and forward.
    assert ping(lab, "a1", "10.8.1.2").returncode == 0
    edit(lab, ("hub1: {kind: hub, vlan: 1}", "hub1: {kind: hub, vlan: 1, forwarding: worker}"))
    done = apply(lab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "made anew" in done.stdout and "a1" in done.stdout
    assert "hub1 is forwarded by the worker from now on" in done.stdout
    stats = lab.latest(after=time.time())["vlans"]["1"]
    assert stats["forwarding"] == "worker" and stats["protocols"]["icmp"] >= 6  # counted before, kept
    assert kind_of(lab, "a1") == "tun"
    assert ping(lab, "a1", "10.8.1.2").returncode == 0
    assert lab.stop() == 0


def test_a_capture_marks_what_a_pulled_cable_drops_on_the_kernels_hub(make_lab, tmp_path):
    from tests.unit.test_capture import read_pcapng

    from .test_links import link

    lab = make_lab("", text=TWO_HUBS)
    assert ping(lab, "a1", "10.8.1.2").returncode == 0  # ARP caches filled
    pcap = tmp_path / "hub1.pcapng"
    client = Client(lab.name)
    client.send(protocol.encode(protocol.Capture("hub1", str(pcap))))
    assert link(lab, "hub1", "a2", "down", "--direction", "a-b").returncode == 0  # hub1 -> a2
    assert ping(lab, "a1", "10.8.1.2", count=2).returncode != 0
    assert link(lab, "hub1", "a2", "up").returncode == 0
    assert link(lab, "hub1", "a2", "down", "--direction", "b-a").returncode == 0  # a2 -> hub1
    assert ping(lab, "a1", "10.8.1.2", count=2).returncode != 0
    client.send(protocol.encode(protocol.Capture("hub1", None)))
    deadline = time.monotonic() + 15
    while client.next("stats")["vlans"]["1"]["capture"] is not None:
        assert time.monotonic() < deadline, "the capture did not stop"
    client.close()
    said = [c for p in read_pcapng(pcap)[1] for c in p.comments]
    assert said.count("qnet-tui: dropped (link-down) on hub1 -> a2") >= 2, said
    assert said.count("qnet-tui: dropped (link-down) on a2 -> hub1") >= 2, said  # a2's echo replies
    assert lab.stop() == 0
