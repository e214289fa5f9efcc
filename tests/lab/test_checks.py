"""The topology-aware checks on real frames from real guests, on a hub the
kernel forwards and on one the worker forwards, as `run --json` reports
them and the worker logs them."""

from __future__ import annotations

import sys

import pytest

from .conftest import wait_for
from .test_apply import apply
from .test_forwarding import ping

MAC = {g: f"52:54:00:00:0c:0{i}" for i, g in enumerate(("g1", "g2", "g3", "g4"), 1)}

LAB = """version: 1
name: x
nodes:
  hub1: {{kind: hub, vlan: 1, forwarding: {forwarding}}}
  g1: {{kind: guest_nic, mac: '52:54:00:00:0c:01', ipv4: 10.9.1.1/24, ipv6: fd09::1/64}}
  g2: {{kind: guest_nic, mac: '52:54:00:00:0c:02', ipv4: 10.9.1.2/24, ipv6: fd09::2/64}}
  g3: {{kind: guest_nic, mac: '52:54:00:00:0c:03', ipv4: 10.9.1.3/24, dhcp_server: true}}
  g4: {{kind: guest_nic, mac: '52:54:00:00:0c:04', ipv4: 10.9.1.4/24}}
links: [[hub1, g1], [hub1, g2], [hub1, g3], [hub1, g4]]
"""

# Run inside a guest: frames a guest's own stack would not send, made with scapy.
OFFER = """
import sys
from scapy.all import BOOTP, DHCP, IP, UDP, Ether, sendp
mac, ip = sys.argv[1:3]
sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=ip, dst="255.255.255.255") / UDP(sport=67, dport=68)
      / BOOTP(op=2, yiaddr="10.9.1.50") / DHCP(options=[("message-type", "offer"), "end"]), iface="eth0", verbose=0)
"""
ANNOUNCE = """
import sys
from scapy.all import ARP, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6, Ether, sendp
mac, ip, ip6 = sys.argv[1:4]
sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=ip, pdst=ip), iface="eth0", verbose=0)
sendp(Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_NA(tgt=ip6, R=0, S=0, O=1)
      / ICMPv6NDOptDstLLAddr(lladdr=mac), iface="eth0", verbose=0)
"""


def run(lab, node: str, *cmd: str) -> None:
    done = lab.exec(node, *cmd)
    assert done.returncode == 0, done.stdout + done.stderr


def found(lab, *wanted: tuple[str, str]) -> dict[tuple[str, str], dict]:
    """The hub's findings by (kind, address or MAC or port) once every one wanted is among them."""

    def now() -> dict[tuple[str, str], dict]:
        return {
            (f["kind"], f["address"] or f["mac"] or f["ports"][0]): f for f in lab.stats[-1]["vlans"]["1"]["checks"]
        }

    try:
        return wait_for(lambda: (out := now()) and set(wanted) <= out.keys() and out, 15, "the findings")
    except AssertionError:
        raise AssertionError(f"wanted {sorted(wanted)}, found {sorted(now())}") from None


@pytest.mark.parametrize(("forwarding", "by"), [("auto", "kernel"), ("worker", "worker")])
def test_stolen_macs_and_addresses_and_rogue_dhcp_are_flagged_by_node(make_lab, forwarding, by):
    lab = make_lab("", text=LAB.format(forwarding=forwarding))
    for guest in ("g2", "g3", "g4"):
        assert ping(lab, "g1", f"10.9.1.{guest[1]}", count=1).returncode == 0
    assert lab.stats[-1]["vlans"]["1"]["forwarding"] == by
    assert lab.stats[-1]["vlans"]["1"]["checks"] == []  # a lab that keeps to its topology

    # DHCP offers: g2 declares no server, g3 does.
    run(lab, "g2", sys.executable, "-c", OFFER, MAC["g2"], "10.9.1.2")
    run(lab, "g3", sys.executable, "-c", OFFER, MAC["g3"], "10.9.1.3")
    # g2 takes g1's addresses, says so in ARP and neighbour discovery, and sends from them.
    run(lab, "g2", "ip", "addr", "add", "10.9.1.1/32", "dev", "eth0")
    run(lab, "g2", sys.executable, "-c", ANNOUNCE, MAC["g2"], "10.9.1.1", "fd09::1")
    run(lab, "g2", "ping", "-c", "1", "-W", "2", "-I", "10.9.1.1", "10.9.1.4")
    # g4 takes g1's MAC.
    run(lab, "g4", "ip", "link", "set", "eth0", "address", MAC["g1"])
    ping(lab, "g4", "10.9.1.3", count=1)

    g1 = MAC["g1"]
    checks = found(
        lab,
        ("rogue-dhcp", MAC["g2"]),
        ("arp-conflict", "10.9.1.1"),
        ("nd-conflict", "fd09::1"),
        ("duplicate-ip", "10.9.1.1"),
        ("foreign-mac", g1),
        ("duplicate-mac", g1),
        ("arp-conflict", "10.9.1.4"),
    )
    flows = lab.stats[-1]["vlans"]["1"]["conversations"]["flows"]
    assert any((f["a"], f["a_port"], f["b_port"]) == ("10.9.1.3", 67, 68) for f in flows)  # g3's offer came
    assert [key for key in checks if key[0] == "rogue-dhcp"] == [("rogue-dhcp", MAC["g2"])]  # and is declared
    rogue = checks["rogue-dhcp", MAC["g2"]]
    assert rogue["message"].startswith(f"g2 answers DHCP from {MAC['g2']}")
    assert (rogue["ports"], rogue["nodes"], rogue["count"]) == (["g2"], ["g2"], 1)

    conflict = checks["arp-conflict", "10.9.1.1"]
    assert conflict["message"] == f"10.9.1.1, g1's address, is claimed in ARP by g2 ({MAC['g2']})"
    assert conflict["nodes"] == ["g1", "g2"] and conflict["count"] >= 1
    nd = checks["nd-conflict", "fd09::1"]
    assert nd["message"] == f"fd09::1, g1's address, is claimed in neighbour discovery by g2 ({MAC['g2']})"
    duplicate = checks["duplicate-ip", "10.9.1.1"]
    assert duplicate["message"] == "10.9.1.1, g1's address, is sent from g1 and g2"
    assert duplicate["ports"] == ["g1", "g2"] and duplicate["count"] >= 1  # g2's frames, not g1's

    assert [key for key in checks if key[0] == "foreign-mac"] == [("foreign-mac", g1)]
    foreign = checks["foreign-mac", g1]
    assert foreign["message"] == f"g4 sends from {g1}, g1's MAC"
    assert (foreign["ports"], foreign["nodes"], foreign["mac"]) == (["g4"], ["g1", "g4"], g1)
    assert checks["duplicate-mac", g1]["message"] == f"{g1}, g1's MAC, is sent from g1 and g4"
    stolen = checks["arp-conflict", "10.9.1.4"]  # g4's ARP, from g1's MAC
    assert stolen["message"] == f"10.9.1.4, g4's address, is claimed in ARP by g4 with g1's MAC ({g1})"

    # Told once each, in the worker's log (run prints it).
    assert lab.errors.count(f"qnet-tui: warning: hub1: foreign-mac: g4 sends from {MAC['g1']}, g1's MAC") == 1
    assert any(line.startswith("qnet-tui: warning: hub1: rogue-dhcp: g2 answers DHCP") for line in lab.errors)
    assert not any("rogue-dhcp: g3" in line for line in lab.errors)

    # Declared a DHCP server while the lab runs: that finding goes, the others stay, nothing is made anew.
    lab.file.write_text(lab.file.read_text().replace("fd09::2/64}", "fd09::2/64, dhcp_server: true}"))
    done = apply(lab)
    assert done.returncode == 0 and "made anew" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "~ g2: dhcp_server unset -> True" in done.stdout + done.stderr
    kinds = wait_for(
        lambda: (k := {f["kind"] for f in lab.stats[-1]["vlans"]["1"]["checks"]}) and "rogue-dhcp" not in k and k,
        10,
        "the rogue DHCP finding to go",
    )
    assert {"foreign-mac", "arp-conflict", "duplicate-ip"} <= kinds
