"""Real interfaces of this machine lent to a lab: a host NIC with
`interface: X`, run with --allow-host.

Lending moves X into the lab's host namespace under the host NIC's name,
where it becomes a port of the lab's bridge. A move strips an interface of
its addresses and routes, so what X had is recorded first (in the state
file, before the move) and put back when the lab stops: by the worker, by
its watchdog, or by the next run after a crash. A namespace being deleted
would hand a physical NIC back bare and destroy a virtual one; giving it
back first avoids both.

X is known again by its ifindex together with its MAC (and its kind and
burned-in MAC), all recorded: a MAC alone is no identity (a VLAN
sub-interface shares its parent's, anyone may set any), nor is a name. What
is not found that way is gone, and nothing else is touched in its place."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import netns

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_PERMANENT = 0x80
RT_TABLE_LOCAL = 255
RT_SCOPE_LINK = 253
# Routes the kernel or a router advertisement makes again by itself.
REMADE_PROTOCOLS = {1, 2, 9}  # redirect, kernel, ra
HOME = "/proc/self/ns/net"  # the namespace the lab was started from: "this machine"


class LendError(Exception):
    """An interface cannot be lent; the message names it and says why."""


def _lookup(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _identity(link: Any) -> dict[str, Any]:
    """What tells a link from others beside its ifindex; a record keeps it."""
    return {
        "mac": link.get_attr("IFLA_ADDRESS"),
        "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),  # None for a physical NIC
        "perm_mac": link.get_attr("IFLA_PERM_ADDRESS"),  # a physical NIC's burned-in MAC
    }


def _is_it(ipr: IPRoute, index: int, record: dict[str, Any]) -> bool:
    """Link `index` is the one the record describes (all it recorded of it match)."""
    if not isinstance(record.get("mac"), str):
        return False
    try:
        link = ipr.get_links(index)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise
    return all(record[key] == value for key, value in _identity(link).items() if key in record)


def _by_index(ipr: IPRoute, indexes: tuple[Any, ...], record: dict[str, Any]) -> int | None:
    """The first of these ifindexes whose link is the recorded one."""
    for index in indexes:
        if isinstance(index, int) and not isinstance(index, bool) and _is_it(ipr, index, record):
            return index
    return None


def _by_name(ipr: IPRoute, names: tuple[str, ...], record: dict[str, Any]) -> int | None:
    """The first link with one of these names that is the recorded one."""
    for name in names:
        index = _lookup(ipr, name)
        if index is not None and _is_it(ipr, index, record):
            return index
    return None


def survey(node: str, ifname: str) -> dict[str, Any]:
    """What interface `ifname` of this machine has now, to put back later.
    Refuses what cannot be lent safely."""
    with IPRoute() as ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            raise LendError(f"{node}: this machine has no interface {ifname}")
        link = ipr.get_links(index)[0]
        if link["flags"] & IFF_LOOPBACK:
            raise LendError(f"{node}: {ifname} is the loopback interface; it cannot be lent to a lab")
        master = link.get_attr("IFLA_MASTER")
        if master:
            owner = ipr.get_links(master)[0].get_attr("IFLA_IFNAME")
            raise LendError(f"{node}: {ifname} is a port of {owner} on this machine; take it out of {owner} first")
        addresses = []
        for a in ipr.get_addr(index=index):
            flags = a.get_attr("IFA_FLAGS") or a["flags"]
            if a["family"] == socket.AF_INET6 and (a["scope"] == RT_SCOPE_LINK or not flags & IFA_F_PERMANENT):
                continue  # link-local and autoconfigured addresses come back by themselves
            addresses.append(
                {
                    "address": a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"),
                    "prefixlen": a["prefixlen"],
                    "broadcast": a.get_attr("IFA_BROADCAST"),
                }
            )
        routes = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in ipr.route("dump", family=family):
                table = r.get_attr("RTA_TABLE") or r["table"]
                if r.get_attr("RTA_OIF") != index or table == RT_TABLE_LOCAL or r["proto"] in REMADE_PROTOCOLS:
                    continue
                routes.append(
                    {
                        "family": family,
                        "dst": r.get_attr("RTA_DST"),
                        "dst_len": r["dst_len"],
                        "gateway": r.get_attr("RTA_GATEWAY"),
                        "priority": r.get_attr("RTA_PRIORITY"),
                        "prefsrc": r.get_attr("RTA_PREFSRC"),
                        "table": table,
                        "proto": r["proto"],
                        "scope": r["scope"],
                        "type": r["type"],
                    }
                )
        return {
            "node": node,
            "ifname": ifname,
            # To know it again, whatever its name by then: the ifindex (at home,
            # and in the lab once lent: see lent_index) with its identity.
            "home_index": index,
            **_identity(link),
            "up": bool(link["flags"] & IFF_UP),
            "addresses": addresses,
            "routes": routes,
        }


def lend(record: dict[str, Any], lab_ns: str) -> None:
    """Move the interface into lab_ns, renamed to its host NIC's name."""
    with IPRoute() as ipr:
        index = _lookup(ipr, record["ifname"])
        if index is None:
            raise LendError(f"{record['node']}: interface {record['ifname']} vanished")
        try:
            ipr.link("set", index=index, net_ns_fd=lab_ns, ifname=record["node"])
        except NetlinkError as exc:
            why = "it cannot leave this namespace" if exc.code == errno.EINVAL else os.strerror(exc.code)
            raise LendError(f"{record['node']}: cannot lend {record['ifname']} to the lab: {why}") from None


def lent_index(lab: IPRoute, record: dict[str, Any]) -> int:
    """The ifindex the lent interface has in the lab's namespace (netlink
    socket `lab`), just after lend(): to be recorded, to find it by at stop."""
    index = _by_name(lab, (record["node"],), record)
    if index is None:
        raise LendError(f"{record['node']}: {record['ifname']} did not arrive in the lab")
    return index


def _send_home(lab: IPRoute, index: int, record: dict[str, Any]) -> str:
    """Move link `index` of the lab's namespace home; returns the name it went under."""
    node, ifname = record["node"], record["ifname"]
    lab.link("set", index=index, state="down")
    with contextlib.suppress(NetlinkError):
        lab.link("set", index=index, master=0)
    # Home under its own name if that is free there, else under the lab's,
    # else a stand-in. (Renamed before the move: a move that renames fails
    # when the name is taken, yet moves the link.)
    for name in (ifname, node, f"qnet{os.getpid() & 0xFFFF:04x}back"):
        with contextlib.suppress(NetlinkError):
            lab.link("set", index=index, ifname=name)
        try:
            lab.link("set", index=index, net_ns_fd=HOME)
            return name
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
    raise LendError(f"{node}: cannot bring {ifname} home: every name it could have is taken there")


def _in_lab(lab: IPRoute, record: dict[str, Any]) -> int | None:
    """The lent link in the lab's namespace: by its recorded ifindex there,
    or, if a kill came before that was recorded, by its name there (the
    lab's namespace holds nothing but the lab's links); the MAC always."""
    if "lab_index" in record:
        return _by_index(lab, (record["lab_index"],), record)
    return _by_name(lab, (record["node"], record["ifname"]), record)


def give_back(record: dict[str, Any], lab_ns: str) -> list[str]:
    """Return a lent interface to this machine with its name, addresses, routes
    and state. Returns what could not be restored (empty when all was)."""
    ifname = record["ifname"]
    index = None
    if lab_ns in netns.existing():
        with netns.iproute(lab_ns) as lab:
            found = _in_lab(lab, record)
            name = _send_home(lab, found, record) if found is not None else None
        if name is not None:
            with IPRoute() as ipr:
                index = _by_name(ipr, (name,), record)
    problems = []
    with IPRoute() as ipr:
        if index is None:
            # Home already: given back before, or its namespace was deleted
            # under it (a physical NIC returns by itself, keeping its ifindex
            # when that is free). Never a link that merely shares its MAC.
            index = _by_index(ipr, (record.get("lab_index"), record.get("home_index")), record)
        if index is None:
            return [f"{ifname} is gone"]
        if ipr.get_links(index)[0].get_attr("IFLA_IFNAME") != ifname:
            try:
                ipr.link("set", index=index, state="down")
                ipr.link("set", index=index, ifname=ifname)
            except NetlinkError as exc:
                current = ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
                problems.append(f"cannot rename {current} back to {ifname}: {os.strerror(exc.code)}")
        for a in record.get("addresses", []):
            extra = {"broadcast": a["broadcast"]} if a.get("broadcast") else {}
            try:
                ipr.addr("add", index=index, address=a["address"], prefixlen=a["prefixlen"], **extra)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    problems.append(f"address {a['address']}/{a['prefixlen']}: {os.strerror(exc.code)}")
        if record.get("up"):
            ipr.link("set", index=index, state="up")
        for r in record.get("routes", []):
            spec = {k: v for k, v in r.items() if v is not None}
            try:
                ipr.route("add", oif=index, **spec)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    where = f"{r.get('dst') or 'default'}/{r['dst_len']}"
                    problems.append(f"route {where}: {os.strerror(exc.code)}")
    return problems


def give_back_safely(record: Any, lab_ns: str) -> list[str]:
    """give_back() for cleanup paths, which must go on to delete the lab
    whatever happens here; a record from a state file is checked first."""
    if not (isinstance(record, dict) and isinstance(record.get("node"), str) and isinstance(record.get("ifname"), str)):
        return ["the state file's record of it is damaged"]
    try:
        return give_back(record, lab_ns)
    except Exception as exc:  # netlink errors come in many types
        return [f"{type(exc).__name__}: {exc}"]
