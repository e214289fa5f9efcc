"""Remote ports (lab/vxlan.py) on real namespaces standing in for machines:
a hub's frames reach a Linux vxlan device and come back from it; two
endpoints find the path MTU across a router with a narrow link, with and
without ICMP; stray datagrams are counted and forwarding goes on."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from qnet_tui.lab import netns
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import Hub, TapPort
from qnet_tui.lab.tap import open_tap
from qnet_tui.lab.vxlan import VxlanEndpoint, VxlanPort

from .conftest import wait_for


class World:
    """Namespaces of one test, an event loop in a thread of its own (as the
    worker's), and the hubs, ports and endpoints on it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.loop = Loop()
        self.logs: list[tuple[str, str]] = []
        self.fds: list[int] = []
        self.endpoints: list[VxlanEndpoint] = []
        self.thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.loop.add(self._wake_r, lambda mask: self.loop.stop())

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def ns(self, role: str) -> str:
        name = f"qnet-vx{self.tag}-{role}"
        netns.create(name)
        self.namespaces.append(name)
        for scope in ("all", "default"):  # no router solicitations and the like in the counts
            self.sysctl(name, f"net.ipv6.conf.{scope}.disable_ipv6", "1")
        return name

    def link(self, a: str, a_if: str, a_ip: str, b: str, b_if: str, b_ip: str, mtu: int = 1500) -> None:
        """A veth from a to b, addresses /24 on each end, up."""
        with netns.iproute(a) as ipr:
            ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if, "net_ns_fd": b})
        for ns, ifname, address in ((a, a_if, a_ip), (b, b_if, b_ip)):
            with netns.iproute(ns) as ipr:
                index = ipr.link_lookup(ifname=ifname)[0]
                ipr.link("set", index=index, mtu=mtu, state="up")
                ipr.addr("add", index=index, address=address, prefixlen=24)

    def route(self, ns: str, gateway: str) -> None:
        with netns.iproute(ns) as ipr:
            ipr.route("add", dst="0.0.0.0", dst_len=0, gateway=gateway)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        with netns.inside(ns), open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
            f.write(value)

    def guest(self, role: str, address: str) -> tuple[str, TapPort]:
        """A guest namespace whose eth0 is a tap the test holds, as the worker does."""
        ns = self.ns(role)
        with netns.inside(ns):
            fd = open_tap("eth0", False)
        self.fds.append(fd)
        with netns.iproute(ns) as ipr:
            index = ipr.link_lookup(ifname="eth0")[0]
            ipr.link("set", index=index, state="up")
            ipr.addr("add", index=index, address=address, prefixlen=24)
        port = TapPort(role, fd, False)
        self.loop.add(fd, lambda mask: port.on_readable())
        return ns, port

    def endpoint(self, ns: str, address: str) -> VxlanEndpoint:
        endpoint = VxlanEndpoint(self.loop, self.log, address)
        with netns.inside(ns):
            endpoint.start()
        self.endpoints.append(endpoint)
        return endpoint

    def run(self) -> None:
        self.thread = threading.Thread(target=self.loop.run, name="vxlan-test-loop", daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            os.write(self._wake_w, b"x")
            self.thread.join(5)
        for endpoint in self.endpoints:
            endpoint.close()
        for fd in (*self.fds, self._wake_r, self._wake_w):
            os.close(fd)
        self.loop.close()
        for ns in self.namespaces:
            netns.remove(ns)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()
    assert not [n for n in netns.existing() if n.startswith(f"qnet-vx{w.tag}")]


def ping(ns: str, address: str, *args: str, count: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", *args, address],
        capture_output=True,
        text=True,
        timeout=15,
    )


def kernel_side(w: World) -> tuple[str, str, VxlanPort, TapPort, Hub]:
    """Machine a (a hub: a guest's tap and a remote port) and machine b (a
    Linux vxlan device, VNI 42, with the address the guest pings)."""
    a, b = w.ns("a"), w.ns("b")
    w.link(a, "under0", "10.77.0.1", b, "under0", "10.77.0.2")
    with netns.iproute(b) as ipr:
        under = ipr.link_lookup(ifname="under0")[0]
        ipr.link(
            "add",
            ifname="vx42",
            kind="vxlan",
            vxlan_id=42,
            vxlan_group="10.77.0.1",
            vxlan_local="10.77.0.2",
            vxlan_port=4789,
            vxlan_link=under,
        )
        vx = ipr.link_lookup(ifname="vx42")[0]
        ipr.link("set", index=vx, state="up")
        ipr.addr("add", index=vx, address="10.77.1.2", prefixlen=24)
        device = ipr.get_links(vx)[0]
        assert device.get_attr("IFLA_MTU") == 1450  # the 50-byte overhead the port reckons with
        assert device.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_GROUP") == "10.77.0.1"
    guest, tap = w.guest("guest", "10.77.1.1")
    endpoint = w.endpoint(a, "10.77.0.1")
    remote = VxlanPort("vxlan:b", endpoint, 42, "10.77.0.2")
    hub = Hub("hub1", 1)
    hub.attach(tap)
    hub.attach(remote)
    endpoint.add(remote)
    return guest, b, remote, tap, hub


def test_a_hub_and_a_kernel_vxlan_device_ping_each_other(world: World) -> None:
    guest, b, remote, tap, hub = kernel_side(world)
    world.run()
    # b first: its ARP request goes to the device's remote (a, port 4789), learned nothing yet.
    out = ping(b, "10.77.1.1")
    assert out.returncode == 0, out.stdout + out.stderr
    out = ping(guest, "10.77.1.2")
    assert out.returncode == 0, out.stdout + out.stderr
    # The largest frame the kernel device sends (its MTU 1450: a 1464-byte
    # frame) passes both ways; one byte more is the remote port's to drop.
    out = ping(guest, "10.77.1.2", "-M", "do", "-s", "1422", count=1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert remote.drop_mtu == 0
    out = ping(guest, "10.77.1.2", "-M", "do", "-s", "1423", count=1)
    assert out.returncode != 0
    assert remote.drop_mtu == 1
    # A kernel vxlan device answers no probe: the route's MTU, said as such.
    wait_for(lambda: any("no probe answered" in m for _, m in world.logs), 5, "the probe given up")
    s = remote.stats()
    assert (s["kind"], s["peer"], s["vni"], s["pmtu"], s["probed"]) == ("vxlan", "10.77.0.2", 42, 1500, False)
    assert s["drop_reasons"]["mtu"] == 1 and s["drops"] == 1
    assert ("info", "vxlan:b path MTU 1500 (the route's; no probe answered): frames up to 1464 bytes") in world.logs
    # What came in from b was counted on b: the hub's totals are its guest's frames alone.
    assert remote.rx_frames >= 6 and tap.rx_frames >= 6
    totals = hub.stats()
    assert (totals["frames"], totals["bytes"]) == (tap.rx_frames, tap.rx_bytes)
    assert sum(totals["protocols"][p] for p in ("arp", "ipv4")) == tap.rx_frames
    hub.gather_conversations(0.0)
    assert set(hub.conversations.sources) == {"guest"}  # b's MACs are b's to check
    assert {port for port, _ in hub.take_watched()} == {"guest"}  # ARP from b too went by unwatched


def test_stray_datagrams_are_counted_and_forwarding_goes_on(world: World) -> None:
    guest, b, remote, _, _ = kernel_side(world)
    world.run()
    with netns.inside(b):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender:
        sender.bind(("10.77.0.2", 0))
        frame = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00" + bytes(46)
        sender.sendto(b"\x08\x00", ("10.77.0.1", 4789))  # shorter than a header
        sender.sendto(struct.pack("!II", 0x08000000, 99 << 8) + frame, ("10.77.0.1", 4789))  # nobody's VNI
        sender.sendto(struct.pack("!II", 0x0C000000, 42 << 8) + frame, ("10.77.0.1", 4789))  # a flag besides I
        sender.sendto(struct.pack("!II", 0x08000000, 42 << 8 | 1) + frame, ("10.77.0.1", 4789))  # reserved byte set
        sender.sendto(struct.pack("!II", 0x08000000, 42 << 8) + bytes(10), ("10.77.0.1", 4789))  # not Ethernet
        endpoint = remote.endpoint
        wait_for(lambda: remote.drop_malformed == 3 and endpoint.stats() == {"malformed": 1, "unknown": 1}, 5, "counts")
    assert remote.rx_frames == 0  # none of them went into the hub as a frame
    assert any("VNI 99 from 10.77.0.2" in m for _, m in world.logs)
    out = ping(guest, "10.77.1.2")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("icmp", [True, False], ids=["icmp", "black-hole"])
def test_two_endpoints_find_a_narrow_path_and_drop_what_it_cannot_carry(world: World, icmp: bool) -> None:
    """a -- router (1500 | 1400) -- c: both ends find 1400, whether the
    router's "fragmentation needed" reaches them or not."""
    a, r, c = world.ns("a"), world.ns("r"), world.ns("c")
    world.link(a, "under0", "10.77.0.1", r, "left", "10.77.0.254")
    world.link(r, "right", "10.77.2.254", c, "under0", "10.77.2.1", mtu=1400)
    world.sysctl(r, "net.ipv4.ip_forward", "1")
    world.route(a, "10.77.0.254")
    world.route(c, "10.77.2.254")
    if not icmp:  # the ends ignore ICMP for UDP: a black hole as far as they can tell
        for ns in (a, c):
            world.sysctl(ns, "net.ipv4.ip_no_pmtu_disc", "3")
    ports, guests = [], []
    for ns, local, peer, role, address in (
        (a, "10.77.0.1", "10.77.2.1", "g1", "10.77.1.1"),
        (c, "10.77.2.1", "10.77.0.1", "g2", "10.77.1.2"),
    ):
        guest, tap = world.guest(role, address)
        endpoint = world.endpoint(ns, local)
        remote = VxlanPort(f"vxlan:{role}", endpoint, 7, peer)
        hub = Hub(f"hub-{role}", 7)
        hub.attach(tap)
        hub.attach(remote)
        endpoint.add(remote)
        ports.append(remote)
        guests.append(guest)
    world.run()
    wait_for(lambda: all(p.probed for p in ports), 5, "both paths probed")
    assert [(p.pmtu, p.max_frame) for p in ports] == [(1400, 1364)] * 2
    assert ("info", "vxlan:g1 path MTU 1400: frames up to 1364 bytes") in world.logs
    out = ping(guests[0], "10.77.1.2", "-M", "do", "-s", "1322")  # a 1364-byte frame: the largest
    assert out.returncode == 0, out.stdout + out.stderr
    out = ping(guests[0], "10.77.1.2", "-M", "dont", "-s", "1400", count=1)
    assert out.returncode != 0
    assert ports[0].drop_mtu == 1 and ports[0].stats()["drop_reasons"]["mtu"] == 1
