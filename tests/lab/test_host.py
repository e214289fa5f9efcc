"""Host NICs that attach a real interface (`interface:` and --allow-host).

The "machine" here is a namespace the test makes, holding a veth `uplink0`
whose far end sits in a "LAN" namespace with a host at 10.93.0.1; the worker
starts inside the machine, so the real interface it borrows is the test's,
never this computer's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from qnet_tui.lab import netns

from .conftest import lab_namespaces, network_state, wait_for, watchdog_of

LAB = """\
version: 1
name: lab
nodes:
  wan: {kind: host_nic, interface: uplink0}
  br0: {kind: bridge}
  tap0: {kind: tap}
  hub0: {kind: hub, vlan: 0}
  vm1: {kind: guest_nic, mac: "52:54:00:93:00:02", ipv4: 10.93.0.2/24}
links: [[wan, br0], [br0, tap0], [tap0, hub0], [hub0, vm1]]
"""


class Machine:
    def __init__(self, tag: str) -> None:
        self.ns, self.lan = f"qnt-{tag}-machine", f"qnt-{tag}-lan"

    def ipr(self, ns: str) -> IPRoute:
        with netns.inside(ns):
            return IPRoute()

    def build(self) -> None:
        netns.create(self.ns)
        netns.create(self.lan)
        for ns in (self.ns, self.lan):
            # No duplicate address detection: IPv6 addresses and their routes
            # are complete at once, so "before" is a settled state to compare with.
            with netns.inside(ns), open("/proc/sys/net/ipv6/conf/default/accept_dad", "w") as f:
                f.write("0")
        with self.ipr(self.ns) as ipr:
            ipr.link("add", ifname="uplink0", kind="veth", peer={"ifname": "lan0", "net_ns_fd": self.lan})
            up = ipr.link_lookup(ifname="uplink0")[0]
            ipr.addr("add", index=up, address="10.93.5.1", prefixlen=24)
            ipr.addr("add", index=up, address="fd93::1", prefixlen=64)
            ipr.link("set", index=up, state="up")
            ipr.route("add", dst="10.77.0.0", dst_len=16, gateway="10.93.5.254", oif=up)
            ipr.route("add", dst="10.78.0.0", dst_len=16, gateway="10.93.5.254", oif=up, table=100)
        with self.ipr(self.lan) as ipr:
            lan = ipr.link_lookup(ifname="lan0")[0]
            ipr.addr("add", index=lan, address="10.93.0.1", prefixlen=24)
            ipr.link("set", index=lan, state="up")

    def remove(self) -> None:
        for ns in (self.ns, self.lan):
            if ns in netns.existing():
                netns.remove(ns)

    def settled(self, before: dict) -> bool:
        return network_state(self.ns) == before


@pytest.fixture
def machine() -> Iterator[Machine]:
    m = Machine(uuid.uuid4().hex[:6])
    try:
        m.build()
        yield m
    finally:
        m.remove()


def comes_back(m: Machine, before: dict) -> None:
    """Until the machine is as it was (IPv6 redoes its link-local part); if it
    never is, the assertion shows what differs."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: m.settled(before), 15, "uplink0 to come back as it was")
    assert network_state(m.ns) == before


def settled_state(m: Machine) -> dict:
    """The machine's state once IPv6 has given every link that is up its
    link-local address and routes (each link on its own time), and it holds."""
    last: list[dict] = []

    def steady() -> dict | None:
        state = network_state(m.ns)
        up = {link[0] for link in state["links"] if link[2] == "UP"}
        local = {a[2] for a in state["addresses"] if a[0].startswith("fe80:")}
        held = last and last[-1] == state
        last.append(state)
        # uplink0's carrier comes when its LAN peer is up, a moment after it is set up.
        return state if "uplink0" in up and up <= local and held else None

    return wait_for(steady, 10, "link-local addresses on every link that is up, held over two reads")


def test_real_interface_needs_allow_host(make_lab, machine):
    before = settled_state(machine)
    lab = make_lab("", text=LAB, wait=False, inside=machine.ns)
    assert lab.proc.wait(30) == 1
    wait_for(lambda: any("needs --allow-host" in e for e in lab.errors), 5, "the refusal")
    assert "wan: attaching this machine's interface uplink0 needs --allow-host" in "\n".join(lab.errors)
    assert not lab_namespaces(lab.name)
    assert network_state(machine.ns) == before


def test_lent_interface_carries_frames_and_comes_back_whole(make_lab, machine):
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    with machine.ipr(machine.ns) as ipr:
        assert not ipr.link_lookup(ifname="uplink0")  # lent: it is the lab's now
    with machine.ipr(f"qnet-{lab.name}") as ipr:
        wan = ipr.get_links(ipr.link_lookup(ifname="wan")[0])[0]
        assert wan.get_attr("IFLA_MASTER") == ipr.link_lookup(ifname="br0")[0]
    # A guest reaches the LAN host through the hub, the tap, the bridge and the real interface.
    ping = lab.exec("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.93.0.1")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert lab.stop() == 0
    # Given back: its name, addresses, routes (another table's too) and state.
    comes_back(machine, before)


def test_a_killed_worker_gives_the_interface_back(make_lab, machine):
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    lab.proc.send_signal(signal.SIGKILL)
    lab.proc.wait(10)
    wait_for(lambda: not lab_namespaces(lab.name), 15, "the watchdog to remove the lab")
    comes_back(machine, before)


def test_lending_refuses_what_it_cannot_give_back_safely(make_lab, machine):
    with machine.ipr(machine.ns) as ipr:
        ipr.link("add", ifname="brm", kind="bridge")
        ipr.link("set", index=ipr.link_lookup(ifname="uplink0")[0], master=ipr.link_lookup(ifname="brm")[0])
    before = settled_state(machine)
    cases = {
        "uplink0": "wan: uplink0 is a port of brm on this machine; take it out of brm first",
        "nosuch0": "wan: this machine has no interface nosuch0",
        "lo": "wan: interface is reserved: every network namespace already has 'lo'",
    }
    for ifname, message in cases.items():
        text = LAB.replace("interface: uplink0", f"interface: {ifname}")
        lab = make_lab("", "--allow-host", text=text, wait=False, inside=machine.ns)
        assert lab.proc.wait(30) == 1
        wait_for(lambda lab=lab, message=message: any(message in e for e in lab.errors), 5, f"refusal of {ifname}")
        assert not lab_namespaces(lab.name)
        assert network_state(machine.ns) == before


def test_next_run_gives_back_what_a_dead_run_and_its_watchdog_left(make_lab, machine):
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    os.kill(watchdog_of(lab.proc.pid), signal.SIGKILL)
    lab.proc.kill()
    lab.proc.wait(10)
    with machine.ipr(machine.ns) as ipr:
        assert not ipr.link_lookup(ifname="uplink0")  # still in the dead lab's namespace
    again = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--allow-host", "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: netns.enter(machine.ns),
    )
    assert again.returncode == 0, again.stderr
    assert "removed what a killed run of lab" in again.stderr and "wan (gave back uplink0)" in again.stderr
    comes_back(machine, before)


def test_a_stranger_that_took_the_name_is_left_alone(make_lab, machine):
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    with machine.ipr(machine.ns) as ipr:  # while the lab has it, something else takes its name
        ipr.link("add", ifname="uplink0", kind="bridge")
    assert lab.stop() == 0
    wait_for(lambda: any("giving back uplink0" in e for e in lab.errors), 5, "the warning")
    assert "cannot rename wan back to uplink0: File exists" in "\n".join(lab.errors)
    state = network_state(machine.ns)
    names = {link[0]: link for link in state["links"]}
    assert names["uplink0"][4] == "bridge" and names["wan"][4] == "veth"  # ours came back under the lab's name
    assert ("10.93.5.1", 24, "wan") in state["addresses"]  # with its addresses, not the stranger
    assert not [a for a in state["addresses"] if a[2] == "uplink0" and not a[0].startswith("fe80:")]


def test_a_host_nic_named_like_a_link_of_the_machine_still_gives_back(make_lab, machine):
    with machine.ipr(machine.ns) as ipr:
        ipr.link("add", ifname="wan", kind="bridge")  # the machine has a "wan" of its own
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    assert lab.stop() == 0
    comes_back(machine, before)
    assert not any("giving back" in e for e in lab.errors)


def add_look_alikes(m: Machine) -> str:
    """Links of the machine that share uplink0's MAC: a veth, a sub-interface
    on it (a macvlan: kernels without 802.1Q have it, and it shares a MAC as
    a VLAN sub-interface does), and a bridge. Returns that MAC."""
    with m.ipr(m.ns) as ipr:
        mac = ipr.get_links(ipr.link_lookup(ifname="uplink0")[0])[0].get_attr("IFLA_ADDRESS")
        ipr.link("add", ifname="twin0", kind="veth", peer={"ifname": "twin1"})
        twin = ipr.link_lookup(ifname="twin0")[0]
        ipr.link("set", index=twin, address=mac)
        ipr.link("add", ifname="twin0.7", kind="macvlan", link=twin, macvlan_mode="passthru")
        ipr.link("add", ifname="brtwin", kind="bridge", address=mac)
        for name in ("twin0", "twin1", "twin0.7", "brtwin"):
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        alike = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links() if link.get_attr("IFLA_ADDRESS") == mac]
    assert sorted(alike) == ["brtwin", "twin0", "twin0.7", "uplink0"]
    return mac


def without_uplink(state: dict) -> dict:
    """The machine's state with uplink0 (and what hangs on it) removed."""
    return {key: [item for item in items if "uplink0" not in item] for key, items in state.items()}


def test_a_lent_interface_gone_with_its_namespace_leaves_look_alikes_alone(make_lab, machine):
    add_look_alikes(machine)
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    netns.remove(f"qnet-{lab.name}")  # the lab's host side, and the lent veth with it, are gone
    assert lab.stop() == 0
    assert "wan: giving back uplink0: uplink0 is gone" in "\n".join(lab.errors)
    # Nothing else was taken for it: not renamed, not addressed, not brought down.
    assert network_state(machine.ns) == without_uplink(before)


def test_an_interface_already_home_under_the_labs_name_comes_back_whole(make_lab, machine):
    add_look_alikes(machine)
    before = settled_state(machine)
    lab = make_lab("", "--allow-host", text=LAB, inside=machine.ns)
    with machine.ipr(f"qnet-{lab.name}") as ipr:  # someone sends it home while the lab has it
        ipr.link("set", index=ipr.link_lookup(ifname="wan")[0], net_ns_fd=machine.ns)
    assert lab.stop() == 0
    comes_back(machine, before)
