"""Real interfaces of this machine lent to a lab: a host NIC with
`interface: X`, run with --allow-host.

Lending moves X into the lab's host namespace under the host NIC's name,
where it becomes a port of the lab's bridge. A move strips an interface of
its addresses and routes, so what X had is recorded first (in the state
file, before the move) and put back when the lab stops: by the worker, by
its watchdog, or by the next run after a crash. A namespace being deleted
would hand a physical NIC back bare and destroy a virtual one; giving it
back first avoids both."""

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


def _find(ipr: IPRoute, names: tuple[str, ...], mac: str | None, any_name: bool = False) -> int | None:
    """The index of the first link with one of these names (and this MAC, if
    known); with any_name, else of a link with this MAC."""
    for name in names:
        index = _lookup(ipr, name)
        if index is not None and (mac is None or ipr.get_links(index)[0].get_attr("IFLA_ADDRESS") == mac):
            return index
    if any_name and mac is not None:  # under another name (a stand-in, or one the kernel gave it)
        return next((link["index"] for link in ipr.get_links() if link.get_attr("IFLA_ADDRESS") == mac), None)
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
            "mac": link.get_attr("IFLA_ADDRESS"),  # to know it again, whatever its name by then
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


def give_back(record: dict[str, Any], lab_ns: str) -> list[str]:
    """Return a lent interface to this machine with its name, addresses, routes
    and state. Returns what could not be restored (empty when all was)."""
    node, ifname = record["node"], record["ifname"]
    if lab_ns in netns.existing():
        with netns.iproute(lab_ns) as lab:
            index = _find(lab, (node, ifname), record.get("mac"))
            if index is not None:
                lab.link("set", index=index, state="down")
                with contextlib.suppress(NetlinkError):
                    lab.link("set", index=index, master=0)
                # Home under its own name if that is free there, else under the
                # lab's, else a stand-in. (Renamed before the move: a move that
                # renames fails when the name is taken, yet moves the link.)
                for name in (ifname, node, f"qnet{os.getpid() & 0xFFFF:04x}back"):
                    with contextlib.suppress(NetlinkError):
                        lab.link("set", index=index, ifname=name)
                    try:
                        lab.link("set", index=index, net_ns_fd=HOME)
                        break
                    except NetlinkError as exc:
                        if exc.code != errno.EEXIST:
                            raise
    problems = []
    with IPRoute() as ipr:
        # Back under either name (a namespace deleted under it returns a NIC
        # as the lab named it); the MAC tells it from a stranger that took the name.
        index = _find(ipr, (ifname, node), record.get("mac"), any_name=True)
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
