"""Conversations counted by the forwarding path for every frame, read and
tabled per tick (lab/conversations.py), on pipes instead of taps."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from qnet_tui.lab import conversations
from qnet_tui.lab.conversations import Conversations, Table, node_names, read_key
from qnet_tui.lab.ports import Hub
from qnet_tui.lab.tap import VNET_HDR_LEN
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node
from tests.unit.test_hub import Pipe

A, B, C = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"


@pytest.fixture
def hub():
    h = Hub("hub1", 1)
    pipes = [Pipe(f"vm{i}") for i in (1, 2, 3)]
    for p in pipes:
        h.attach(p.port)
    return h, [p.port for p in pipes]


def tcp(sport: int, dport: int, src: str = A, dst: str = B, flags: str = "S", load: bytes = b"") -> bytes:
    return bytes(
        Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport, dport=dport, flags=flags) / load
    )


def tabled(h: Hub, now: float = 1000.0) -> dict:
    h.count_conversations(now)
    return h.conversations.snapshot(node_names([]))


def by_ends(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["a"], r["a_port"], r["b"], r["b_port"]): r for r in rows}


def test_a_tcp_flow_both_ways_is_one_conversation_counted_per_frame(hub):
    h, (vm1, vm2, _) = hub
    h.forward(vm1, [tcp(40000, 5201)] * 3)
    reply = bytes(Ether(src=B, dst=A) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=5201, dport=40000, flags="SA"))
    h.forward(vm2, [reply] * 2)
    snap = tabled(h)
    assert len(snap["flows"]) == 1
    flow = snap["flows"][0]
    assert (flow["a"], flow["a_port"], flow["b"], flow["b_port"], flow["proto"]) == (
        "10.0.0.1",
        40000,
        "10.0.0.2",
        5201,
        "tcp",
    )
    assert flow["frames"] == 5 and flow["bytes"] == 3 * len(tcp(40000, 5201)) + 2 * len(reply)
    assert len(snap["pairs"]) == 1
    pair = snap["pairs"][0]
    assert (pair["a"], pair["b"], pair["frames"], pair["proto"]) == (A, B, 5, None)
    assert snap["others"]["flows"]["count"] == 0


def test_ports_keep_flows_apart_and_icmp_has_none(hub):
    h, (vm1, _, _) = hub
    ping = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(seq=1))
    ping2 = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(seq=2))  # another checksum
    udp = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53000, dport=53))
    h.forward(vm1, [tcp(40000, 80), tcp(40001, 80), ping, ping2, udp])
    flows = by_ends(tabled(h)["flows"])
    assert set(flows) == {
        ("10.0.0.1", 40000, "10.0.0.2", 80),
        ("10.0.0.1", 40001, "10.0.0.2", 80),
        ("10.0.0.1", None, "10.0.0.2", None),
        ("10.0.0.1", 53000, "10.0.0.2", 53),
    }
    assert flows[("10.0.0.1", None, "10.0.0.2", None)]["frames"] == 2
    assert flows[("10.0.0.1", None, "10.0.0.2", None)]["proto"] == "icmp"
    assert flows[("10.0.0.1", 53000, "10.0.0.2", 53)]["proto"] == "udp"


def test_ipv6_vlan_tagged_options_and_fragments(hub):
    h, (vm1, _, _) = hub
    v6 = bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2))
    echo6 = bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest())
    tagged = bytes(Ether(src=A, dst=B) / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=7, dport=9))
    options = bytes(
        Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.4", options=b"\x01\x01\x01\x00") / UDP(sport=7, dport=9)
    )
    later = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.5", frag=100, proto=17) / b"payload!")
    h.forward(vm1, [v6, echo6, tagged, options, later])
    flows = {(r["b"], r["proto"], r["a_port"], r["b_port"]) for r in tabled(h)["flows"]}
    assert flows == {
        ("fd00::2", "udp", 1, 2),
        ("fd00::2", "icmpv6", None, None),
        ("10.0.0.3", "udp", 7, 9),  # past the 802.1Q tag
        ("10.0.0.4", "udp", None, None),  # IP options: where the ports are is not read on the forwarding path
        ("10.0.0.5", "udp", None, None),  # a later fragment carries no ports
    }


def test_arp_and_other_ethertypes_are_pairs_only_and_named_by_node(hub):
    h, (vm1, vm2, _) = hub
    arp = bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.1", pdst="10.0.0.2"))
    local = bytes(Ether(src=B, dst=A, type=0x88B5) / (b"x" * 46))
    h.forward(vm1, [arp])
    h.forward(vm2, [local] * 4)
    h.count_conversations(1000.0)
    nodes = [
        Node("vm1", Kind.GUEST_NIC, {"mac": A.upper(), "ipv4": "10.0.0.1/24"}),
        Node("vm2", Kind.GUEST_NIC, {"mac": B}),
    ]
    snap = h.conversations.snapshot(node_names(nodes))
    assert snap["flows"] == []
    pairs = {(r["a_node"], r["b_node"]): r["frames"] for r in snap["pairs"]}
    assert pairs == {("vm1", "broadcast"): 1, ("vm2", "vm1"): 4}


def test_link_local_addresses_are_named_by_the_mac_they_come_from_and_groups_as_such(hub):
    h, (vm1, vm2, _) = hub
    # vm1's kernel-made link-local address (EUI-64 of its MAC) to the all-routers group.
    rs = bytes(
        Ether(src=A, dst="33:33:00:00:00:02") / IPv6(src="fe80::5054:ff:fe00:1", dst="ff02::2") / ICMPv6EchoRequest()
    )
    mdns = bytes(
        Ether(src=B, dst="01:00:5e:00:00:fb") / IP(src="10.0.0.2", dst="224.0.0.251") / UDP(sport=5353, dport=5353)
    )
    dhcp = bytes(
        Ether(src=B, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    )
    h.forward(vm1, [rs])
    h.forward(vm2, [mdns, dhcp])
    h.count_conversations(1000.0)
    nodes = [Node("vm1", Kind.GUEST_NIC, {"mac": A}), Node("vm2", Kind.GUEST_NIC, {"mac": B, "ipv4": "10.0.0.2/24"})]
    snap = h.conversations.snapshot(node_names(nodes))
    flows = {(r["a"], r["b"]): (r["a_node"], r["b_node"]) for r in snap["flows"]}
    assert flows == {
        ("fe80::5054:ff:fe00:1", "ff02::2"): ("vm1", "multicast"),
        ("10.0.0.2", "224.0.0.251"): ("vm2", "multicast"),
        ("0.0.0.0", "255.255.255.255"): (None, "broadcast"),
    }
    pairs = {(r["a"], r["b"]): r["b_node"] for r in snap["pairs"]}
    assert pairs == {
        (A, "33:33:00:00:00:02"): "multicast",
        (B, "01:00:5e:00:00:fb"): "multicast",
        (B, "ff:ff:ff:ff:ff:ff"): "broadcast",
    }


def test_link_local_of_a_mac_and_group_names():
    assert conversations.link_local("52:54:00:00:01:01") == "fe80::5054:ff:fe00:101"
    assert conversations.link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"  # the U/L bit flipped
    assert conversations.link_local("nonsense") is None
    assert conversations.group_name("52:54:00:00:01:01") is None
    assert conversations.group_name("10.0.0.1") is None
    assert conversations.group_name("fe80::1") is None


def test_rates_first_and_last_seen_per_tick(hub):
    h, (vm1, _, _) = hub
    h.count_conversations(100.0)
    h.forward(vm1, [tcp(1, 2)] * 10)
    h.count_conversations(101.0)
    h.forward(vm1, [tcp(1, 2)] * 5)
    h.count_conversations(103.0)
    h.count_conversations(104.0)
    [flow] = h.conversations.snapshot({})["flows"]
    assert (flow["first"], flow["last"], flow["frames"]) == (101.0, 103.0, 15)
    assert flow["fps"] == 0.0  # nothing in the last tick
    h.forward(vm1, [tcp(1, 2)] * 8)
    h.count_conversations(106.0)
    [flow] = h.conversations.snapshot({})["flows"]
    assert flow["fps"] == 4.0 and flow["bps"] == 8 * len(tcp(1, 2)) * 8 / 2


def test_a_gso_super_frame_counts_its_wire_frames():
    h = Hub("hub1", 1)
    src, dst = Pipe("vm1", vnet=True), Pipe("vm2", vnet=True)
    h.attach(src.port)
    h.attach(dst.port)
    frame = tcp(1, 2, flags="A", load=bytes(3000))
    header = bytes([1, 1]) + (54).to_bytes(2, "little") + (1000).to_bytes(2, "little") + bytes(VNET_HDR_LEN - 6)
    h.forward(src.port, [header + frame])
    [flow] = tabled(h)["flows"]
    assert flow["frames"] == 3 and flow["bytes"] == len(frame)


def test_the_table_is_bounded_and_the_rest_is_others(monkeypatch, hub):
    h, (vm1, _, _) = hub
    monkeypatch.setattr(conversations, "TOP", 5)
    h.conversations = Conversations()
    h.conversations.flows = Table(limit=20)
    big = [tcp(1, 2, load=bytes(1000))] * 3
    small = [tcp(1000 + i, 80) for i in range(30)]
    h.forward(vm1, big + small)
    h.count_conversations(10.0)
    rows, rest = h.conversations.flows.top(5)
    assert len(h.conversations.flows.entries) == 20  # the 11 smallest let go
    assert rows[0]["a_port"] == 1 and rows[0]["frames"] == 3  # the biggest first
    assert rest["count"] == 31 - 5
    assert rest["frames"] == 33 - sum(r["frames"] for r in rows)
    assert all(r["frames"] == 1 for r in rows[1:])


def test_short_and_odd_keys_read_without_error():
    assert read_key(b"\x00" * 13) is None
    assert read_key(bytes(12) + b"\x08\x00" + b"\x06" + bytes(3)).src_ip is None  # addresses cut short
    r = read_key(bytes.fromhex("ffffffffffff525400000001") + b"\x81\x00\x00\x05\x88\xb5")
    assert (r.dst_mac, r.ethertype) == ("ff:ff:ff:ff:ff:ff", 0x88B5)


def test_arp_and_neighbour_discovery_are_kept_for_the_checks(hub):
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS

    h, (vm1, vm2, _) = hub
    arp = bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.1", pdst="10.0.0.2"))
    ns = bytes(
        Ether(src=B, dst="33:33:ff:00:00:01") / IPv6(src="fd00::2", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fd00::1")
    )
    na = bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6ND_NA(tgt="fd00::1"))
    echo6 = bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest())
    h.forward(vm1, [arp, tcp(1, 2), echo6, na])
    h.forward(vm2, [ns])
    assert h.take_watched() == [("vm1", arp), ("vm1", na), ("vm2", ns)]
    assert h.take_watched() == []


def test_a_port_that_sends_dhcp_server_messages_is_noted(hub):
    h, (vm1, vm2, _) = hub
    offer = bytes(Ether(src=C, dst=A) / IP(src="10.0.0.254", dst="10.0.0.1") / UDP(sport=67, dport=68))
    request = bytes(
        Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    )
    h.forward(vm1, [request])
    h.forward(vm2, [offer])
    h.count_conversations(1.0)
    sources = h.conversations.sources
    assert sources["vm2"].dhcp == {C} and sources["vm1"].dhcp == set()
    assert sources["vm2"].macs == {C: {"10.0.0.254"}} and sources["vm1"].macs == {A: {"0.0.0.0"}}


def test_run_prints_the_busiest_flows_under_their_vlan(hub):
    from qnet_tui.lab.stats import format_table

    h, (vm1, _, _) = hub
    h.count_conversations(1.0)
    h.forward(vm1, [tcp(40000, 5201, load=bytes(1000))] * 4 + [tcp(40001, 22)])
    h.count_conversations(2.0)
    nodes = [Node("vm1", Kind.GUEST_NIC, {"ipv4": "10.0.0.1/24"}), Node("vm2", Kind.GUEST_NIC, {"ipv4": "10.0.0.2/24"})]
    stats = h.stats() | {"fps": 0.0, "bps": 0.0, "conversations": h.conversations.snapshot(node_names(nodes))}
    text = format_table({"time": 0, "vlans": {"1": stats}, "peers": {}})
    top = text.splitlines()[2]
    assert top.strip().startswith("top flows: vm1:40000 > vm2:5201 tcp")
    assert top.index("vm2:5201") < top.index("vm2:22")  # the busier first
