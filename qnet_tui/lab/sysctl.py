"""Kernel settings of one network namespace, written through /proc/sys/net.

Each namespace has its own /proc/sys/net, and which one a process sees is
decided by the network namespace of the thread that opens the file: so the
worker opens it from a thread that has entered the guest's namespace
(netns.inside), and never runs sysctl(8) or ip(8)."""

from __future__ import annotations

from qnet_tui.lab import netns

FORWARDING = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")


def write(ns: str, key: str, value: str) -> None:
    with netns.inside(ns), open(f"/proc/sys/{key}", "w") as f:
        f.write(value)


def read(ns: str, key: str) -> str:
    with netns.inside(ns), open(f"/proc/sys/{key}") as f:
        return f.read().strip()


def forwarding(ns: str) -> None:
    """IPv4 and IPv6 forwarding on, between every interface of ns: a router."""
    for key in FORWARDING:
        write(ns, key, "1")
