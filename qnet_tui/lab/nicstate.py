"""What a guest's interface holds beyond the file: addresses and routes set
by hand, and the neighbours it knows. Kept across the interface being made
anew by the lab (a hub moving to the worker makes its NICs taps), so that
the guest carries on where it was: no address lost, no ARP storm after."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import netns

RTPROT_KERNEL = 2  # routes the kernel makes for an address: they come back with it
MAIN_TABLE = 254
NUD_PERMANENT = 0x80
NUD_STALE = 0x04
KNOWN = 0x02 | 0x04 | 0x08 | 0x10 | 0x80  # reachable, stale, delay, probe, permanent


@dataclass
class NicState:
    addresses: list[tuple[int, str, int]] = field(default_factory=list)  # family, address, prefix length
    routes: list[tuple[int, str | None, int, str | None]] = field(default_factory=list)  # family, dst, len, gateway
    neighbours: list[tuple[int, str, str, int]] = field(default_factory=list)  # family, address, MAC, state


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def save(ns: str, ifname: str) -> NicState | None:
    """The interface's state now, or None if it is not there."""
    with netns.iproute(ns) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return None
        state = NicState()
        for addr in ipr.get_addr(index=index):
            address = addr.get_attr("IFA_ADDRESS")
            if address and not ipaddress.ip_address(address).is_link_local:  # fe80::: made again by the kernel
                state.addresses.append((addr["family"], address, addr["prefixlen"]))
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ipr.get_routes(family=family, oif=index, table=MAIN_TABLE):
                if route["proto"] == RTPROT_KERNEL or route["type"] != 1:  # unicast routes set by someone
                    continue
                state.routes.append(
                    (family, route.get_attr("RTA_DST"), route["dst_len"], route.get_attr("RTA_GATEWAY"))
                )
        for neigh in ipr.get_neighbours(ifindex=index):
            mac, address = neigh.get_attr("NDA_LLADDR"), neigh.get_attr("NDA_DST")
            if mac and address and neigh["state"] & KNOWN:
                state.neighbours.append((neigh["family"], address, mac, neigh["state"]))
        return state


def restore(ns: str, ifname: str, state: NicState) -> list[str]:
    """Put back onto the interface (made anew, up) what `save` found and it
    lacks; returns what could not be, for the log."""
    problems = []
    with netns.iproute(ns) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return [f"{ifname} is not there"]

        def attempt(what: str, call: Callable[..., object], *args: object, **kwargs: object) -> None:
            try:
                call(*args, **kwargs)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # the file's own, made again already
                    problems.append(f"{what}: {exc}")

        for family, address, prefix in state.addresses:
            extra = {"flags": 0x02} if family == socket.AF_INET6 else {}  # IFA_F_NODAD, as the lab adds them
            attempt(
                f"address {address}/{prefix}", ipr.addr, "add", index=index, address=address, prefixlen=prefix, **extra
            )
        for family, dst, length, gateway in state.routes:
            target = f"{dst}/{length}" if dst else ("0.0.0.0/0" if family == socket.AF_INET else "::/0")
            route = {"gateway": gateway} if gateway else {}
            attempt(f"route {target}", ipr.route, "add", family=family, dst=target, oif=index, **route)
        for family, address, mac, nud in state.neighbours:
            kept = NUD_PERMANENT if nud & NUD_PERMANENT else NUD_STALE  # stale: used at once, checked later
            attempt(
                f"neighbour {address}",
                ipr.neigh,
                "add",
                family=family,
                dst=address,
                lladdr=mac,
                ifindex=index,
                state=kept,
            )
    return problems
