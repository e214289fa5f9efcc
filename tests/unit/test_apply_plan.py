"""What applying a changed topology to a running lab takes (lab/apply.py's
plan): which ports close, which are made, which hubs and machines change,
and what cannot be done live."""

from __future__ import annotations

from qnet_tui.lab.apply import plan
from qnet_tui.model.yamlio import load_text

BASE = """version: 1
name: lab
nodes:
  hub1: {kind: hub, vlan: 1}
  hub2: {kind: hub, vlan: 2}
  br0: {kind: bridge}
  tap0: {kind: tap}
  r1: {kind: guest, forwarding: true}
  r1a: {kind: guest_nic, guest: r1, mac: '52:54:00:00:00:01', ipv4: 10.0.1.1/24}
  r1b: {kind: guest_nic, guest: r1, mac: '52:54:00:00:00:02', ipv4: 10.0.2.1/24}
  vm2: {kind: guest_nic, mac: '52:54:00:00:00:03', ipv4: 10.0.1.2/24}
  vm3: {kind: guest_nic, mac: '52:54:00:00:00:04', ipv4: 10.0.2.3/24}
links:
  - [hub1, r1a]
  - [hub1, vm2]
  - [hub2, r1b]
  - [hub2, vm3]
  - [hub1, tap0]
  - [tap0, br0]
"""


def topo(text: str):
    doc = load_text(text)
    assert not [d for d in doc.diagnostics() if d.is_error], doc.diagnostics()
    return doc.topology


def edited(*pairs: tuple[str, str], base: str = BASE):
    text = base
    for old, new in pairs:
        assert old in text
        text = text.replace(old, new)
    return topo(text)


def test_no_difference_is_an_empty_plan():
    p = plan(topo(BASE), topo(BASE))
    assert p.empty and p.refusal is None
    assert not (p.ports_gone or p.ports_new or p.machines_new or p.vms_new or p.bridges_new or p.masters)


def test_a_link_moved_moves_the_port_and_makes_nothing_anew():
    p = plan(topo(BASE), edited(("[hub1, vm2]", "[hub2, vm2]")))
    assert p.changes == ["- link hub1 - vm2", "+ link hub2 - vm2"]
    assert not (p.ports_gone or p.ports_new)


def test_an_address_change_makes_that_nic_anew_and_nothing_else():
    p = plan(topo(BASE), edited(("ipv4: 10.0.1.2/24", "ipv4: 10.0.1.22/24")))
    assert p.ports_gone == p.ports_new == {"vm2"}
    assert "~ vm2: ipv4 10.0.1.2/24 -> 10.0.1.22/24" in p.changes
    assert not (p.machines_gone or p.machines_new)


def test_declaring_a_dhcp_server_is_a_change_that_remakes_nothing():
    t = BASE.replace("links:\n", "  up0: {kind: host_nic}\nlinks:\n") + "  - [br0, up0]\n"
    served = t.replace("ipv4: 10.0.1.2/24}", "ipv4: 10.0.1.2/24, dhcp_server: true}").replace(
        "up0: {kind: host_nic}", "up0: {kind: host_nic, dhcp_server: true}"
    )
    p = plan(topo(t), topo(served))
    assert sorted(p.changes) == ["~ up0: dhcp_server unset -> True", "~ vm2: dhcp_server unset -> True"]
    assert not (p.ports_gone or p.ports_new or p.host_nics_gone or p.host_nics_new or p.machines_new)
    p = plan(topo(t), topo(served.replace("10.0.1.2/24, dhcp", "10.0.1.9/24, dhcp")))
    assert p.ports_gone == p.ports_new == {"vm2"}  # the address still remakes it


def test_a_hub_added_and_one_removed():
    p = plan(
        topo(BASE),
        edited(
            ("  - [hub2, r1b]\n  - [hub2, vm3]\n", ""), ("hub2: {kind: hub, vlan: 2}", "hub3: {kind: hub, vlan: 3}")
        ),
    )
    assert "- hub hub2" in p.changes and "+ hub hub3" in p.changes
    # r1b and vm3 now stand alone: the same ports, each a hub of its own
    assert not (p.ports_gone or p.ports_new)


def test_a_vlan_number_is_changed_in_place():
    p = plan(topo(BASE), edited(("vlan: 2", "vlan: 20")))
    assert p.changes == ["~ hub2: vlan 2 -> 20"]
    assert not (p.ports_gone or p.ports_new)


def test_a_nic_inserted_before_others_renames_them_so_they_are_made_anew():
    added = "  r1z: {kind: guest_nic, guest: r1, mac: '52:54:00:00:00:09'}\n"
    p = plan(topo(BASE), edited(("  r1a:", added + "  r1a:"), ("  - [hub1, r1a]", "  - [hub1, r1a]\n  - [hub2, r1z]")))
    assert p.ports_new == {"r1z", "r1a", "r1b"}  # eth0 is r1z now; r1a eth1, r1b eth2
    assert p.ports_gone == {"r1a", "r1b"}
    assert not p.machines_new  # r1's namespace stays


def test_a_nic_appended_is_the_only_one_made():
    added = "  r1z: {kind: guest_nic, guest: r1, mac: '52:54:00:00:00:09'}\n"
    p = plan(topo(BASE), edited(("  vm2:", added + "  vm2:"), ("  - [hub1, r1a]", "  - [hub1, r1a]\n  - [hub2, r1z]")))
    assert p.ports_new == {"r1z"} and not p.ports_gone


def test_forwarding_is_switched_in_place():
    p = plan(topo(BASE), edited(("forwarding: true", "forwarding: false")))
    assert p.forwarding == {"r1": False}
    assert not (p.ports_gone or p.machines_gone)


def test_a_socket_joining_a_hub_of_taps_remakes_them_without_virtio_headers():
    sock = "  s0: {kind: socket, transport: dgram, family: inet, address: '127.0.0.1:9999'}\n"
    p = plan(topo(BASE), edited(("  vm2:", sock + "  vm2:"), ("  - [hub1, vm2]", "  - [hub1, vm2]\n  - [hub1, s0]")))
    assert p.ports_new == {"s0", "r1a", "vm2", "tap0"}
    assert p.ports_gone == {"r1a", "vm2", "tap0"}
    assert "vm3" not in p.ports_gone  # on hub2, untouched


def test_a_tap_moved_to_another_bridge_changes_master_only():
    p = plan(
        topo(BASE),
        edited(("br0: {kind: bridge}", "br0: {kind: bridge}\n  br1: {kind: bridge}"), ("[tap0, br0]", "[tap0, br1]")),
    )
    assert p.masters == {"tap0"} and p.bridges_new == {"br1"}
    assert not p.ports_new


def test_a_bridge_made_anew_takes_its_ports_back():
    p = plan(topo(BASE), edited(("br0: {kind: bridge}", "br0: {kind: bridge, stp: true}")))
    assert p.bridges_gone == p.bridges_new == {"br0"}
    assert p.masters == {"tap0"}


def test_impairments_the_file_changes_are_planned_per_direction():
    before = topo(BASE.replace("[hub1, vm2]", "[hub1, vm2, {impair: 'delay=10ms'}]"))
    p = plan(before, edited(("[hub1, vm2]", "[hub1, vm2, {impair: 'loss=5%'}]")))
    assert p.impair == {("hub1", "vm2"): "loss=5%", ("vm2", "hub1"): "loss=5%"}
    p = plan(before, topo(BASE))
    assert p.impair == {("hub1", "vm2"): None, ("vm2", "hub1"): None}  # lifted


def test_the_lab_name_and_lent_interfaces_are_refused_with_the_reason():
    p = plan(topo(BASE), edited(("name: lab", "name: other")))
    assert p.refusal is not None and "name" in p.refusal and "other" in p.refusal
    lent = "  up0: {kind: host_nic, interface: dummy7}\n"
    p = plan(topo(BASE), edited(("  vm2:", lent + "  vm2:"), ("  - [tap0, br0]", "  - [tap0, br0]\n  - [up0, br0]")))
    assert p.refusal is not None and "up0" in p.refusal and "dummy7" in p.refusal


VMS = """version: 1
name: lab
nodes:
  hub1: {kind: hub, vlan: 1}
  r1: {kind: guest, vm: true, memory: 128}
  r1a: {kind: guest_nic, guest: r1, mac: '52:54:00:00:00:01', ipv4: 10.0.1.1/24}
  vm2: {kind: guest_nic, mac: '52:54:00:00:00:03', ipv4: 10.0.1.2/24}
links:
  - [hub1, r1a]
  - [hub1, vm2]
"""


def test_a_vm_guest_changed_restarts_and_its_nic_ports_stay_to_redial():
    p = plan(topo(VMS), topo(VMS.replace("memory: 128", "memory: 256")))
    assert p.vms_gone == p.vms_new == {"r1"}
    assert not (p.ports_gone or p.ports_new)
    p = plan(topo(VMS), topo(VMS.replace("ipv4: 10.0.1.1/24", "ipv4: 10.0.1.9/24")))
    assert p.vms_new == {"r1"} and not p.ports_new


def test_a_guest_turned_into_a_vm_leaves_its_namespace():
    p = plan(topo(VMS.replace("vm: true, memory: 128", "forwarding: true")), topo(VMS))
    assert p.machines_gone == {"r1"} and p.vms_new == {"r1"}
    # vm2 too: hub1 has a VM's socket now, so its taps carry no virtio-net headers
    assert p.ports_gone == p.ports_new == {"r1a", "vm2"}


def test_changed_scenarios_are_a_change_of_their_own():
    timeline = "scenarios:\n  cut:\n    - {at: 1s, link: [hub1, vm2], down: 2s}\n"
    p = plan(topo(BASE), topo(BASE + timeline))
    assert p.changes == ["~ scenarios: cut"]
    assert not (p.ports_gone or p.ports_new)


# -- which hubs the kernel forwards (realize.plan_hubs with kernel=True) ------------------


def kernel_hubs(t, pinned=frozenset()) -> dict[str, bool]:
    from qnet_tui.lab.realize import plan_hubs

    return {h.name: h.kernel for h in plan_hubs(t, pinned, kernel=True) if h.node}


def test_a_hub_of_namespace_guests_alone_is_the_kernels():
    # hub1 holds tap0: the worker's; hub2 only guest NICs.
    assert kernel_hubs(topo(BASE)) == {"hub1": False, "hub2": True}
    assert kernel_hubs(edited(("  - [hub1, tap0]\n", ""))) == {"hub1": True, "hub2": True}


def test_forwarding_worker_an_impairment_or_a_pin_keep_a_hub_with_the_worker():
    assert kernel_hubs(edited(("hub2: {kind: hub, vlan: 2}", "hub2: {kind: hub, vlan: 2, forwarding: worker}"))) == {
        "hub1": False,
        "hub2": False,
    }
    assert kernel_hubs(edited(("[hub2, vm3]", "[hub2, vm3, {impair: 'delay=1ms'}]")))["hub2"] is False
    assert kernel_hubs(topo(BASE), frozenset({"hub2"}))["hub2"] is False
    from qnet_tui.lab.realize import plan_hubs

    assert not any(h.kernel for h in plan_hubs(topo(BASE)))  # a kernel that cannot: the worker forwards all


def test_a_nic_moving_between_kernel_and_worker_hubs_is_made_anew():
    moved = edited(("[hub2, vm3]", "[hub1, vm3]"))
    p = plan(topo(BASE), moved, kernel=True)
    assert p.ports_gone == p.ports_new == {"vm3"}  # a veth before, a tap after
    p = plan(topo(BASE), edited(("  - [hub1, tap0]\n", "")), kernel=True)
    assert p.ports_gone == p.ports_new == {"r1a", "vm2"}  # hub1 changes sides: its NICs become veths
    assert plan(topo(BASE), moved).ports_gone == set()  # the worker's alone: the tap moves with its fd


RINGS = """\
version: 1
name: rings
nodes:
  hub1: {kind: hub, vlan: 1}
  hub2: {kind: hub, vlan: 2}
  hub3: {kind: hub, vlan: 3}
  r: {kind: guest}
  r1: {kind: guest_nic, guest: r, mac: '52:54:00:00:09:01'}
  r2: {kind: guest_nic, guest: r, mac: '52:54:00:00:09:02'}
  s: {kind: guest}
  s2: {kind: guest_nic, guest: s, mac: '52:54:00:00:09:12'}
  s3: {kind: guest_nic, guest: s, mac: '52:54:00:00:09:13'}
  vm1: {kind: guest_nic, mac: '52:54:00:00:09:21'}
  vm3: {kind: guest_nic, mac: '52:54:00:00:09:23'}
links:
  - [hub1, r1]
  - [hub2, r2]
  - [hub2, s2]
  - [hub3, s3]
  - [hub1, vm1]
  - [hub3, vm3]
"""


def rings(*pairs: tuple[str, str]):
    return edited(*pairs, base=RINGS)


def test_a_hub_on_a_cycle_of_hubs_and_guests_is_the_workers():
    """Guests r and s join hub1 - hub2 - hub3 in a line: no cycle, all the
    kernel's. A third guest joining hub3 back to hub1 closes a cycle through
    all three; a guest with two NICs on one hub is a cycle of its own."""
    from qnet_tui.lab.realize import hubs_on_rings, plan_hubs

    line = rings()
    assert hubs_on_rings(line) == set()
    assert kernel_hubs(line) == {"hub1": True, "hub2": True, "hub3": True}
    closed = rings(
        (
            "  vm1:",
            "  u: {kind: guest}\n"
            "  u1: {kind: guest_nic, guest: u, mac: '52:54:00:00:09:31'}\n"
            "  u3: {kind: guest_nic, guest: u, mac: '52:54:00:00:09:33'}\n  vm1:",
        ),
        ("  - [hub1, vm1]\n", "  - [hub1, vm1]\n  - [hub1, u1]\n  - [hub3, u3]\n"),
    )
    assert hubs_on_rings(closed) == {"hub1", "hub2", "hub3"}
    assert kernel_hubs(closed) == {"hub1": False, "hub2": False, "hub3": False}
    assert all(h.ring for h in plan_hubs(closed, kernel=True) if h.node)
    said = plan(line, closed, kernel=True).changes
    assert (
        "  hub2 is forwarded by the worker from now on (on a cycle of hubs and guests: the worker cuts loops)" in said
    )
    twice = rings(("  - [hub2, r2]\n", "  - [hub1, r2]\n"))  # r's two NICs on hub1
    assert hubs_on_rings(twice) == {"hub1"}
    assert kernel_hubs(twice) == {"hub1": False, "hub2": True, "hub3": True}
    # A hub the worker has anyway (a tap on it) is not flagged as held back by its cycle.
    tapped = rings(("  - [hub2, r2]\n", "  - [hub1, r2]\n  - [hub1, t]\n"), ("  vm1:", "  t: {kind: tap}\n  vm1:"))
    assert {h.name: (h.kernel, h.ring) for h in plan_hubs(tapped, kernel=True) if h.node}["hub1"] == (False, False)
