"""A topology as a containerlab topology file (containerlab.dev/manual/topo-def-file).

Guests (machines) and stand-in host NICs become `linux` nodes, hubs and
bridges `bridge` nodes, links veth pairs between them; addresses, MACs and
routes are `exec:` commands run in each container once it is up. What
containerlab has no word for is left out, one line per element."""

from __future__ import annotations

import json
import re

from qnet_tui.model.exported import Export
from qnet_tui.model.guests import machines
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology
from qnet_tui.model.values import IFNAME_MAX  # a bridge's ports are interfaces of the host

IMAGE = "alpine:latest"
# What reads back as the same string unquoted: no ': ' or ' #', no leading or trailing specials.
_PLAIN = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_ ./:=-]*[A-Za-z0-9_./=-])?")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_NOT_IFNAME = re.compile(r"[^A-Za-z0-9_.-]")
_GUEST_VM = ("vm", "memory", "cpus", "kernel", "initrd", "append", "disk", "disk_format")


def _scalar(text: str) -> str:
    """A YAML scalar: plain when it reads back as the same string, else double-quoted (JSON's are YAML's)."""
    if _PLAIN.fullmatch(text) and ": " not in text and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


class _Ports:
    """Interface names of the bridges' ports: BRIDGE-PEER, unique, at most 15 characters. They are
    the host's interfaces: a host NIC's bare name (eth0) would be the host's own uplink."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def name(self, bridge: str, peer: str) -> str:
        base = _NOT_IFNAME.sub("-", f"{bridge}-{peer}")[:IFNAME_MAX]
        name, n = base, 1
        while name in self.taken:
            n += 1
            tail = f"-{n}"
            name = base[: IFNAME_MAX - len(tail)] + tail
        self.taken.add(name)
        return name


LABEL_PREFIX = "qnet-tui."  # node labels import reads back: NIC ids, a hub's VLAN, hostname
# A forwarding guest's exec lines are sysctl -w of these; import reads them back as forwarding: true.
FORWARDING_SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")


def _exec_lines(nic: Node, ifname: str) -> list[str]:
    out = []
    if isinstance(mac := nic.get("mac"), str):
        out.append(f"ip link set {ifname} address {mac}")
    if isinstance(ipv4 := nic.get("ipv4"), str):
        out.append(f"ip addr add {ipv4} dev {ifname}")
    if isinstance(ipv6 := nic.get("ipv6"), str):
        out.append(f"ip -6 addr add {ipv6} dev {ifname}")
    if isinstance(gw := nic.get("gateway"), str):
        out.append(f"ip route add default via {gw}")
    if isinstance(gw6 := nic.get("gateway6"), str):
        out.append(f"ip -6 route add default via {gw6}")
    return out


def _left_out_of_node(node: Node, left: list[str]) -> None:
    """The node's settings containerlab cannot say (the node itself is exported)."""
    if node.kind is Kind.BRIDGE:
        said = [k for k in ("stp", "vlan_filtering", "ipv4", "ipv6") if node.get(k)]
        if said:
            left.append(
                f"{node.id}: {', '.join(said)} left out (a bridge node's settings are the host's: set them there)"
            )
    elif node.kind is Kind.GUEST:
        vm = [k for k in _GUEST_VM if k in node.attrs]
        if node.get("vm") is True:
            left.append(f"{node.id}: a VM guest, exported as a container; {', '.join(vm)} left out")
        elif vm:
            left.append(f"{node.id}: {', '.join(vm)} left out (a container is no VM)")


def _node_block(name: str, kind: str, execs: list[str], labels: dict[str, str] | None = None) -> list[str]:
    lines = [f"    {_scalar(name)}:", f"      kind: {kind}"]
    if kind == "linux":
        lines.append(f"      image: {IMAGE}")
    if labels:
        # What containerlab has no field for but `qnet-tui import` reads back (LABEL_PREFIX).
        lines.append("      labels:")
        lines += [f"        {_scalar(k)}: {_scalar(v)}" for k, v in labels.items()]
    if execs:
        lines.append("      exec:")
        lines += [f"        - {_scalar(e)}" for e in execs]
    return lines


def to_clab(t: Topology, source: str = "") -> Export:
    left: list[str] = []
    blocks: list[list[str]] = []
    # A linux end of a link: the guest NIC or host NIC id -> (container, interface).
    linux_end: dict[str, tuple[str, str]] = {}
    bridges: set[str] = set()
    # A machine is exported where its first node is: a guest, or a lone guest NIC.
    machine = {m.id: m for m in machines(t)}

    for node in t.nodes.values():
        kind = node.kind
        if kind in (Kind.HUB, Kind.BRIDGE):
            bridges.add(node.id)
            vlan = node.get("vlan") if kind is Kind.HUB else None
            labels = {f"{LABEL_PREFIX}vlan": str(vlan)} if isinstance(vlan, int) else {f"{LABEL_PREFIX}kind": "bridge"}
            blocks.append(_node_block(node.id, "bridge", [], labels))
            _left_out_of_node(node, left)
        elif kind is Kind.HOST_NIC:
            if isinstance(node.get("interface"), str):
                left.append(
                    f"{node.id}: no containerlab equivalent (lends this machine's {node.get('interface')} "
                    "to the lab); left out, with its link"
                )
                continue
            # The stand-in LAN host behind the uplink: a container of one interface.
            linux_end[node.id] = (node.id, "eth0")
            blocks.append(_node_block(node.id, "linux", _exec_lines(node, "eth0")))
        elif node.id in machine:
            m = machine[node.id]
            execs = []
            for nic in m.nics:
                linux_end[nic] = (m.id, m.ifname(nic))
                execs += _exec_lines(t.nodes[nic], m.ifname(nic))
            if m.guest is not None and m.guest.get("forwarding") is True:
                execs += [f"sysctl -w {setting}" for setting in FORWARDING_SYSCTLS]
            # The NICs' ids, and whether it is a guest node or a lone guest NIC, for `import` to read back.
            labels = {f"{LABEL_PREFIX}guest": "true" if m.guest is not None else "false"}
            labels |= {f"{LABEL_PREFIX}{m.ifname(nic)}": nic for nic in m.nics}
            # A NIC model is QEMU's: a container's veth has none, but the file keeps it.
            labels |= {
                f"{LABEL_PREFIX}model.{m.ifname(nic)}": t.nodes[nic].attrs["model"]
                for nic in m.nics
                if isinstance(t.nodes[nic].attrs.get("model"), str)
            }
            if m.guest is not None and isinstance(m.guest.get("hostname"), str):
                labels[f"{LABEL_PREFIX}hostname"] = m.guest.get("hostname")
            blocks.append(_node_block(m.id, "linux", execs, labels))
            if m.guest is not None:
                _left_out_of_node(m.guest, left)
        elif kind is Kind.GUEST_NIC and node.is_qemu_vm:
            left.append(
                f"{node.id}: no containerlab equivalent (a real QEMU VM plugs in here); left out, with its link"
            )
        elif kind is Kind.TAP:
            left.append(f"{node.id}: no containerlab equivalent (a TAP device); left out, with its links")
        elif kind is Kind.SOCKET:
            left.append(f"{node.id}: no containerlab equivalent (a QEMU socket netdev); left out, with its link")

    ports = _Ports()
    links: list[str] = []
    for a, b in t.links:
        if a in bridges and b in linux_end:
            a, b = b, a
        if a in linux_end and b in bridges:
            node, ifname = linux_end[a]
            links.append(
                f"    - endpoints: [{json.dumps(f'{node}:{ifname}')}, {json.dumps(f'{b}:{ports.name(b, a)}')}]"
            )
    for (a, b), spec in t.impair.items():
        left.append(f"link {a} -> {b}: impairment {spec} left out (containerlab's 'tools netem set' can add it)")
    if t.scenarios is not None:
        left.append("scenarios: no containerlab equivalent; left out")
    if t.hosts is not None:
        left.append("hosts: no containerlab equivalent (a lab across machines); every node exported on one")

    header = [
        f"# containerlab topology exported by qnet-tui{f' from {source}' if source else ''}.",
        f"# Every linux node runs {IMAGE}: put the image your guests need there.",
        "# Each bridge node (a hub or a bridge of the topology) is a Linux bridge that must exist on the",
        "# host before 'containerlab deploy': ip link add NAME type bridge && ip link set NAME up.",
        "# A bridge's ports are interfaces of the host, named BRIDGE-PEER (at most 15 characters).",
    ]
    body = [f"name: {_scalar(str(t.name))}", "topology:", "  nodes:" if blocks else "  nodes: {}"]
    for block in blocks:
        body += block
    body += ["  links:", *links] if links else ["  links: []"]
    return Export("\n".join(header + body) + "\n", left, len(blocks))
