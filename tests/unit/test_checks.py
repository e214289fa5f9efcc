"""The topology-aware checks (lab/checks.py): real frames forwarded by a hub
on pipes, counted as the worker counts them, held against a topology."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from qnet_tui import protocol
from qnet_tui.lab import checks
from qnet_tui.lab.checks import Checks, read_claim
from qnet_tui.lab.ports import Hub
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from tests.unit.test_hub import Pipe

A, B, C = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
STRANGER = "02:00:00:00:00:99"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def topology(**extra: dict) -> Topology:
    """vm1..vm3 (guest NICs), tap0 behind br0 with host NIC up0, sock0: all on hub1."""
    t = Topology(name="x")
    for node in (
        Node("hub1", Kind.HUB, {"vlan": 1}),
        Node("vm1", Kind.GUEST_NIC, {"mac": A, "ipv4": "10.0.0.1/24", "ipv6": "fd00::1/64"}),
        Node("vm2", Kind.GUEST_NIC, {"mac": B, "ipv4": "10.0.0.2/24"}),
        Node("vm3", Kind.GUEST_NIC, {"mac": C.upper(), "ipv4": "10.0.0.3/24"}),  # declared in capitals
        Node("tap0", Kind.TAP),
        Node("br0", Kind.BRIDGE),
        Node("up0", Kind.HOST_NIC, {"ipv4": "10.0.0.254/24"}),
        Node("sock0", Kind.SOCKET, {"transport": "stream", "address": "a.sock"}),
    ):
        node.attrs.update(extra.get(node.id, {}))
        t.add(node)
    t.links = [("hub1", n) for n in ("vm1", "vm2", "vm3", "tap0", "sock0")] + [("tap0", "br0"), ("br0", "up0")]
    return t


class Lab:
    """A hub of pipes named after the topology's port nodes, and its checks."""

    def __init__(self, t: Topology) -> None:
        self.hub = Hub("hub1", 1)
        self.pipes = {name: Pipe(name) for name in ("vm1", "vm2", "vm3", "tap0", "sock0")}
        for pipe in self.pipes.values():
            os.set_blocking(pipe.port.fd, False)  # a full pipe is a "full" drop, never a hang
            self.hub.attach(pipe.port)
        self.logged: list[tuple[str, str]] = []
        self.checks = Checks(t, lambda level, message: self.logged.append((level, message)))

    def send(self, port: str, *frames: bytes) -> None:
        self.hub.forward(self.pipes[port].port, [bytes(f) for f in frames])

    def tick(self, now: float = 1000.0) -> list[dict]:
        self.hub.count_conversations(now)
        found = self.checks.run(self.hub, now)
        protocol.check(found, protocol.ListOf(protocol.CHECK_SHAPE), "checks")
        return found

    def close(self) -> None:
        for pipe in self.pipes.values():
            os.close(pipe.r)
            pipe.port.close()


@pytest.fixture
def make():
    labs = []

    def start(**extra: dict) -> Lab:
        lab = Lab(topology(**extra))
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.close()


def udp(src_mac: str, src_ip: str, sport: int = 5000, dport: int = 5000, dst_ip: str = "10.0.0.200") -> Ether:
    return Ether(src=src_mac, dst=BROADCAST) / IP(src=src_ip, dst=dst_ip) / UDP(sport=sport, dport=dport)


def by_kind(found: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in found:
        out.setdefault(f["kind"], []).append(f)
    return out


def test_a_guest_nic_sending_from_another_nics_mac_is_flagged_by_name(make):
    lab = make()
    lab.send("vm1", udp(A, "10.0.0.1"))
    lab.send("vm2", udp(A, "10.0.0.2"), udp(A, "10.0.0.2"), udp(B, "10.0.0.2"))
    found = by_kind(lab.tick())
    [foreign] = found["foreign-mac"]
    assert foreign["message"] == f"vm2 sends from {A}, vm1's MAC"
    assert (foreign["ports"], foreign["nodes"], foreign["mac"], foreign["count"]) == (["vm2"], ["vm1", "vm2"], A, 2)
    [dup] = found["duplicate-mac"]
    assert dup["message"] == f"{A}, vm1's MAC, is sent from vm1 and vm2"
    assert (dup["ports"], dup["nodes"], dup["count"]) == (["vm1", "vm2"], ["vm1", "vm2"], 2)  # vm2's frames
    assert set(found) == {"foreign-mac", "duplicate-mac"}
    assert ("warning", f"hub1: foreign-mac: vm2 sends from {A}, vm1's MAC") in lab.logged


def test_a_mac_nobody_declares_is_named_against_the_nics_own(make):
    lab = make()
    lab.send("vm3", udp(STRANGER, "10.0.0.3"))
    [foreign] = lab.tick()
    assert foreign["message"] == f"vm3 sends from {STRANGER}, not its own {C}"  # the declared MAC, lower-cased
    assert foreign["nodes"] == ["vm3"]


def test_taps_and_sockets_carry_many_macs_unflagged(make):
    lab = make()
    lab.send("tap0", *(udp(f"02:00:00:00:01:{i:02x}", f"192.168.1.{i}") for i in range(1, 20)))
    lab.send("sock0", udp(STRANGER, "192.168.2.1"), udp("02:00:00:00:00:98", "192.168.2.2"))
    lab.send("vm1", udp(A, "10.0.0.1"))
    assert lab.tick() == []


def test_one_address_from_two_ports_is_a_duplicate_but_not_the_unspecified_one(make):
    lab = make()
    lab.send("vm1", udp(A, "10.0.0.1"), udp(A, "0.0.0.0", 68, 67))
    lab.send("vm3", udp(C, "10.0.0.1"), udp(C, "10.0.0.1"), udp(C, "10.0.0.1"), udp(C, "0.0.0.0", 68, 67))
    lab.send("vm2", Ether(src=B, dst=BROADCAST) / IPv6(src="::", dst="ff02::1") / UDP())
    lab.send("vm3", Ether(src=C, dst=BROADCAST) / IPv6(src="::", dst="ff02::1") / UDP())
    [dup] = lab.tick()
    assert dup["kind"] == "duplicate-ip"
    assert dup["message"] == "10.0.0.1, vm1's address, is sent from vm1 and vm3"
    assert (dup["address"], dup["ports"], dup["nodes"], dup["count"]) == ("10.0.0.1", ["vm1", "vm3"], ["vm1", "vm3"], 3)


def test_what_a_port_sends_first_in_a_later_tick_is_held_against_the_earlier_ones(make):
    lab = make()
    lab.send("vm1", udp(A, "10.0.0.1"))
    lab.send("tap0", udp("02:00:00:00:01:01", "192.168.1.9"))
    assert lab.tick(1000.0) == []
    lab.send("vm3", udp(C, "10.0.0.1"))
    assert [f["kind"] for f in lab.tick(1001.0)] == ["duplicate-ip"]
    assert all(not src.fresh for src in lab.hub.conversations.sources.values())  # taken
    lab.checks.topology_changed(topology(), ["hub1"])  # read whole again: the same
    lab.send("sock0", udp("02:00:00:00:01:01", "192.168.1.10"))
    assert sorted(f["kind"] for f in lab.tick(1002.0)) == ["duplicate-ip", "duplicate-mac"]


def test_an_address_nobody_declares_counts_against_the_port_that_sent_it_less(make):
    lab = make()
    lab.send("tap0", *[udp("02:00:00:00:01:01", "192.168.1.9")] * 5)
    lab.send("sock0", udp(STRANGER, "192.168.1.9"))
    [dup] = lab.tick()
    assert dup["message"] == "192.168.1.9 is sent from sock0 and tap0"
    assert (dup["nodes"], dup["count"]) == (["sock0", "tap0"], 1)


def test_dhcp_servers_nobody_declared_are_rogue(make):
    offer = udp(B, "10.0.0.2", 67, 68)
    lab = make()
    lab.send("vm2", offer)
    lab.send("vm1", udp(A, "0.0.0.0", 68, 67))  # a client's request is no server's
    [rogue] = lab.tick()
    assert rogue["kind"] == "rogue-dhcp"
    assert rogue["message"] == (
        f"vm2 answers DHCP from {B}; no node there is declared a DHCP server (dhcp_server: true)"
    )
    assert (rogue["ports"], rogue["nodes"], rogue["mac"], rogue["count"]) == (["vm2"], ["vm2"], B, 1)

    assert make(vm2={"dhcp_server": True}).tick() == []  # nothing sent yet: and declared
    declared = make(vm2={"dhcp_server": True})
    declared.send("vm2", offer)
    assert declared.tick() == []


def test_a_dhcp_server_behind_a_tap_is_declared_on_its_bridges_host_nic_or_its_node(make):
    outside = udp("02:00:00:00:01:fe", "10.0.0.254", 67, 68)
    lab = make()
    lab.send("tap0", outside)
    [rogue] = lab.tick()
    assert rogue["message"].startswith("tap0 answers DHCP from 02:00:00:00:01:fe")

    lab = make(up0={"dhcp_server": True})
    lab.send("tap0", outside)
    assert lab.tick() == []

    # vm2's server, bridged in through the tap (vm2's MAC): vm2 says it serves DHCP.
    lab = make(vm2={"dhcp_server": True})
    lab.send("tap0", udp(B, "10.0.0.2", 67, 68))
    assert by_kind(lab.tick()).get("rogue-dhcp") is None
    lab = make()
    lab.send("tap0", udp(B, "10.0.0.2", 67, 68))
    [rogue] = by_kind(lab.tick())["rogue-dhcp"]
    assert rogue["message"].startswith(f"vm2 (through tap0) answers DHCP from {B}")
    assert rogue["nodes"] == ["tap0", "vm2"]


def garp(mac: str, ip: str, op: int = 1) -> Ether:
    """A gratuitous ARP (an announcement: sender and target the same address)."""
    return Ether(src=mac, dst=BROADCAST) / ARP(op=op, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip)


def test_an_address_claimed_in_arp_by_another_nodes_mac_is_a_conflict(make):
    lab = make()
    lab.send("vm1", garp(A, "10.0.0.1"))  # the owner's own claim: fine
    lab.send("vm2", garp(B, "10.0.0.1"), garp(B, "10.0.0.1", op=2))
    lab.send("vm3", Ether(src=C, dst=BROADCAST) / ARP(hwsrc=C, psrc="0.0.0.0", pdst="10.0.0.1"))  # a probe
    [conflict] = lab.tick()
    assert conflict["kind"] == "arp-conflict"
    assert conflict["message"] == f"10.0.0.1, vm1's address, is claimed in ARP by vm2 ({B})"
    assert (conflict["ports"], conflict["nodes"], conflict["mac"], conflict["address"], conflict["count"]) == (
        ["vm1", "vm2"],
        ["vm1", "vm2"],
        B,
        "10.0.0.1",
        2,
    )


def test_an_undeclared_address_claimed_by_two_macs_is_a_conflict_one_mac_is_not(make):
    lab = make()
    lab.send("tap0", garp("02:00:00:00:01:01", "192.168.1.5"), garp("02:00:00:00:01:02", "192.168.1.6"))
    assert lab.tick() == []
    lab.send("sock0", Ether(src=STRANGER, dst=BROADCAST) / Dot1Q(vlan=5) / garp(STRANGER, "192.168.1.5")[ARP])
    [conflict] = lab.tick(1001.0)
    assert (
        conflict["message"]
        == f"192.168.1.5 is claimed in ARP by 02:00:00:00:01:01 through tap0 and by {STRANGER} through sock0"
    )
    assert conflict["ports"] == ["sock0", "tap0"] and conflict["first"] == 1001.0


def test_the_arp_sender_hardware_address_is_the_claimant_not_the_frames_source(make):
    lab = make()
    lab.send("tap0", Ether(src="02:00:00:00:01:01", dst=BROADCAST) / ARP(hwsrc=C, psrc="10.0.0.1", pdst="10.0.0.1"))
    [conflict] = lab.tick()
    assert conflict["message"] == f"10.0.0.1, vm1's address, is claimed in ARP by vm3 ({C}) through tap0"
    assert conflict["nodes"] == ["tap0", "vm1", "vm3"]


def na(src_mac: str, target: str, option: str | None) -> Ether:
    frame = IPv6(src=target, dst="ff02::1") / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
    if option:
        frame = frame / ICMPv6NDOptDstLLAddr(lladdr=option)
    return Ether(src=src_mac, dst="33:33:00:00:00:01") / frame


def test_neighbour_advertisements_claiming_anothers_ipv6_address_are_a_conflict(make):
    lab = make()
    lab.send("vm1", na(A, "fd00::1", A))
    lab.send("vm2", na(B, "fd00::1", C))  # the option's MAC is the claim, not the frame's source
    found = by_kind(lab.tick())
    assert found.keys() == {"nd-conflict", "duplicate-ip"}  # sent from fd00::1 too
    [conflict] = found["nd-conflict"]
    assert conflict["kind"] == "nd-conflict"
    assert (
        conflict["message"] == f"fd00::1, vm1's address, is claimed in neighbour discovery by vm2 with vm3's MAC ({C})"
    )
    assert (conflict["ports"], conflict["nodes"], conflict["mac"]) == (["vm1", "vm2"], ["vm1", "vm2", "vm3"], C)


def test_a_solicitations_source_is_a_claim_and_duplicate_address_detection_is_not(make):
    lab = make()
    dad = Ether(src=B, dst="33:33:ff:00:00:01") / IPv6(src="::", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fd00::1")
    lab.send("vm2", dad, na(B, "fe80::2", None))
    assert lab.tick() == []
    ns = IPv6(src="fe80::2", dst="ff02::1:ff00:9") / ICMPv6ND_NS(tgt="fe80::9") / ICMPv6NDOptSrcLLAddr(lladdr=C)
    lab.send("vm3", Ether(src=C, dst="33:33:ff:00:00:09") / ns)
    [conflict] = by_kind(lab.tick())["nd-conflict"]
    assert conflict["message"] == (
        f"fe80::2 is claimed in neighbour discovery by vm2 ({B}) and by vm3 ({C})"  # the first claimant stands
    )


def test_a_finding_persists_counts_on_and_is_logged_once(make):
    lab = make()
    lab.send("vm2", udp(A, "10.0.0.2"))
    [first] = lab.tick(1000.0)
    assert lab.tick(1001.0) == [first]  # nothing new: last seen stays
    lab.send("vm2", udp(A, "10.0.0.2"), udp(A, "10.0.0.2"))
    [again] = lab.tick(1002.0)
    assert (again["first"], again["last"], again["count"]) == (1000.0, 1002.0, 3)
    assert [m for _, m in lab.logged] == [f"hub1: foreign-mac: vm2 sends from {A}, vm1's MAC"]


def test_findings_are_bounded_and_the_ones_last_seen_longest_ago_go(make, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT", 4)
    lab = make()
    for i in range(6):
        lab.send("vm3", udp(f"02:00:00:00:02:{i:02x}", "10.0.0.3"))
        lab.tick(1000.0 + i)
    found = lab.tick(1010.0)
    assert [f["mac"] for f in found] == [f"02:00:00:00:02:{i:02x}" for i in (5, 4, 3, 2)]
    assert len(lab.logged) == 6
    lab.send("vm3", udp("02:00:00:00:02:00", "10.0.0.3"))  # one let go comes back: it grew
    assert lab.tick(1011.0)[0]["mac"] == "02:00:00:00:02:00"
    assert len(lab.logged) == 6  # told once, even so


def test_arp_claims_are_bounded(make, monkeypatch):
    monkeypatch.setattr(checks, "CLAIMS", 3)
    lab = make()
    lab.send("tap0", *(garp("02:00:00:00:01:01", f"192.168.1.{i}") for i in range(10)))
    lab.tick()
    assert list(lab.checks.hubs["hub1"].claims) == ["192.168.1.7", "192.168.1.8", "192.168.1.9"]


def test_short_and_malformed_arp_and_nd_claim_nothing():
    good = bytes(garp(A, "10.0.0.1"))
    assert read_claim(good) == ("10.0.0.1", A)
    for n in range(len(good)):
        assert read_claim(good[:n]) in (None, ("10.0.0.1", A))
    assert read_claim(good[: 14 + 27]) is None
    assert read_claim(good[:14] + b"\x00\x06" + good[16:]) is None  # not Ethernet/IPv4 ARP
    advert = bytes(na(B, "fd00::1", C))
    assert read_claim(advert) == ("fd00::1", C)
    assert read_claim(advert[:-8]) == ("fd00::1", B)  # option cut off: the frame's source
    zero = advert[:-7] + b"\x00" + advert[-6:]  # an option of length 0 (would never end)
    assert read_claim(zero) == ("fd00::1", B)
    assert read_claim(advert[: 14 + 40 + 23]) is None
    assert read_claim(b"") is None


@given(st.binary(max_size=200), st.sampled_from([b"\x08\x06", b"\x86\xdd", b"\x81\x00\x00\x01\x08\x06"]))
@settings(max_examples=300, deadline=None)
def test_fuzzed_arp_and_nd_never_raise(body, ethertype):
    frame = bytes.fromhex("ffffffffffff525400000001") + ethertype + body
    claimed = read_claim(frame)
    assert claimed is None or (isinstance(claimed[0], str) and len(claimed[1]) == 17)


def test_a_changed_topology_is_what_the_checks_hold_frames_against(make):
    lab = make()
    lab.send("vm2", udp(B, "10.0.0.2", 67, 68))
    assert lab.tick(1000.0)[0]["kind"] == "rogue-dhcp"
    lab.checks.topology_changed(topology(vm2={"dhcp_server": True}), ["hub1"])
    lab.send("vm2", udp(B, "10.0.0.2", 67, 68))
    assert lab.tick(1001.0) == []  # the topology says it is right now
    lab.checks.topology_changed(topology(), [])
    assert lab.checks.hubs == {}  # the hub is gone


def test_attributes_of_the_wrong_type_are_passed_over():
    t = topology(vm1={"mac": 5, "ipv4": "not an address"}, vm2={"dhcp_server": "yes"})
    declared = checks.Declared(t)
    assert "vm1" not in declared.mac and "10.0.0.1" not in declared.address_owner
    assert declared.dhcp_servers == set()
