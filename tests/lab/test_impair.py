"""Link impairments with real traffic: ping through a hub whose link to one
guest is delayed or lossy, set and lifted live with `qnet-tui impair`."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests.lab.conftest import SAMPLES

RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/")


def impair(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qnet_tui", "impair", str(lab.file), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def rtt(lab, node: str, address: str, count: int = 5) -> tuple[float, float, float]:
    """min, avg, max ms of pings that must all come back."""
    result = lab.exec(node, "ping", "-c", str(count), "-i", "0.2", "-W", "3", address)
    assert result.returncode == 0, result.stdout + result.stderr
    m = RTT.search(result.stdout)
    assert m, result.stdout
    return float(m[1]), float(m[2]), float(m[3])


def test_delay_each_way_adds_to_ping_rtt_and_none_lifts_it(make_lab):
    lab = make_lab("two-vlans.yaml")
    assert rtt(lab, "vm1", "10.0.0.2")[1] < 30  # also fills the ARP caches
    assert rtt(lab, "vm3", "10.0.0.4")[1] < 30
    done = impair(lab, "hub1", "vm2", "delay=50ms")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hub1 -> vm2: delay=50ms", "vm2 -> hub1: delay=50ms"]
    low, avg, _ = rtt(lab, "vm1", "10.0.0.2")
    assert low >= 90 and avg <= 200, (low, avg)  # 50 ms each way; room for a loaded 2-core machine
    assert rtt(lab, "vm3", "10.0.0.4")[1] < 30  # the other hub is untouched
    done = impair(lab, "hub1", "vm2", "none")
    assert done.returncode == 0 and "hub1 -> vm2: none" in done.stdout, done.stderr
    assert rtt(lab, "vm1", "10.0.0.2")[1] < 30


def test_full_loss_blocks_ping_and_is_counted_as_impair_loss(make_lab):
    lab = make_lab("two-vlans.yaml")
    assert rtt(lab, "vm1", "10.0.0.2", count=2)
    assert impair(lab, "vm2", "hub1", "loss=100%").returncode == 0
    since = time.time()
    blocked = lab.exec("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.0.0.2")
    assert blocked.returncode != 0 and " 0 received" in blocked.stdout, blocked.stdout
    port = lab.vlan("1", after=since + 1)["ports"]["vm2"]
    lost = port["drop_reasons"]["impair-loss"]
    assert lost >= 3 and port["drops"] == 0  # emulated drops are no real drops
    assert impair(lab, "hub1", "vm2", "none").returncode == 0
    assert rtt(lab, "vm1", "10.0.0.2", count=2)


def test_one_way_and_bad_requests(make_lab):
    lab = make_lab("two-vlans.yaml")
    done = impair(lab, "hub1", "vm2", "delay=20ms", "loss=1%", "--one-way")
    assert done.stdout.splitlines() == ["hub1 -> vm2: delay=20ms loss=1%", "vm2 -> hub1: none"], done.stderr
    # the statistics say it too, for the app (whoever set it: a client, a scenario, the file)
    assert lab.latest(after=time.time())["impaired"] == [{"a": "hub1", "b": "vm2", "spec": "delay=20ms loss=1%"}]
    nolink = impair(lab, "vm1", "vm3", "loss=1%")
    assert nolink.returncode == 1 and "no link between vm1 and vm3" in nolink.stderr
    assert "Traceback" not in nolink.stderr
    bad = impair(lab, "hub1", "vm2", "loss=1x")
    assert bad.returncode == 2 and "loss=1x" in bad.stderr
    unknown = impair(lab, "hub1", "vm9", "none")
    assert unknown.returncode == 1 and "no node 'vm9'" in unknown.stderr
    assert lab.proc.poll() is None  # refused requests leave the lab running
    lab.stop()
    gone = impair(lab, "hub1", "vm2", "none")
    assert gone.returncode == 1 and "not running" in gone.stderr


def test_an_impairment_declared_in_the_file_holds_from_the_start(make_lab):
    text = (SAMPLES / "two-vlans.yaml").read_text()
    assert "  - [hub1, vm2]\n" in text
    text = text.replace("  - [hub1, vm2]\n", "  - [hub1, vm2, {impair: {vm2: delay=50ms, hub1: delay=50ms}}]\n")
    lab = make_lab("two-vlans.yaml", text=text)
    low, avg, _ = rtt(lab, "vm1", "10.0.0.2")
    assert low >= 90 and avg <= 250, (low, avg)  # the first ping waits for ARP, delayed too
    assert impair(lab, "vm2", "hub1", "none").returncode == 0
    assert rtt(lab, "vm1", "10.0.0.2")[1] < 30


def test_a_capture_marks_the_frames_an_impairment_or_a_pulled_cable_drops(make_lab, tmp_path):
    from qnet_tui import protocol
    from tests.lab.test_control import Client
    from tests.unit.test_capture import read_pcapng

    lab = make_lab("two-vlans.yaml")
    assert rtt(lab, "vm1", "10.0.0.2", count=2)  # ARP caches filled: what follows is ICMP
    pcap = tmp_path / "hub1.pcap"  # the name given, though the file is pcapng
    client = Client(lab.name)
    client.send(protocol.encode(protocol.Capture("hub1", str(pcap))))
    assert impair(lab, "hub1", "vm2", "loss=100%", "--one-way").returncode == 0
    lost = lab.exec("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.0.0.2")
    assert lost.returncode != 0 and "100% packet loss" in lost.stdout, lost.stdout
    assert impair(lab, "hub1", "vm2", "none").returncode == 0
    # The impairment moved hub1 to the worker (its NICs made anew): a ping through it as it is now.
    assert rtt(lab, "vm1", "10.0.0.2", count=2)
    down = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "link", str(lab.file), "vm2", "hub1", "down"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 0, down.stderr
    assert lab.exec("vm1", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.2").returncode != 0
    client.send(protocol.encode(protocol.Capture("hub1", None)))
    deadline = time.monotonic() + 15
    while client.next("stats")["vlans"]["1"]["capture"] is not None:  # stopped: the file is closed, whole
        assert time.monotonic() < deadline, "the capture did not stop"
    client.close()
    packets = read_pcapng(pcap)[1]
    said = [c for p in packets for c in p.comments]
    assert said.count("qnet-tui: dropped (impair-loss) on hub1 -> vm2") >= 3, said
    assert said.count("qnet-tui: dropped (link-down) on hub1 -> vm2") >= 2, said
    assert set(said) <= {
        "qnet-tui: dropped (impair-loss) on hub1 -> vm2",
        "qnet-tui: dropped (link-down) on hub1 -> vm2",
        "qnet-tui: dropped (link-down) on vm2 -> hub1",  # what vm2 says of its own (IPv6 neighbours, ARP)
    }
    delivered = [p for p in packets if not p.comments]
    assert len(delivered) >= 5  # the echo requests the hub took in are there, uncommented
