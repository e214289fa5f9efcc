"""Loops built of real parts storm until the hub cuts the port the copies come
back through: two stream sockets of one hub joined to each other, two dgram
sockets pointing at each other, and a bridge with two taps on one hub."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_for

GUESTS = (
    "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.9.0.1/24}\n"
    "  vm2: {kind: guest_nic, mac: '52:54:00:00:00:02', ipv4: 10.9.0.2/24}\n"
    "  vm3: {kind: guest_nic, mac: '52:54:00:00:00:03', ipv4: 10.9.0.3/24}\n"
)
LOOPS = {
    "stream": (
        "  sl: {kind: socket, transport: stream, family: unix, mode: listen, address: loop.sock}\n"
        "  sc: {kind: socket, transport: stream, family: unix, mode: connect, address: loop.sock}\n",
        "[hub0, sl], [hub0, sc]",
        ("sl", "sc"),
    ),
    "dgram": (
        "  d1: {kind: socket, transport: dgram, family: unix, address: d2.sock, local: d1.sock}\n"
        "  d2: {kind: socket, transport: dgram, family: unix, address: d1.sock, local: d2.sock}\n",
        "[hub0, d1], [hub0, d2]",
        ("d1", "d2"),
    ),
    "bridge": (
        "  br0: {kind: bridge}\n  t1: {kind: tap}\n  t2: {kind: tap}\n",
        "[hub0, t1], [hub0, t2], [br0, t1], [br0, t2]",
        ("t1", "t2"),
    ),
}
HOLD_S = 5.0  # ports.LOOP_HOLD_S: a cut port is re-tested after this


def topology(loop: str) -> str:
    nodes, links, _ = LOOPS[loop]
    return (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n" + GUESTS + nodes + "links: [[hub0, vm1], "
        "[hub0, vm2], [hub0, vm3], " + links + "]\n"
    )


def loop_drops(vlan: dict, ports: tuple[str, ...]) -> int:
    return sum(vlan["ports"][p]["drop_reasons"]["loop"] for p in ports)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_loop_is_cut_and_the_rest_of_the_hub_forwards(make_lab, loop):
    lab = make_lab("", text=topology(loop))
    ports = LOOPS[loop][2]
    if loop == "stream":
        wait_for(lambda: any("sc: connected to loop.sock" in x for x in lab.errors), 10, "the sockets to connect")
    # One broadcast is enough (the guests' own IPv6 chatter at link-up may
    # have been first): it would circle the loop forever.
    sender = lab.frames("vm1", "send", "eth0", "52:54:00:00:00:01", "1")
    assert sender.wait(30) == 0, sender.stderr.read()
    warning = wait_for(
        lambda: next((x for x in lab.errors if "warning: hub0: loop" in x), None), 10, "the loop warning"
    )
    vlan = lab.vlan("0", after=time.time())
    looped = [p for p in ports if vlan["ports"][p]["looped"]]
    assert len(looped) == 1 and f"port {looped[0]}" in warning, (warning, vlan["ports"])
    assert not any(vlan["ports"][p]["looped"] for p in ("vm1", "vm2", "vm3"))
    # The storm is over: the hub is quiet (a storm runs at tens of thousands of frames/s).
    quiet = lab.vlan("0", after=time.time() + 1.0)
    assert quiet["frames"] - vlan["frames"] < 300, (vlan["frames"], quiet["frames"])
    # Other guests of the hub still talk; their frames to and from the cut port count as loop drops.
    result = lab.exec("vm2", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.9.0.3")
    assert result.returncode == 0 and " 0% packet loss" in result.stdout, result.stdout + result.stderr
    after = lab.vlan("0", after=time.time())
    assert loop_drops(after, ports) > loop_drops(quiet, ports) >= vlan["ports"][looped[0]]["drop_reasons"]["loop"]
    assert after["drops"] >= loop_drops(after, ports)
    # Re-tested after the hold: the loop is still there, so the port stays cut and the hub quiet.
    wait_for(lambda: any(f"{looped[0]} still closes a loop" in x for x in lab.errors), HOLD_S + 5, "the re-test")
    retested = lab.vlan("0", after=time.time())
    assert retested["ports"][looped[0]]["looped"] is True
    assert retested["frames"] - after["frames"] < 300
    assert sum("warning: hub0: loop" in x for x in lab.errors) == 1  # said once
    assert lab.stop() == 0


RING = (
    """\
version: 1
name: x
nodes:
  hub0: {kind: hub, vlan: 0}
"""
    + GUESTS
    + """\
  g: {kind: guest}
  g0: {kind: guest_nic, guest: g, mac: '52:54:00:00:00:10'}
  g1: {kind: guest_nic, guest: g, mac: '52:54:00:00:00:11'}
links: [[hub0, vm1], [hub0, vm2], [hub0, vm3], [hub0, g0], [hub0, g1]]
"""
)


def test_a_guest_bridging_two_nics_of_a_hub_is_cut_though_the_hub_has_only_guests(make_lab):
    """A hub of namespace guests alone would be the kernel's, whose bridge has
    no loop guard: one on a cycle (here: a guest with two NICs on it) stays
    with the worker, which cuts the loop the guest makes by bridging them."""
    lab = make_lab("", text=RING)
    assert any("the worker forwards hub0: on a cycle of hubs and guests" in x for x in lab.errors), lab.errors
    for command in (
        ("ip", "link", "add", "br0", "type", "bridge"),
        ("ip", "link", "set", "eth0", "master", "br0"),
        ("ip", "link", "set", "eth1", "master", "br0"),
        ("ip", "link", "set", "br0", "up"),
    ):
        done = lab.exec("g", *command)
        assert done.returncode == 0, done.stderr
    sender = lab.frames("vm1", "send", "eth0", "52:54:00:00:00:01", "1")
    assert sender.wait(30) == 0, sender.stderr.read()
    wait_for(lambda: any("warning: hub0: loop" in x for x in lab.errors), 10, "the loop warning")
    vlan = lab.vlan("0", after=time.time())
    assert [p for p in ("g0", "g1") if vlan["ports"][p]["looped"]] in (["g0"], ["g1"]), vlan["ports"]
    quiet = lab.vlan("0", after=time.time() + 1.0)
    assert quiet["frames"] - vlan["frames"] < 300, (vlan["frames"], quiet["frames"])
    result = lab.exec("vm2", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.9.0.3")
    assert result.returncode == 0 and " 0% packet loss" in result.stdout, result.stdout + result.stderr
    assert lab.stop() == 0
