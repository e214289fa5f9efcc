"""Apply: a running lab takes a changed topology and changes only what
differs; whatever the change does not touch keeps forwarding (its ports,
fds, sockets and counters stay as they are).

A port node (tap, guest NIC, socket) is made anew when what its port is made
of changes: a socket's addresses, a guest NIC's attributes or its place in its
guest (eth0, eth1, ...), a tap's virtio-net header (its hub gained or lost a
socket). A port whose links alone change moves between hubs with its fd. A
namespace guest comes and goes with its namespace; a VM guest whose settings
or NICs change is restarted (its NICs' ports redial it). Bridges and host NICs
are made anew when their attributes change. What cannot be done live (the
lab's name, this machine's own interfaces lent to the lab) is refused with
the reason, and a restart builds it.

Impairments follow the file: a direction whose `impair:` changed is set
anew, and so are those of moved or new ports; one set live (`qnet-tui
impair`) on a link the change leaves alone stays."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import links, netns, nicstate, sysctl, vmguests
from qnet_tui.lab.conversations import Conversations
from qnet_tui.lab.impair import NONE, Impairment
from qnet_tui.lab.kernelhub import KernelHub, VethPort
from qnet_tui.lab.linkimpair import ImpairError, set_impairment
from qnet_tui.lab.ports import Hub, Port, TapPort
from qnet_tui.lab.realize import (
    PORT_KINDS,
    Builder,
    Lab,
    PlannedHub,
    RealizeError,
    link_index,
    listen,
    plan_hubs,
)
from qnet_tui.model import guests
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Link, Node, Topology


class ApplyError(Exception):
    """The change could not be carried out whole; the text says where."""


@dataclass
class Plan:
    changes: list[str] = field(default_factory=list)  # for people, one line each
    refusal: str | None = None  # why it cannot be applied live
    ports_gone: set[str] = field(default_factory=set)  # their ports close (removed, or made anew)
    ports_new: set[str] = field(default_factory=set)
    machines_gone: set[str] = field(default_factory=set)  # namespace guests: their namespaces
    machines_new: set[str] = field(default_factory=set)
    forwarding: dict[str, bool] = field(default_factory=dict)  # kept namespace guests whose forwarding changes
    vms_gone: set[str] = field(default_factory=set)  # a changed VM guest is in both
    vms_new: set[str] = field(default_factory=set)
    bridges_gone: set[str] = field(default_factory=set)
    bridges_new: set[str] = field(default_factory=set)
    host_nics_gone: set[str] = field(default_factory=set)
    host_nics_new: set[str] = field(default_factory=set)
    masters: set[str] = field(default_factory=set)  # kept taps and host NICs whose bridge may change
    impair: dict[Link, Any] = field(default_factory=dict)  # directions whose impairment the file changed
    hubs: list[PlannedHub] = field(default_factory=list)  # the new topology's, as realize plans them

    @property
    def empty(self) -> bool:
        return not self.changes


# Attributes only the checks read (lab/checks.py, from the lab's topology each
# tick): changing one remakes nothing.
CHECKS_ONLY = frozenset({"dhcp_server"})


def _made_of(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in CHECKS_ONLY}


def _frozen(attrs: dict[str, Any]) -> str:
    return repr(sorted(_made_of(attrs).items(), key=lambda kv: kv[0]))


def _attr_changes(old: Node, new: Node) -> str:
    keys = sorted(set(old.attrs) | set(new.attrs))
    said = []
    for key in keys:
        before, after = old.attrs.get(key), new.attrs.get(key)
        if before != after:
            said.append(f"{key} {_value(before)} -> {_value(after)}")
    return ", ".join(said)


def _value(value: Any) -> str:
    return "unset" if value is None else str(value)


class _Side:
    """What one topology makes: machines, hubs, and each port's recipe."""

    def __init__(self, t: Topology, pinned: frozenset[str], kernel: bool) -> None:
        self.t = t
        self.machines = {m.id: m for m in guests.machines(t)}
        self.machine_of = {nic: m for m in self.machines.values() for nic in m.nics}
        self.plan = plan_hubs(t, pinned, kernel)
        self.hubs = {h.name: h for h in self.plan}
        self.hub_of = {member: h for h in self.hubs.values() for member in h.members}

    def port_recipe(self, node: Node) -> tuple:
        """What a port node's port is made of: equal recipes, the same port."""
        hub = self.hub_of.get(node.id)
        vnet = hub.vnet if hub is not None else None
        if node.kind is Kind.GUEST_NIC:
            if node.is_qemu_vm:
                return ("qemu",)
            machine = self.machine_of[node.id]
            if machine.is_vm:
                return ("vm", machine.id)  # the VM's settings restart it; the port just redials
            # A kernel hub's NIC is a veth, a worker's a tap: a NIC changing sides is made anew.
            kernel = hub is not None and hub.kernel
            return ("namespace", machine.id, machine.ifname(node.id), _frozen(node.attrs), vnet, kernel)
        if node.kind is Kind.TAP:
            return ("tap", _frozen(node.attrs), vnet)
        return ("socket", _frozen(node.attrs))

    def vm_recipe(self, machine: guests.Machine) -> tuple:
        nics = tuple((nic, _frozen(self.t.nodes[nic].attrs)) for nic in machine.nics)
        return (_frozen(machine.guest.attrs), nics)

    def bridge_of(self, node_id: str) -> str | None:
        found = [n for n in self.t.neighbours(node_id) if self.t.nodes[n].kind is Kind.BRIDGE]
        return found[0] if found else None


def plan(old: Topology, new: Topology, pinned: frozenset[str] = frozenset(), kernel: bool = False) -> Plan:
    """What changing a lab built from `old` into `new` takes (nothing is done).
    pinned, kernel: as realize.plan_hubs takes them."""
    p = Plan()
    if new.name != old.name:
        p.refusal = (
            f"the lab's name changed ({old.name} -> {new.name}): a lab of another name is another lab; "
            "stop this one and run the file"
        )
    before, after = _Side(old, pinned, kernel), _Side(new, pinned, kernel)
    p.hubs = after.plan
    said = p.changes
    for node in old.nodes.values():
        if node.id not in new.nodes:
            said.append(f"- {node.kind} {node.id}")
        elif new.nodes[node.id].kind != node.kind:
            said.append(f"~ {node.id}: {node.kind} -> {new.nodes[node.id].kind}")
        elif new.nodes[node.id].attrs != node.attrs:
            said.append(f"~ {node.id}: {_attr_changes(node, new.nodes[node.id])}")
    said.extend(f"+ {node.kind} {node.id}" for node in new.nodes.values() if node.id not in old.nodes)
    old_links = {frozenset(link) for link in old.links}
    new_links = {frozenset(link) for link in new.links}
    said.extend(f"- link {a} - {b}" for a, b in old.links if frozenset((a, b)) not in new_links)
    said.extend(f"+ link {a} - {b}" for a, b in new.links if frozenset((a, b)) not in old_links)
    for way in sorted(set(old.impair) | set(new.impair)):
        was, now = old.impair.get(way), new.impair.get(way)
        if was != now:
            said.append(f"~ impair {way[0]} -> {way[1]}: {_value(was or 'none')} -> {_value(now or 'none')}")
            if frozenset(way) in new_links:
                p.impair[way] = now
    if old.scenarios != new.scenarios:
        # Nothing in the lab changes: the worker plays them as the file now has them.
        names = sorted(set(_names(old.scenarios)) | set(_names(new.scenarios)))
        said.append(f"~ scenarios: {', '.join(names) or 'none'}")
    for name, hub in after.hubs.items():
        was = before.hubs.get(name)
        if was is not None and was.kernel != hub.kernel:
            why = " (on a cycle of hubs and guests: the worker cuts loops)" if hub.ring else ""
            said.append(f"  {name} is forwarded by the {'kernel' if hub.kernel else 'worker'} from now on{why}")
    _port_nodes(p, before, after)
    _machines(p, before, after)
    _kernel_nodes(p, before, after)
    return p


def _names(scenarios: Any) -> list[str]:
    return [str(name) for name in scenarios] if isinstance(scenarios, dict) else []


def _port_nodes(p: Plan, before: _Side, after: _Side) -> None:
    old_ports = {n.id: n for n in before.t.nodes.values() if n.kind in PORT_KINDS}
    new_ports = {n.id: n for n in after.t.nodes.values() if n.kind in PORT_KINDS}
    for name, node in old_ports.items():
        fresh = new_ports.get(name)
        if fresh is None or before.port_recipe(node) != after.port_recipe(fresh):
            p.ports_gone.add(name)
    for name, node in new_ports.items():
        old = old_ports.get(name)
        if old is None or before.port_recipe(old) != after.port_recipe(node):
            p.ports_new.add(name)
        elif node.kind is Kind.TAP and before.bridge_of(name) != after.bridge_of(name):
            p.masters.add(name)
    remade = sorted(p.ports_gone & p.ports_new)
    if remade:
        p.changes.append(f"  made anew (their links drop for a moment): {', '.join(remade)}")


def _machines(p: Plan, before: _Side, after: _Side) -> None:
    def kind(side: _Side, name: str) -> str | None:
        machine = side.machines.get(name)
        if machine is None:
            return None
        return "vm" if machine.is_vm else "namespace"

    for name in set(before.machines) | set(after.machines):
        was, now = kind(before, name), kind(after, name)
        if was == now == "vm":
            if before.vm_recipe(before.machines[name]) != after.vm_recipe(after.machines[name]):
                p.vms_gone.add(name)
                p.vms_new.add(name)
                p.changes.append(f"  VM guest {name} restarts with its new settings")
            continue
        if was == now == "namespace":
            old_guest, new_guest = before.machines[name].guest, after.machines[name].guest
            on_before = old_guest is not None and old_guest.get("forwarding") is True
            on_after = new_guest is not None and new_guest.get("forwarding") is True
            if on_before != on_after:
                p.forwarding[name] = on_after
            continue
        if was == "vm":
            p.vms_gone.add(name)
        elif was == "namespace":
            p.machines_gone.add(name)
        if now == "vm":
            p.vms_new.add(name)
        elif now == "namespace":
            p.machines_new.add(name)


def _kernel_nodes(p: Plan, before: _Side, after: _Side) -> None:
    """Bridges and host NICs: the kernel's own parts in the lab's namespaces."""
    for kind, gone, new in (
        (Kind.BRIDGE, p.bridges_gone, p.bridges_new),
        (Kind.HOST_NIC, p.host_nics_gone, p.host_nics_new),
    ):
        old = {n.id: n for n in before.t.of_kind(kind)}
        now = {n.id: n for n in after.t.of_kind(kind)}
        for name in set(old) | set(now):
            a, b = old.get(name), now.get(name)
            if a is not None and b is not None and _made_of(a.attrs) == _made_of(b.attrs):
                if kind is Kind.HOST_NIC and before.bridge_of(name) != after.bridge_of(name):
                    p.masters.add(name)
                continue
            lent = [n for n in (a, b) if n is not None and "interface" in n.attrs]
            if kind is Kind.HOST_NIC and lent and p.refusal is None:
                p.refusal = (
                    f"{name}: this machine's interface {lent[0].attrs['interface']} is lent to the lab only "
                    "when it starts; restart the lab to change it"
                )
            if a is not None:
                gone.add(name)
            if b is not None:
                new.add(name)
    # A bridge made anew has no ports: its taps and host NICs join it again.
    for bridge in p.bridges_new:
        for peer in after.t.neighbours(bridge):
            kind = after.t.nodes[peer].kind
            if (kind is Kind.TAP and peer not in p.ports_new) or (
                kind is Kind.HOST_NIC and peer not in p.host_nics_new
            ):
                p.masters.add(peer)


# -- carrying it out -----------------------------------------------------------------------


def carry_out(lab: Lab, new: Topology, p: Plan, on_hub_gone: Callable[[Hub], None]) -> None:
    """Change lab into `new` as planned. ApplyError if a part cannot be made:
    what was done stays done, and the message says so."""
    _take_away(lab, p)
    lab.topology = new
    lab.__dict__.pop("machine_of", None)  # cached for the old topology
    builder = Builder(lab)
    try:
        moved = _make(lab, builder, new, p)
        _rewire(lab, builder, p.hubs, moved | p.ports_new, on_hub_gone)
        _impairments(lab, new, p, moved)
    except (RealizeError, ImpairError) as exc:
        raise ApplyError(f"{exc}; the lab runs the change up to there: restart it to build the file whole") from None
    except (OSError, NetlinkError) as exc:
        raise ApplyError(
            f"changing the lab failed: {type(exc).__name__}: {exc}; restart it to build the file whole"
        ) from None
    finally:
        builder.close()
        lab.generation += 1
        lab.on_record()


def _close_port(lab: Lab, port: Port) -> None:
    if port.hub is not None:
        port.hub.detach(port)
    if isinstance(port, (TapPort, VethPort)):
        lab.loop.remove(port.fd)
    close = getattr(port, "close", None)
    if close is not None:
        close()
    if isinstance(port, VethPort):
        # Now, not with its namespace: a port made anew takes the guest's interface name.
        with netns.iproute(lab.host_ns) as host, contextlib.suppress(NetlinkError):
            host.link("del", index=port.index)


def _remove_namespace(lab: Lab, ns: str) -> None:
    if ns in lab.namespaces:
        with contextlib.suppress(FileNotFoundError):
            netns.remove(ns)
        lab.namespaces.remove(ns)


def _take_away(lab: Lab, p: Plan) -> None:
    """What goes, while lab.topology is still the old one."""
    for name in sorted(p.ports_gone):
        port = lab.ports.pop(name, None)
        if port is not None:
            _close_port(lab, port)
    for name in sorted(p.vms_gone):
        guest = lab.vm_guests.pop(name, None)
        if guest is None:
            continue
        guest.stop()
        vmguests.remove_files(lab.runtime_dir, name)
        with contextlib.suppress(ValueError):
            lab.vms.remove(guest.record)
        lab.log("info", f"{name}: VM stopped")
    for name in sorted(p.machines_gone):
        _remove_namespace(lab, lab.namespace_of(name))
    with netns.iproute(lab.host_ns) as host:
        # A host NIC's veth is deleted here, at once: a namespace's own
        # removal ends its links later, when the kernel gets to it, and a host
        # NIC made anew takes the same name now.
        for name in sorted(p.host_nics_gone | p.bridges_gone):
            found = host.link_lookup(ifname=name)
            if found:
                host.link("del", index=found[0])
    for name in sorted(p.host_nics_gone):
        _remove_namespace(lab, lab.namespace_of(name))
    lab.on_record()


def _make(lab: Lab, builder: Builder, new: Topology, p: Plan) -> set[str]:
    """What comes; returns the kept ports that move to another hub."""
    host = builder.iproute(lab.host_ns)
    for node in new.of_kind(Kind.BRIDGE):
        if node.id in p.bridges_new:
            builder.bridge(host, node)
    for node in new.of_kind(Kind.HOST_NIC):
        if node.id in p.host_nics_new:
            builder.host_nic(host, node)
    for name in sorted(p.masters):
        bridge = builder.peers(name, Kind.BRIDGE)
        host.link("set", index=link_index(host, name), master=link_index(host, bridge[0]) if bridge else 0)
    machines = guests.machines(new)
    for machine in machines:
        if machine.id in p.machines_new and machine.guest is not None:
            builder.iproute(lab.namespace_of(machine.id))
    builder.vms([m for m in machines if m.id in p.vms_new], wait=False)
    builder.vm_nics = {nic for m in machines if m.is_vm for nic in m.nics}
    planned = {member: hub for hub in p.hubs for member in hub.members}
    for node in new.nodes.values():
        if node.id in p.ports_new:
            builder.port(host, node, planned[node.id])
    for machine in machines:
        if machine.is_vm:
            continue
        if machine.id in p.forwarding and not p.forwarding[machine.id]:
            for key in sysctl.FORWARDING:
                sysctl.write(lab.namespace_of(machine.id), key, "0")
        elif machine.id in p.forwarding or (
            machine.id in p.machines_new and machine.guest is not None and machine.guest.get("forwarding") is True
        ):
            builder.forwarding(machine)
        for nic in machine.nics:
            if nic in p.ports_new:
                builder.routes(machine, nic)
    return {
        name
        for name, port in lab.ports.items()
        if name not in p.ports_new and (port.hub is None or port.hub.name != planned[name].name)
    }


def _rewire(
    lab: Lab, builder: Builder, plan: list[PlannedHub], fresh: set[str], on_hub_gone: Callable[[Hub], None]
) -> None:
    """Hubs as the new topology plans them: kept hubs keep their ports and
    counters; a moved port leaves its old link's state behind."""
    existing = {hub.name: hub for hub in lab.all_hubs}
    counted: dict[str, tuple[int, int, list[int], Conversations]] = {}
    for planned in plan:  # a hub changing sides is another hub: its ports were made anew
        if planned.name in existing and isinstance(existing[planned.name], KernelHub) != planned.kernel:
            old = existing.pop(planned.name)
            if isinstance(old, KernelHub):
                old.refresh()
            old.gather_conversations(time.time())
            counted[planned.name] = old.frames, old.bytes, list(old.protocols), old.conversations  # the pane counts on
            _hub_gone(old, on_hub_gone)
    hubs, pairs = [], []
    for planned in plan:
        hub = existing.pop(planned.name, None)
        if hub is None:
            hub = builder.hub(planned)
            if planned.name in counted:
                hub.frames, hub.bytes, hub.protocols[:], hub.conversations = counted[planned.name]
        hub.vlan = planned.vlan
        (hubs if planned.node else pairs).append(hub)
        for member in planned.members:
            port = lab.ports[member]
            if port.hub is hub:
                continue
            if port.hub is not None and (port.down_in or port.down_out):
                links.carrier(lab, port, True)  # the pulled cable was the old link's
            port.egress = port.ingress = None
            port.egress_spec = port.ingress_spec = NONE
            hub.attach(port)
            if member in fresh and isinstance(port, TapPort) and port.fd not in lab.loop.handlers:
                listen(lab, port)
    for gone in existing.values():
        _hub_gone(gone, on_hub_gone)
    lab.hubs[:], lab.pairs[:] = hubs, pairs


def _hub_gone(hub: Hub, on_hub_gone: Callable[[Hub], None]) -> None:
    for port in list(hub.ports):
        hub.detach(port)
    on_hub_gone(hub)
    if isinstance(hub, KernelHub):
        hub.close()


def _impairments(lab: Lab, new: Topology, p: Plan, moved: set[str]) -> None:
    touched = moved | p.ports_new
    ways = dict(p.impair)
    for way, text in new.impair.items():
        if way[0] in touched or way[1] in touched:
            ways[way] = text
    for (a, b), text in ways.items():
        spec = Impairment.parse(text) if text else NONE
        set_impairment(lab, a, b, spec)


def to_worker(lab: Lab, name: str) -> None:
    """Hub `name`, forwarded by the kernel, is the worker's from now on (an
    impairment needs it): its guest NICs are made anew as taps, and take
    back what the guests had on them (lab/nicstate.py); a capture running on
    it goes on. Pinned for the lab's life."""
    old = next(h for h in lab.hubs if h.name == name)
    if isinstance(old, KernelHub):
        old.refresh()
    capture, old.capture = old.capture, None
    ports = {p.name: (p, p.down_in, p.down_out) for p in old.ports}  # leaving, a port's cable is put back
    lab.pinned.add(name)
    p = Plan(hubs=lab.plan())
    members = next(h.members for h in p.hubs if h.name == name)
    p.ports_gone.update(members)
    p.ports_new.update(members)
    where = {nic: (lab.namespace_of(nic), lab.ifname_of(nic)) for nic in members}
    saved = {nic: nicstate.save(*where[nic]) for nic in members}
    carry_out(lab, lab.topology, p, lambda hub: None)
    for nic, state in saved.items():
        for problem in nicstate.restore(*where[nic], state) if state is not None else ():
            lab.log("warning", f"{nic}: made anew, could not take back {problem}")
    new = next(h for h in lab.hubs if h.name == name)
    new.capture = capture
    # The ports count on from where they were (the hub's totals did: _rewire), and pulled cables stay pulled.
    for port in new.ports:
        if port.name not in ports:
            continue
        was, down_in, down_out = ports[port.name]
        _carry_counters(was, port)
        if down_in or down_out:
            new.set_down(port, down_in, down_out)
            if down_in and down_out:
                links.carrier(lab, port, False)


CARRIED = (
    "rx_frames",
    "rx_bytes",
    "drop_full",
    "drop_gone",
    "drop_oversized",
    "drop_mtu",
    "drop_bytes",
    "drop_malformed",
    "drop_lost",
    "drop_loop_in",
    "drop_guest_queue",
    "drop_link_in",
    "drop_impair_loss",
    "drop_impair_queue",
    "impair_tx",
    "impair_tx_bytes",
)


def _carry_counters(was: Port, port: Port) -> None:
    """What `was` counted, into `port`: its stand-in on the same hub's new side."""
    for name in CARRIED:
        setattr(port, name, getattr(port, name) + getattr(was, name))
    port.drop_link_out += was.drop_link_out  # closed spells: `was` has left its hub
    port.drop_link_out_bytes += was.drop_link_out_bytes
    port.drop_loop_out += was.drop_loop_out
    port.drop_loop_out_bytes += was.drop_loop_out_bytes
    # Sent so far: what `was` had sent when it left (Hub.attach's rule).
    port.base_frames = port.base_bytes = 0
    port.base_frames, port.base_bytes = port.tx_frames - was.kept_frames, port.tx_bytes - was.kept_bytes
