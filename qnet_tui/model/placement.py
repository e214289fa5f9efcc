"""Placement: which machine runs each node of a lab spread over several.

    hosts:
      b:
        ssh: root@192.0.2.2          # OpenSSH destination; optional
        address: 192.0.2.2           # underlay address the others send VXLAN to; optional
        vxlan_port: 4789             # UDP port this machine receives VXLAN on
        command: /opt/q/bin/qnet-tui # the qnet-tui to run there over ssh

A node's `host:` names its machine; a node without one runs on the machine
where the lab is started (THIS). A bridge and what it connects, a guest and
its NICs, a guest NIC and the tap or socket it peers with cannot be apart, so
such a group takes the host one of its nodes names. Hubs are everywhere they
have a port: a hub with ports on several machines is stitched between them
(over VXLAN, by the worker). Pure: the worker asks it for its share."""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qnet_tui.model import guests, values
from qnet_tui.model.kinds import HOST_FIELD, Kind
from qnet_tui.model.topology import Link, Node, Topology, components

THIS = ""  # the controller's machine: nodes without host:
DEFAULT_VXLAN_PORT = 4789  # IANA's VXLAN port (RFC 7348)
DEFAULT_COMMAND = "qnet-tui"
HOST_KEYS = ("ssh", "address", "vxlan_port", "command")
# Which end of a tie says why the two run on one machine: the bridge of a
# tap, the guest of a NIC, the tap or socket a guest NIC peers with.
_ANCHOR_RANK = {Kind.BRIDGE: 0, Kind.GUEST: 1, Kind.TAP: 2, Kind.SOCKET: 3}
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    ssh: str | None
    address: str | None  # as given, or the ssh destination's host part; None if neither
    vxlan_port: int = DEFAULT_VXLAN_PORT
    command: str = DEFAULT_COMMAND


@dataclass(frozen=True, slots=True)
class HostProblem:
    """What is wrong in the hosts section, and where: source map keys, best first."""

    message: str
    keys: tuple[tuple[Any, ...], ...]


def where(machine: str) -> str:
    """A machine as messages name it."""
    return "this machine" if machine == THIS else f"host {machine}"


# -- the hosts section -----------------------------------------------------------


def ssh_host(destination: str) -> tuple[str | None, str | None]:
    """The host part of an OpenSSH destination (user@host, host,
    ssh://user@host:port), or (None, what is wrong with it)."""
    if not destination:
        return None, "is empty"
    if any(c.isspace() or not c.isprintable() for c in destination):
        return None, "holds white space or a control character; an ssh destination is one word"
    if destination.startswith("-"):
        return None, "starts with '-', which ssh would read as an option"
    uri = destination.startswith("ssh://")
    rest = destination.removeprefix("ssh://")
    if uri:
        rest = rest.removesuffix("/")
        if "/" in rest:
            return None, "has a path; an ssh destination is ssh://[user@]host[:port]"
    user, at, host = rest.rpartition("@")
    if at and not user:
        return None, "has an empty user before '@'"
    port = ""
    if host.startswith("["):
        host, closed, after = host[1:].partition("]")
        if not closed or (after and not (uri and after.startswith(":"))):
            return None, "has a bracketed address that is not [IPV6] (or ssh://[IPV6]:PORT)"
        port = after[1:]
        if not _is_ip(host, 6):
            return None, f"has {host!r} in brackets, which is not an IPv6 address"
    elif uri and host.count(":") == 1:
        host, _, port = host.partition(":")
    elif ":" in host and (uri or not _is_ip(host, 6)):  # a URI's IPv6 address goes in brackets
        form = "ssh://[user@][IPV6]:port" if uri else "ssh://[user@]host:port"
        return None, f"has host {host!r}; a port goes in the form {form}"
    if uri and port != "" and not (port.isdigit() and 0 < int(port) < 65536):
        return None, f"has port {port!r}; a port is a number from 1 to 65535"
    if not host:
        return None, "names no host"
    if not (_is_ip(host) or _DNS_NAME.fullmatch(host)):
        return None, f"has host {host!r}, which is neither an IP address nor a host name"
    return host, None


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or ip.version == version


def address_problem(value: str) -> str | None:
    if "/" in value:
        return "has a prefix length; give the address alone, as in 192.0.2.2"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return "is not an IPv4 or IPv6 address"
    if ip.is_multicast or ip.is_unspecified:
        return "is not a unicast address"
    return None


def _reach_key(host: Host) -> tuple[str, int] | None:
    """One spelling of where a host receives VXLAN, for finding two alike."""
    if host.address is None:
        return None
    try:
        address = str(ipaddress.ip_address(host.address))
    except ValueError:
        address = host.address.lower().removesuffix(".")
    return address, host.vxlan_port


def read_hosts(t: Topology) -> tuple[dict[str, Host], list[HostProblem]]:
    """The hosts section's good entries, and a problem for each broken one
    (left out). Two hosts receiving VXLAN at one address and port: the
    later one is broken."""
    raw = t.hosts
    out: dict[str, Host] = {}
    problems: list[HostProblem] = []
    if raw is None:
        return out, problems
    if not isinstance(raw, dict):
        problems.append(
            HostProblem(
                "hosts must be a mapping from a machine's name to how to reach it "
                f"(as in b: {{ssh: root@192.0.2.2}}), not {values.describe(raw)}",
                (("top-value", "hosts"), ("top", "hosts")),
            )
        )
        return out, problems
    reached: dict[tuple[str, int], str] = {}
    for name, body in raw.items():
        host = _read_host(name, body, problems)
        if host is None:
            continue
        key = _reach_key(host)
        first = reached.setdefault(key, name) if key is not None else name
        if first != name:
            port = "" if host.vxlan_port == DEFAULT_VXLAN_PORT else f" and port {host.vxlan_port}"
            problems.append(
                HostProblem(
                    f"host {name}: address {host.address}{port} is already host {first}'s: "
                    "two machines cannot receive VXLAN at one address and port",
                    (("hosts", name, "address"), ("hosts", name, "ssh"), ("hosts-key", name)),
                )
            )
            continue
        out[name] = host
    return out, problems


def _read_host(name: Any, body: Any, problems: list[HostProblem]) -> Host | None:
    at_name = ("hosts-key", name)
    if not isinstance(name, str) or (problem := values.lab_name_problem(name)):
        why = "must be a string" if not isinstance(name, str) else problem
        problems.append(HostProblem(f"host name {values.describe(name)} {why}", (at_name,)))
        return None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        problems.append(
            HostProblem(
                f"host {name}: a mapping with {', '.join(HOST_KEYS)} (as in {name}: {{ssh: root@192.0.2.2}}), "
                f"not {values.describe(body)}",
                (("hosts", name), at_name),
            )
        )
        return None
    broken = False

    def problem(key: Any, text: str, *, at_key: bool = False) -> None:
        nonlocal broken
        broken = True
        first = ("hosts-key", name, key) if at_key else ("hosts", name, key)
        problems.append(HostProblem(f"host {name}: {text}", (first, ("hosts-key", name, key), at_name)))

    for key in body:
        if key not in HOST_KEYS:
            close = difflib.get_close_matches(str(key), HOST_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problem(key, f"unknown key {values.describe(key)}{hint}; a host has {', '.join(HOST_KEYS)}", at_key=True)
    ssh, address = body.get("ssh"), body.get("address")
    port, command = body.get("vxlan_port", DEFAULT_VXLAN_PORT), body.get("command", DEFAULT_COMMAND)
    ssh_part = None
    if "ssh" in body:
        if not isinstance(ssh, str):
            problem("ssh", f"ssh must be an OpenSSH destination such as root@192.0.2.2, not {values.describe(ssh)}")
        else:
            ssh_part, why = ssh_host(ssh)
            if why:
                problem("ssh", f"ssh {values.describe(ssh)} {why}")
    if "address" in body:
        if not isinstance(address, str):
            problem("address", f"address must be an IPv4 or IPv6 address, not {values.describe(address)}")
        elif why := address_problem(address):
            problem("address", f"address {values.describe(address)} {why}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problem("vxlan_port", f"vxlan_port must be a UDP port from 1 to 65535, not {values.describe(port)}")
    if not isinstance(command, str) or not command.strip() or not command.isprintable():
        problem(
            "command",
            f"command must be the qnet-tui to run there, as in /usr/local/bin/qnet-tui, not {values.describe(command)}",
        )
    if "ssh" not in body and "address" not in body:
        problem(None, "give address: (or ssh:), so the other machines can reach it", at_key=True)
    if broken:
        return None
    return Host(name, ssh, address if address is not None else ssh_part, port, command)


def hosts(t: Topology) -> dict[str, Host]:
    """The hosts section's valid entries (broken ones are left out)."""
    return read_hosts(t)[0]


def host_names(t: Topology) -> list[str]:
    """What a node's host: may name: the hosts section's names, right or wrong."""
    return [name for name in t.hosts if isinstance(name, str)] if isinstance(t.hosts, dict) else []


# -- placement -------------------------------------------------------------------


def named_host(node: Node) -> str | None:
    """The host a node's host: names (right or wrong), or None."""
    value = node.attrs.get(HOST_FIELD)
    return value if isinstance(value, str) and node.kind is not Kind.HUB else None


def ties(t: Topology, links: list[Link] | None = None) -> Iterator[tuple[str, str]]:
    """(node, anchor) pairs that must run on one machine: the two ends of
    each link without a hub, and each guest NIC with its guest. The anchor is
    the end that says why: the bridge, the guest, the tap or socket."""
    nodes = t.nodes
    for a, b in t.links if links is None else links:
        na, nb = nodes.get(a), nodes.get(b)
        if na is None or nb is None or a == b or Kind.HUB in (na.kind, nb.kind):
            continue
        if _ANCHOR_RANK.get(na.kind, 9) < _ANCHOR_RANK.get(nb.kind, 9):  # type: ignore[call-overload]
            yield b, a
        else:
            yield a, b
    for nic in t.of_kind(Kind.GUEST_NIC):
        guest = guests.named_guest(nic)
        if guest is not None and guest in nodes and nodes[guest].kind is Kind.GUEST:
            yield nic.id, guest


def machine_of(t: Topology) -> dict[str, str]:
    """Node id -> the host it runs on, or THIS; every node but hubs. A node
    with host: runs there; one without takes the host: of the first node (in
    file order) of its group (nodes tied by ties()), or THIS when none has one."""
    placed = {n.id: h for n in t.nodes.values() if n.kind is not Kind.HUB and (h := named_host(n)) is not None}
    out = {n.id: placed.get(n.id, THIS) for n in t.nodes.values() if n.kind is not Kind.HUB}
    if not placed:
        return out  # the usual file: one machine, no grouping needed
    adj: dict[str, list[str]] = {node_id: [] for node_id in out}
    for a, b in ties(t):
        adj[a].append(b)
        adj[b].append(a)
    rank = {node_id: i for i, node_id in enumerate(t.nodes)}
    for group in components(adj):
        named = [n for n in group if n in placed]
        if not named:
            continue
        host = placed[min(named, key=rank.__getitem__)]
        for n in group:
            if n not in placed:
                out[n] = host
    return out


def hub_machines(t: Topology, machines: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Hub id -> the machines with a port on it. A hub without ports is on
    THIS alone, so that the controller's share still shows it."""
    machines = machine_of(t) if machines is None else machines
    out: dict[str, set[str]] = {hub.id: set() for hub in t.of_kind(Kind.HUB)}
    for a, b in t.links:
        if a in out and b in machines:
            out[a].add(machines[b])
        elif b in out and a in machines:
            out[b].add(machines[a])
    for where_ in out.values():
        if not where_:
            where_.add(THIS)
    return out


def vni(hub: Node) -> int:
    """The VXLAN network identifier that carries a hub between machines: its vni:, else its VLAN."""
    value = hub.attrs.get("vni")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return hub.get("vlan")


def share(t: Topology, machine: str) -> Topology:
    """The part of t that `machine` runs: its nodes, the hubs with a port
    there (forwarding: worker for one with ports elsewhere too: the worker
    stitches it), the links among them and their impairments. No scenarios:
    the controller plays them. Nodes are copies; t is left as it was."""
    machines = machine_of(t)
    hubs = hub_machines(t, machines)
    out = Topology(name=t.name, description=t.description, hosts=copy.deepcopy(t.hosts))
    for node in t.nodes.values():
        where_ = hubs.get(node.id) if node.kind is Kind.HUB else None
        if where_ is not None:
            if machine not in where_:
                continue
        elif machines.get(node.id) != machine:
            continue
        copied = out.add(Node(node.id, node.kind, dict(node.attrs), node.origin))
        if where_ is not None and len(where_) > 1:
            copied.attrs["forwarding"] = "worker"
    kept = out.nodes
    out.links = [(a, b) for a, b in t.links if a in kept and b in kept]
    ways = {way for a, b in out.links for way in ((a, b), (b, a))}
    out.impair = {way: spec for way, spec in t.impair.items() if way in ways}
    return out


def spans(t: Topology, machine: str) -> dict[str, set[str]]:
    """The hubs of `machine`'s share with ports elsewhere too -> those other machines."""
    return {hub: where_ - {machine} for hub, where_ in hub_machines(t).items() if machine in where_ and len(where_) > 1}
