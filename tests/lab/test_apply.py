"""Apply: a running lab changed into what its file now says, with real
traffic on the part the change leaves alone: not a frame lost there, and its
socket's connection never made again."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

from qnet_tui.lab import netns

from .conftest import SAMPLES, wait_for
from .test_forwarding import ping
from .test_impair import rtt

HEAD = """version: 1
name: {name}
nodes:
  hub1: {{kind: hub, vlan: 1}}
  a: {{kind: guest_nic, mac: '52:54:00:00:07:01', ipv4: 10.7.0.1/24}}
  b: {{kind: guest_nic, mac: '52:54:00:00:07:02', ipv4: 10.7.0.2/24}}
  q0: {{kind: socket, transport: stream, family: inet, mode: connect, address: '127.0.0.1:{port}'}}
"""
HUB2 = """  hub2: {{kind: hub, vlan: {vlan}}}
  c: {{kind: guest_nic, mac: '52:54:00:00:08:01', ipv4: {c}}}
  d: {{kind: guest_nic, mac: '52:54:00:00:08:02', ipv4: 10.8.0.2/24}}
"""
HUB3 = """  hub3: {kind: hub, vlan: 3}
  e: {kind: guest_nic, mac: '52:54:00:00:09:01', ipv4: 10.9.0.1/24}
  f: {kind: guest_nic, mac: '52:54:00:00:09:02', ipv4: 10.9.0.2/24}
"""
LINKS1 = "  - [hub1, a]\n  - [hub1, b]\n  - [hub1, q0]\n"
LINKS2 = "  - [hub2, c]\n  - [hub2, d]\n"
LINKS3 = "  - [hub3, e]\n  - [hub3, f]\n"


def topology(name: str, port: int, hub2: dict | None, hub3: bool) -> str:
    nodes = HEAD.format(name=name, port=port)
    links = LINKS1
    if hub2 is not None:
        nodes += HUB2.format(**hub2)
        links += LINKS2
    if hub3:
        nodes += HUB3
        links += LINKS3
    return nodes + "links:\n" + links


def eth0(lab, guest: str) -> dict:
    """The kernel's counters of a guest's eth0."""
    with netns.iproute(netns.node_ns(lab.name, guest)) as ipr:
        (link,) = ipr.get_links(ifname="eth0")
    return link.get_attr("IFLA_STATS64")


def udp_receive_buffer_errors(lab, guest: str) -> int:
    """Datagrams a guest's kernel dropped because a socket's buffer was full."""
    snmp = lab.exec(guest, "cat", "/proc/net/snmp").stdout.splitlines()
    names, values = (line.split()[1:] for line in snmp if line.startswith("Udp:"))
    return int(dict(zip(names, values, strict=True))["RcvbufErrors"])


def apply(lab, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qnet_tui", "apply", str(lab.file), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


class Peer:
    """The far end of socket q0 (a QEMU with -netdev stream,server=on): counts
    the connections the lab makes, and reads whatever the hub floods to it."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.connections = self.closed = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 16):
                pass
        self.closed += 1

    def close(self) -> None:
        self.server.close()


def test_edits_elsewhere_leave_a_busy_hub_untouched(make_lab):
    peer = Peer()
    try:
        text = topology("x", peer.port, {"vlan": 2, "c": "10.8.0.1/24"}, hub3=False)
        lab = make_lab("", text=text)
        wait_for(lambda: peer.connections == 1, 15, "the lab to dial q0's peer")
        assert ping(lab, "c", "10.8.0.2").returncode == 0

        server = lab.spawn("b", "iperf3", "-s", "-1", "-B", "10.7.0.2")
        wait_for(
            lambda: (
                lab.exec("b", "ss", "-Hlun", "sport = :5201").stdout.strip()
                or lab.exec("b", "ss", "-Hltn", "sport = :5201").stdout.strip()
            ),
            30,
            "iperf3 to listen in b",
        )
        sent_before, received_before = eth0(lab, "a")["tx_packets"], eth0(lab, "b")["rx_packets"]
        client = lab.spawn("a", "iperf3", "-c", "10.7.0.2", "-u", "-b", "20M", "-l", "1200", "-t", "8", "-J")
        try:
            # hub2 edited: its VLAN number and one guest's address
            lab.file.write_text(topology(lab.name, peer.port, {"vlan": 20, "c": "10.8.0.11/24"}, hub3=False))
            done = apply(lab)
            assert done.returncode == 0, done.stderr
            assert "~ hub2: vlan 2 -> 20" in done.stdout and "~ c: ipv4 10.8.0.1/24 -> 10.8.0.11/24" in done.stdout
            assert ping(lab, "d", "10.8.0.11").returncode == 0
            # hub3 added
            lab.file.write_text(topology(lab.name, peer.port, {"vlan": 20, "c": "10.8.0.11/24"}, hub3=True))
            done = apply(lab)
            assert done.returncode == 0, done.stderr
            assert "+ hub hub3" in done.stdout
            assert ping(lab, "e", "10.9.0.2").returncode == 0
            # hub2 and hub3 removed, with their guests
            lab.file.write_text(topology(lab.name, peer.port, None, hub3=False))
            done = apply(lab)
            assert done.returncode == 0, done.stderr
            assert "- hub hub2" in done.stdout and "- guest_nic f" in done.stdout
            result = json.loads(client.communicate(timeout=60)[0])
            server.communicate(timeout=30)
        finally:
            for proc in (client, server):
                proc.kill()
                proc.wait()
    finally:
        peer.close()
    datagrams = result["end"]["sum"]
    assert datagrams["packets"] > 10000, datagrams
    # Every frame a sent reached b's eth0; what iperf3 lost, b's own kernel
    # dropped (its socket's buffer was full while iperf3 waited for a CPU).
    sent = eth0(lab, "a")["tx_packets"] - sent_before
    received = eth0(lab, "b")["rx_packets"] - received_before
    assert sent >= datagrams["packets"] and received == sent
    assert datagrams["lost_packets"] == udp_receive_buffer_errors(lab, "b")
    assert peer.connections == 1  # q0's connection was never made again
    stats = lab.latest(after=time.time())
    assert set(stats["vlans"]) == {"1"}
    assert stats["vlans"]["1"]["drops"] == 0
    assert set(stats["vlans"]["1"]["ports"]) == {"a", "b", "q0"}
    assert sorted(n for n in netns.existing() if netns.belongs_to(n, lab.name)) == [
        f"qnet-{lab.name}",
        f"qnet-{lab.name}.a",
        f"qnet-{lab.name}.b",
    ]
    assert lab.stop() == 0


def edit(lab, *pairs: tuple[str, str]) -> None:
    text = lab.file.read_text()
    for old, new in pairs:
        assert old in text
        text = text.replace(old, new)
    lab.file.write_text(text)


def test_kernel_parts_are_made_anew_and_the_file_impairments_follow(make_lab):
    lab = make_lab("seed-path.yaml")
    assert ping(lab, "vm1", "10.0.0.1").returncode == 0
    # The uplink's address (its veth and outside host made anew), a new
    # bridge with a tap on the hub, and a delay on vm2's link.
    edit(
        lab,
        ("    ipv4: 10.0.0.1/24", "    ipv4: 10.0.0.100/24"),
        ("  hub0:", "  br1: {kind: bridge, ipv4: 10.0.0.200/24}\n  tap1: {kind: tap}\n  hub0:"),
        ("  - [hub0, vm2]", "  - [hub0, vm2, {impair: 'delay=40ms'}]\n  - [br1, tap1]\n  - [tap1, hub0]"),
    )
    done = apply(lab)
    assert done.returncode == 0, done.stderr
    assert "~ eth0: ipv4 10.0.0.1/24 -> 10.0.0.100/24" in done.stdout
    assert "~ impair hub0 -> vm2: none -> delay=40ms" in done.stdout
    assert ping(lab, "vm1", "10.0.0.100").returncode == 0
    assert ping(lab, "vm1", "10.0.0.200").returncode == 0  # the new bridge, through its tap
    assert rtt(lab, "vm1", "10.0.0.12")[0] >= 75  # 40 ms each way, in the file
    ports = lab.vlan("0", after=time.time())["ports"]
    assert set(ports) == {"tap0", "tap1", "vm1", "vm2"}

    edit(lab, ("  - [hub0, vm2, {impair: 'delay=40ms'}]", "  - [hub0, vm2]"))
    done = apply(lab)
    assert done.returncode == 0, done.stderr
    assert rtt(lab, "vm1", "10.0.0.12")[2] < 30  # lifted with the file's line
    assert lab.stop() == 0


def test_what_cannot_change_live_is_refused_and_nothing_changes(make_lab):
    lab = make_lab("two-vlans.yaml")
    before = lab.file.read_text()
    edit(
        lab,
        ("  vm1:", "  up0: {kind: host_nic, interface: qnetnosuch0}\n  br9: {kind: bridge}\n  vm1:"),
        ("  - [hub1, vm1]", "  - [hub1, vm1]\n  - [up0, br9]"),
    )
    done = apply(lab)
    assert done.returncode == 1
    assert "qnet-tui apply: cannot change the running lab: up0: this machine's interface qnetnosuch0" in done.stderr
    assert "+ host_nic up0" in done.stdout

    lab.file.write_text(before.replace("ipv4: 10.0.0.2/24", "ipv4: 10.0.0.2/33"))
    done = apply(lab)  # an error in the file: said, placed, and the lab is left alone
    assert done.returncode == 1
    assert f"{lab.file}:" in done.stderr and "has errors; the lab was not changed" in done.stderr

    lab.file.write_text(before)
    done = apply(lab)
    assert done.returncode == 0 and "nothing to change" in done.stdout
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0
    assert lab.stop() == 0


def test_a_socket_given_another_address_dials_it_and_leaves_the_first(make_lab):
    first, second = Peer(), Peer()
    try:
        lab = make_lab("", text=topology("x", first.port, None, hub3=False))
        wait_for(lambda: first.connections == 1, 15, "the lab to dial the first peer")
        edit(lab, (f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"))
        done = apply(lab)
        assert done.returncode == 0, done.stderr
        assert f"~ q0: address 127.0.0.1:{first.port} -> 127.0.0.1:{second.port}" in done.stdout
        wait_for(lambda: second.connections == 1, 15, "the lab to dial the second peer")
        wait_for(lambda: first.closed == 1, 15, "the first connection to close")
        assert ping(lab, "a", "10.7.0.2").returncode == 0
        assert first.connections == 1
    finally:
        first.close()
        second.close()
    assert lab.stop() == 0


def test_a_change_stops_the_scenario_playing_and_puts_its_links_back(make_lab):
    timeline = "scenarios:\n  cut:\n    - {at: 0.2s, link: [hub1, vm2], down: 60s}\n"
    text = (SAMPLES / "two-vlans.yaml").read_text() + timeline
    lab = make_lab("", "--scenario", "cut", text=text)
    wait_for(lambda: lab.latest(after=time.time())["links"], 15, "the scenario to pull the cable")
    edit(lab, ("vlan: 2", "vlan: 20"))
    done = apply(lab)
    assert done.returncode == 0, done.stderr
    assert "~ hub2: vlan 2 -> 20" in done.stdout
    assert "scenario cut stops: the links it changed are put back first" in done.stdout
    assert lab.latest(after=time.time())["links"] == []
    assert ping(lab, "vm1", "10.0.0.2").returncode == 0
    assert any("scenario cut: stopped: the lab takes a change" in line for line in lab.errors)
    assert lab.stop() == 0
