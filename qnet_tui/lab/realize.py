"""Make a topology real: namespaces, bridges, veths and taps with pyroute2,
and the hubs and ports that forward between them.

Layout of lab L:
  qnet-L            the lab's host side: bridges, tap nodes, host NICs' inner ends
  qnet-L.NIC        per host NIC: the outside host, eth0 holding its address
  qnet-L.GUEST      per guest (machine): eth0, eth1, ... one per guest NIC in
                    file order, each a tap whose fd the worker holds, with that
                    NIC's MAC and addresses, for real programs to use; a guest
                    NIC of no guest is a guest of its own (its id, its eth0)
Everything lives in those namespaces, so deleting them removes it all. A VM
guest (vm: true) is a QEMU process instead (lab/vmguests.py), each of its
NICs a stream socket the lab dials; the lab ends it and removes its files."""

from __future__ import annotations

import errno
import functools
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import bpf, guestimage, hostif, kernelhub, netns, sysctl, vm, vmguests
from qnet_tui.lab.accel import probe
from qnet_tui.lab.console import Send
from qnet_tui.lab.kernelhub import KernelHub, VethPort
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import Hub, Port, TapPort
from qnet_tui.lab.sockets import DgramPort, Log, StreamPort
from qnet_tui.lab.tap import open_tap
from qnet_tui.lab.unixpaths import PathError, SocketFiles
from qnet_tui.lab.vmguests import VmGuest, VmGuestError
from qnet_tui.model import guests, scenario
from qnet_tui.model.kinds import Kind
from qnet_tui.model.qemu import qemu_socket
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.values import interface_address

GUEST_IFNAME = "eth0"  # an outside host's interface, and a lone guest NIC's
IFA_F_NODAD = 0x02
PORT_KINDS = (Kind.TAP, Kind.GUEST_NIC, Kind.SOCKET)  # the nodes a hub floods to (its ports)


class RealizeError(Exception):
    """The lab could not be built; the message names the node and the reason."""


@dataclass
class Lab:
    name: str
    topology: Topology
    runtime_dir: Path
    loop: Loop
    log: Log
    allow_host: bool = False  # may host NICs with `interface:` borrow this machine's interfaces
    on_record: Callable[[], None] = lambda: None  # namespaces or lent changed: save them
    namespaces: list[str] = field(default_factory=list)  # created, in order
    lent: list[dict] = field(default_factory=list)  # this machine's interfaces in the lab (hostif records)
    sockets: list[dict] = field(default_factory=list)  # unix socket files bound (unixpaths records)
    hubs: list[Hub] = field(default_factory=list)  # one per hub node: the VLANs
    pairs: list[Hub] = field(default_factory=list)  # direct peers and lone ports
    ports: dict[str, Port] = field(default_factory=dict)
    vms: list[dict] = field(default_factory=list)  # VM guests started (vmguests records)
    vm_guests: dict[str, VmGuest] = field(default_factory=dict)
    console_send: Send = lambda client, message: None  # the control server's, for VM consoles
    guest_image: guestimage.GuestImage | None = None  # the built-in one, once a VM guest needed it
    # Hubs the worker forwards whatever they hold: an impairment set live on
    # one the kernel forwarded moved it here (lab/apply.py to_worker).
    pinned: set[str] = field(default_factory=set)
    # Hubs with ports on other machines too (lab/machines.py): the worker's.
    # Their taps carry virtio-net headers (super-frames cross in chunks:
    # lab/vxlan.py) unless a member on some machine cannot (plain).
    stitched: frozenset[str] = frozenset()
    plain: frozenset[str] = frozenset()
    # Hubs the kernel would forward but for a cycle they are on (hubs_on_rings), as built.
    ringed: list[str] = field(default_factory=list)
    generation: int = 0  # how many changes it took while running (its ports are others after each)
    files: SocketFiles = field(init=False)

    def __post_init__(self) -> None:
        self.files = SocketFiles(self.runtime_dir, self.sockets, lambda: self.on_record())

    @functools.cached_property
    def machine_of(self) -> dict[str, guests.Machine]:
        """Each namespace guest NIC's machine (a lab's topology never changes)."""
        return {nic: machine for machine in guests.machines(self.topology) for nic in machine.nics}

    def namespace_of(self, node: str) -> str:
        """A node's own namespace: a guest NIC's is its guest's."""
        machine = self.machine_of.get(node)
        return netns.node_ns(self.name, machine.id if machine is not None else node)

    def ifname_of(self, nic: str) -> str:
        """A guest NIC's interface in its guest's namespace: eth0, eth1, ..."""
        machine = self.machine_of.get(nic)
        return machine.ifname(nic) if machine is not None else GUEST_IFNAME

    @property
    def host_ns(self) -> str:
        return netns.host_ns(self.name)

    def plan(self, t: Topology | None = None) -> list[PlannedHub]:
        """Its hubs as realize plans them (for topology t: a change being applied)."""
        return plan_hubs(t or self.topology, frozenset(self.pinned), kernel_path(), self.stitched, self.plain)

    @property
    def all_hubs(self) -> tuple[Hub, ...]:
        """Every forwarding hub: the VLANs, then the direct peers and lone ports."""
        return (*self.hubs, *self.pairs)


def link_index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise RealizeError(f"interface {ifname} vanished")
    return found[0]


def _add_addresses(ipr: IPRoute, index: int, node: Node) -> None:
    for name, version in (("ipv4", 4), ("ipv6", 6)):
        value = node.attrs.get(name)
        if value is None:
            continue
        iface = interface_address(value, version)
        # No duplicate address detection: the lab's addresses are known unique,
        # and guests should be reachable the moment the lab is up.
        extra = {"flags": IFA_F_NODAD} if version == 6 else {}
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra)


def _lo_up(ipr: IPRoute) -> None:
    ipr.link("set", index=link_index(ipr, "lo"), state="up")


class Builder:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.t = lab.topology
        self.iprs: dict[str, IPRoute] = {}
        self.vm_nics: set[str] = set()

    def vms(self, machines: list[guests.Machine], wait: bool = True) -> None:
        """Start the VM guests. With wait (the lab's start) until they serve
        their sockets, for the ports to dial; without (a running lab changed),
        the ports redial until they do."""
        if not machines:
            return
        lab = self.lab
        accel = probe()
        if wait:
            lab.log("info" if accel.name == "kvm" else "warning", f"VM guests run under {accel}")
        image = lab.guest_image
        if image is None and any(not ({"kernel", "disk"} & set(m.guest.attrs)) for m in machines):
            try:
                image = guestimage.ensure(log=lambda text: lab.log("info", f"guest image: {text}"))
            except guestimage.GuestImageError as exc:
                raise RealizeError(f"{machines[0].id}: the built-in guest image: {exc}") from None
            lab.guest_image = image
        for machine in machines:
            guest = VmGuest(self.t, machine, lab.runtime_dir, lab.loop, lab.log, accel, image, lab.console_send)
            # Recorded before it starts, as namespaces are: its pid file finds it.
            lab.vms.append(guest.record)
            lab.vm_guests[machine.id] = guest
            lab.on_record()
            try:
                guest.start(wait)
            except VmGuestError as exc:
                raise RealizeError(str(exc)) from None
            self.vm_nics.update(machine.nics)

    def ns(self, name: str) -> IPRoute:
        # Recorded before it exists: a worker killed in between must not leave
        # a namespace that no state file names (a record of one never made is harmless).
        self.lab.namespaces.append(name)
        self.lab.on_record()
        netns.create(name)
        ipr = self.iprs[name] = netns.iproute(name)
        _lo_up(ipr)
        return ipr

    def iproute(self, ns: str) -> IPRoute:
        """A netlink socket in namespace ns: the lab's, or made now."""
        if ns in self.iprs:
            return self.iprs[ns]
        if ns in self.lab.namespaces:  # made before (a running lab being changed)
            ipr = self.iprs[ns] = netns.iproute(ns)
            return ipr
        return self.ns(ns)

    def close(self) -> None:
        for ipr in self.iprs.values():
            ipr.close()
        self.iprs.clear()

    def peers(self, node_id: str, *kinds: Kind) -> list[str]:
        return [n for n in self.t.neighbours(node_id) if self.t.nodes[n].kind in kinds]

    def build(self) -> None:
        lab, t = self.lab, self.t
        real = [n for n in t.of_kind(Kind.HOST_NIC) if "interface" in n.attrs]
        if real and not lab.allow_host:
            raise RealizeError(
                f"{real[0].id}: attaching this machine's interface {real[0].attrs['interface']} needs --allow-host "
                "(nothing outside the lab's namespaces changes without it)"
            )
        try:
            surveys = [hostif.survey(n.id, n.attrs["interface"]) for n in real]
        except hostif.LendError as exc:
            raise RealizeError(str(exc)) from None
        host = self.ns(lab.host_ns)
        for record in surveys:
            # First, into a namespace holding only lo: the interface keeps its
            # ifindex there, and that is how it is known again at stop.
            self.lend(host, record)
        for node in t.of_kind(Kind.BRIDGE):
            self.bridge(host, node)
        for record in surveys:
            self.bridge_port_up(host, record["node"])
        for node in t.of_kind(Kind.HOST_NIC):
            if "interface" not in node.attrs:
                self.host_nic(host, node)
        machines = guests.machines(t)
        for machine in machines:
            if machine.guest is not None and not machine.is_vm:
                self.ns(lab.namespace_of(machine.id))  # a guest of no NICs too: exec still runs in it
        self.vms([m for m in machines if m.is_vm])
        hubs = []
        plan = lab.plan()
        lab.ringed = [p.name for p in plan if p.ring]
        for planned in plan:
            hub = self.hub(planned)
            (lab.hubs if planned.node else lab.pairs).append(hub)
            hubs.append(hub)
            for member in planned.members:
                hub.attach(self.port(host, t.nodes[member], planned))
        for machine in machines:
            if not machine.is_vm:
                self.machine(machine)
        for hub in hubs:
            for port in hub.ports:
                listen(lab, port)

    def hub(self, planned: PlannedHub) -> Hub:
        if not planned.kernel:
            return Hub(planned.name, planned.vlan)
        try:
            return KernelHub(planned.name, planned.vlan, self.lab.host_ns)
        except OSError as exc:
            raise RealizeError(exc.strerror or str(exc)) from None

    def bridge(self, host: IPRoute, node: Node) -> None:
        stp = node.get("stp") is True
        filtering = node.get("vlan_filtering") is True
        options = {"br_stp_state": 1 if stp else 0}
        if filtering:  # asked only when wanted: some kernels are built without it
            options["br_vlan_filtering"] = 1
        if stp:
            options["br_forward_delay"] = 200  # 2 s, the least STP allows: a lab should come up fast
        try:
            host.link("add", ifname=node.id, kind="bridge", **options)
        except NetlinkError as exc:
            if exc.code == errno.EOPNOTSUPP and filtering:
                raise RealizeError(
                    f"{node.id}: this kernel has no 802.1Q VLAN filtering for bridges "
                    "(CONFIG_BRIDGE_VLAN_FILTERING); set vlan_filtering: false"
                ) from None
            raise RealizeError(f"{node.id}: cannot create bridge: {os.strerror(exc.code)}") from None
        index = link_index(host, node.id)
        _add_addresses(host, index, node)
        host.link("set", index=index, state="up")

    def lend(self, host: IPRoute, record: dict) -> None:
        # Recorded before the move, as namespaces are: a kill in between must not lose it.
        self.lab.lent.append(record)
        self.lab.on_record()
        try:
            hostif.lend(record, self.lab.host_ns)
            # What finds it again at stop, whatever happens to names meanwhile.
            record["lab_index"] = hostif.lent_index(host, record)
        except hostif.LendError as exc:
            # The record stays: a move can fail halfway (moved, not renamed),
            # and giving back what never left is harmless.
            raise RealizeError(str(exc)) from None
        self.lab.on_record()

    def bridge_port_up(self, host: IPRoute, name: str) -> None:
        """Make link `name` (its node's name) a port of the bridge the node is linked to, and up."""
        index = link_index(host, name)
        bridges = self.peers(name, Kind.BRIDGE)
        if bridges:
            host.link("set", index=index, master=link_index(host, bridges[0]))
        host.link("set", index=index, state="up")

    def host_nic(self, host: IPRoute, node: Node) -> None:
        outside_ns = self.lab.namespace_of(node.id)
        outside = self.ns(outside_ns)
        try:
            # The far end is born in the outside namespace: no clash with a host NIC named eth0.
            host.link("add", ifname=node.id, kind="veth", peer={"ifname": GUEST_IFNAME, "net_ns_fd": outside_ns})
        except Exception as exc:
            raise RealizeError(f"{node.id}: cannot create veth: {exc}") from None
        if "mac" in node.attrs:
            host.link("set", index=link_index(host, node.id), address=node.attrs["mac"])
        self.bridge_port_up(host, node.id)
        inner = link_index(outside, GUEST_IFNAME)
        _add_addresses(outside, inner, node)
        outside.link("set", index=inner, state="up")

    def port(self, host: IPRoute, node: Node, planned: PlannedHub) -> Port:
        lab, vnet = self.lab, planned.vnet
        if planned.kernel:
            port: Port = self.veth(host, node)
        elif node.kind is Kind.TAP:
            fd = self.tap(lab.host_ns, node.id, vnet)
            self.bridge_port_up(host, node.id)
            port = TapPort(node.id, fd, vnet)
        elif node.is_qemu_vm:
            # A real QEMU VM is this NIC: it listens on a socket in the lab's folder, and the lab dials it.
            try:
                port = StreamPort(node.id, lab.loop, lab.log, "unix", "connect", qemu_socket(node.id), lab.files)
                port.start()
            except PathError as exc:
                raise RealizeError(str(exc)) from None
            except OSError as exc:
                raise RealizeError(f"{node.id}: {exc.strerror or exc}") from None
        elif node.id in self.vm_nics:
            # The VM's QEMU listens on the NIC's socket; the lab dials (and redials after a restart).
            address = vm.VmFiles(lab.runtime_dir, lab.machine_of[node.id].id).nic_socket(node.id).name
            try:
                port = StreamPort(node.id, lab.loop, lab.log, "unix", "connect", address, lab.files)
                port.start()
            except (PathError, OSError) as exc:
                raise RealizeError(f"{node.id}: {exc}") from None
        elif node.kind is Kind.GUEST_NIC:
            machine = lab.machine_of[node.id]
            ns, ifname = lab.namespace_of(machine.id), machine.ifname(node.id)
            ipr = self.iproute(ns)
            fd = self.tap(ns, ifname, vnet)
            index = link_index(ipr, ifname)
            ipr.link("set", index=index, address=node.attrs["mac"])
            _add_addresses(ipr, index, node)
            ipr.link("set", index=index, state="up")
            port = TapPort(node.id, fd, vnet)
        else:
            port = self.socket(node)
        lab.ports[node.id] = port
        return port

    def veth(self, host: IPRoute, node: Node) -> VethPort:
        """A guest NIC of a kernel-forwarded hub: a veth, the guest's end
        (eth0, ...) in its namespace, the hub's end (named as the NIC) in the
        lab's; the hub makes it a port of its bridge."""
        machine = self.lab.machine_of[node.id]
        ns, ifname = self.lab.namespace_of(machine.id), machine.ifname(node.id)
        ipr = self.iproute(ns)
        try:
            host.link("add", ifname=node.id, kind="veth", peer={"ifname": ifname, "net_ns_fd": ns})
        except NetlinkError as exc:
            raise RealizeError(f"{node.id}: cannot create veth: {os.strerror(exc.code)}") from None
        index = link_index(host, node.id)
        kernelhub.quiet(self.lab.host_ns, node.id)
        host.link("set", index=index, state="up")
        inner = link_index(ipr, ifname)
        ipr.link("set", index=inner, address=node.attrs["mac"])
        _add_addresses(ipr, inner, node)
        ipr.link("set", index=inner, state="up")
        try:
            return VethPort.open(node.id, self.lab.host_ns, index)
        except OSError as exc:
            raise RealizeError(f"{node.id}: cannot watch its veth: {exc.strerror or exc}") from None

    def machine(self, machine: guests.Machine) -> None:
        """What a guest holds across its NICs, once they are up: forwarding
        between them, and its default routes."""
        if machine.guest is not None and machine.guest.get("forwarding") is True:
            self.forwarding(machine)
        for nic in machine.nics:
            self.routes(machine, nic)

    def forwarding(self, machine: guests.Machine) -> None:
        try:
            sysctl.forwarding(self.lab.namespace_of(machine.id))
        except OSError as exc:
            raise RealizeError(f"{machine.id}: cannot turn forwarding on: {exc.strerror or exc}") from None

    def routes(self, machine: guests.Machine, nic: str) -> None:
        """The default routes through one NIC (its gateway, gateway6)."""
        ipr = self.iproute(self.lab.namespace_of(machine.id))
        node = self.t.nodes[nic]
        index = link_index(ipr, machine.ifname(nic))
        for key, family in (("gateway", socket.AF_INET), ("gateway6", socket.AF_INET6)):
            router = node.attrs.get(key)
            if router is None:
                continue
            dst = "0.0.0.0/0" if family == socket.AF_INET else "::/0"
            try:
                ipr.route("add", family=family, dst=dst, gateway=router, oif=index)
            except NetlinkError as exc:
                raise RealizeError(
                    f"{nic}: cannot add the default route via {router}: {os.strerror(exc.code)}"
                ) from None

    def tap(self, ns: str, ifname: str, vnet: bool) -> int:
        try:
            with netns.inside(ns):
                return open_tap(ifname, vnet)
        except OSError as exc:
            raise RealizeError(f"cannot create tap {ifname} in {ns}: {exc.strerror}") from None

    def socket(self, node: Node) -> Port:
        lab = self.lab
        family, address, external = node.get("family"), node.attrs["address"], node.get("external") is True
        try:
            if node.attrs["transport"] == "stream":
                port: StreamPort | DgramPort = StreamPort(
                    node.id, lab.loop, lab.log, family, node.attrs["mode"], address, lab.files, external
                )
            else:
                local = node.attrs.get("local")
                port = DgramPort(node.id, lab.loop, lab.log, family, address, local, lab.files, external)
            port.start()
        except PathError as exc:
            raise RealizeError(str(exc)) from None
        except (OSError, socket.gaierror) as exc:
            raise RealizeError(f"{node.id}: {exc.strerror or exc}") from None
        return port


@dataclass(frozen=True)
class PlannedHub:
    name: str
    vlan: int | None
    members: tuple[str, ...]  # port nodes, in file order
    vnet: bool  # frames carry virtio-net headers (taps only: sockets' frames have none)
    node: bool  # a hub node (a VLAN), not a pair or a lone port
    kernel: bool = False  # a Linux bridge floods for it (lab/kernelhub.py)
    ring: bool = False  # the kernel's but for a cycle it is on (hubs_on_rings): the worker's


@functools.cache
def kernel_path() -> bool:
    """Whether this kernel lets the lab watch a kernel-forwarded hub (eBPF
    socket filters; bridge ports that can be locked came in Linux 5.18)."""
    try:
        bpf.PortFilter.make(kernelhub.SAMPLE_BYTES).close()
    except OSError:
        return False
    release = os.uname().release.split(".")
    try:
        return (int(release[0]), int(release[1].split("-")[0])) >= (5, 18)
    except (ValueError, IndexError):
        return False


def _played(t: Topology) -> set[str]:
    """The ends of every link a scenario of t impairs: its hubs start with the
    worker, so that playing it never waits for a hub to change sides."""
    scenarios = scenario.read(t)[0] if t.scenarios is not None else {}
    return {
        end
        for s in scenarios.values()
        for step in s.steps
        if step.action in ("impair", "ramp")
        for end in (step.a, step.b)
    }


def plain_frames(t: Topology, members: Iterable[str], vm_nics: set[str] | None = None) -> bool:
    """Whether a hub of these members floods plain Ethernet frames: a socket
    (its frames carry no virtio-net header) or a QEMU VM's NIC among them."""
    if vm_nics is None:
        vm_nics = {nic for m in guests.machines(t) if m.is_vm for nic in m.nics}
    return any(t.nodes[m].kind is Kind.SOCKET or t.nodes[m].is_qemu_vm or m in vm_nics for m in members)


def hub_members(t: Topology, hub: str) -> list[str]:
    """The ports (taps, guest NICs, sockets) linked to a node: a hub's, or a port's peers."""
    return [n for n in t.neighbours(hub) if t.nodes[n].kind in PORT_KINDS]


def hubs_on_rings(t: Topology) -> set[str]:
    """Hub nodes on a cycle of the lab's graph: its links, and each guest
    joined to its NICs. A guest may bridge its NICs (or route a broadcast
    back), so a frame a hub on a cycle floods may come back to it, again and
    again; only the worker's hubs see that and cut it (lab/ports.py), so
    these stay with the worker. A hub on no cycle cannot get its own frames
    back."""
    edges = [(a, b) for a, b in t.links if a in t.nodes and b in t.nodes]
    linked = {frozenset(e) for e in edges}
    edges += [
        (m.id, nic) for m in guests.machines(t) if m.guest is not None for nic in m.nics if {m.id, nic} not in linked
    ]
    around: dict[str, list[tuple[int, str]]] = {}
    for i, (a, b) in enumerate(edges):
        around.setdefault(a, []).append((i, b))
        around.setdefault(b, []).append((i, a))

    def joined_without(edge: int, start: str, goal: str) -> bool:
        seen, todo = {start}, [start]
        while todo:
            for i, peer in around[todo.pop()]:
                if i != edge and peer not in seen:
                    if peer == goal:
                        return True
                    seen.add(peer)
                    todo.append(peer)
        return False

    return {
        hub.id
        for hub in t.of_kind(Kind.HUB)
        if any(joined_without(i, hub.id, peer) for i, peer in around.get(hub.id, ()))
    }


def plan_hubs(
    t: Topology,
    pinned: frozenset[str] = frozenset(),
    kernel: bool = False,
    stitched: frozenset[str] = frozenset(),
    plain: frozenset[str] = frozenset(),
) -> list[PlannedHub]:
    """Which ports flood to which: one hub per hub node; a guest NIC peered
    to a tap or socket forms a pair; a port with no peer stands alone.

    With kernel (this machine can), a hub node whose ports are all namespace
    guests' NICs, none of its links impaired in the file, not set
    `forwarding: worker` and not pinned to the worker, is the kernel's to
    forward, unless it is on a cycle of hubs and guests (hubs_on_rings: the
    worker's loop guard is what cuts a loop). A stitched hub (ports on other
    machines too) is the worker's; it
    carries virtio-net headers unless it is in plain (a member on some
    machine cannot: every machine must agree, lab/machines.py)."""
    vm_nics = {nic for m in guests.machines(t) if m.is_vm for nic in m.nics}
    impaired = {end for way in t.impair for end in way} | _played(t)
    rings = hubs_on_rings(t) if kernel else set()

    def planned(name: str, vlan: int | None, members: list[str], node: bool) -> PlannedHub:
        # Frames from sockets carry no virtio-net header: then nobody's do.
        vnet = name not in plain and not plain_frames(t, members, vm_nics)
        fast = (
            kernel
            and node
            and name not in stitched
            and bool(members)
            and name not in pinned
            and name not in impaired
            and t.nodes[name].get("forwarding") != "worker"
            and all(t.nodes[m].kind is Kind.GUEST_NIC and not t.nodes[m].is_qemu_vm for m in members)
            and not vm_nics.intersection(members)
        )
        ring = fast and name in rings
        return PlannedHub(name, vlan, tuple(members), vnet, node, fast and not ring, ring)

    plan: list[PlannedHub] = []
    placed: set[str] = set()
    for node in t.of_kind(Kind.HUB):
        members = hub_members(t, node.id)
        plan.append(planned(node.id, node.get("vlan"), members, True))
        placed.update(members)
    for node in t.nodes.values():
        if node.kind not in PORT_KINDS or node.id in placed:
            continue
        members = [node.id] + [p for p in hub_members(t, node.id) if p not in placed]
        if node.kind is not Kind.GUEST_NIC and len(members) > 1:
            continue  # the guest NIC of the pair places it
        plan.append(planned("-".join(members), None, members, False))
        placed.update(members)
    return plan


def listen(lab: Lab, port: Port) -> None:
    """Have the loop hand a tap's frames to its hub (sockets register
    themselves); a kernel hub's port, the frames its filter kept."""
    if isinstance(port, (TapPort, VethPort)):
        lab.loop.add(port.fd, lambda mask, p=port: p.on_readable())


def realize(lab: Lab) -> None:
    """Build lab.topology. On failure, what was built stays recorded in lab for
    teardown() to remove, and RealizeError says what failed."""
    builder = Builder(lab)
    try:
        builder.build()
    except RealizeError:
        raise
    except Exception as exc:  # netlink errors come in many types; name the lab's part
        raise RealizeError(f"building lab {lab.name} failed: {type(exc).__name__}: {exc}") from None
    finally:
        builder.close()


def teardown(lab: Lab) -> list[str]:
    """Stop forwarding, close every fd, give back this machine's interfaces,
    delete every namespace this lab made (and with them its bridges, veths and
    taps). Returns what was removed."""
    removed = [f"VM {name}" for name in lab.vm_guests]
    for guest in lab.vm_guests.values():
        guest.stop()
        vmguests.remove_files(lab.runtime_dir, guest.name)
    lab.vm_guests.clear()
    if lab.vms:
        lab.vms.clear()
        lab.on_record()
    for port in lab.ports.values():
        close = getattr(port, "close", None)
        if close is not None:
            close()
    for hub in lab.hubs:
        if isinstance(hub, KernelHub):
            hub.close()
    lab.files.release_all()  # a port that failed half-way made its file, too
    if lab.lent:
        for record in reversed(lab.lent):
            for problem in hostif.give_back_safely(record, lab.host_ns):
                lab.log("warning", f"{record['node']}: giving back {record['ifname']}: {problem}")
        lab.lent.clear()
        lab.on_record()
    present = set(netns.existing())
    for name in reversed(lab.namespaces):
        if name in present and netns.belongs_to(name, lab.name):
            netns.remove(name)
            removed.append(name)
    lab.namespaces.clear()
    return removed
