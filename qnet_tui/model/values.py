"""Checks of single attribute values. Each returns None when the value is good,
or a short phrase saying what is wrong with it; callers add the where."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel refuses longer interface names
# Stricter than the kernel's dev_valid_name(): ids also become namespace names,
# file names and socket paths, so only characters safe in all of those pass.
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Names the kernel or its sysctl tree already uses inside every namespace.
RESERVED_IFNAMES = frozenset({"lo", "all", "default"})
LAB_NAME_MAX = 32
_LAB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
UNIX_PATH_MAX = 107  # sizeof(sun_path) - 1


def describe(value: Any) -> str:
    """A short, bounded rendering of any loaded value, safe for messages even
    when the value is a huge or self-referencing structure."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def ifname_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if len(name) > IFNAME_MAX:
        return f"is {len(name)} characters long; Linux interface names hold at most {IFNAME_MAX}"
    for bad, what in (("/", "'/'"), (":", "':'")):
        if bad in name:
            return f"contains {what}, which Linux interface names cannot hold"
    if any(c.isspace() for c in name):
        return "contains white space, which Linux interface names cannot hold"
    if not _IFNAME_RE.fullmatch(name):
        return "must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
    if name in RESERVED_IFNAMES:
        return f"is reserved: every network namespace already has '{name}'"
    return None


def lab_name_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if len(name) > LAB_NAME_MAX:
        return f"is {len(name)} characters long; at most {LAB_NAME_MAX}"
    if not _LAB_NAME_RE.fullmatch(name):
        return "must start with a letter or digit and hold only letters, digits, '_' and '-'"
    return None


def mac_problem(mac: str) -> str | None:
    if not _MAC_RE.fullmatch(mac):
        return "is not a MAC address of the form 52:54:00:12:34:56"
    first = int(mac[:2], 16)
    if first & 1:
        return "is a multicast address; a NIC needs a unicast MAC (even first octet)"
    if int(mac.replace(":", ""), 16) == 0:
        return "is all zeros"
    return None


def normalize_mac(mac: str) -> str:
    return mac.lower()


def interface_address(value: str, version: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """Parse 'ADDRESS/PREFIX'; raises ValueError with a readable reason."""
    if "/" not in value:
        raise ValueError(
            "needs a prefix length, as in 10.0.0.2/24" if version == 4 else "needs a prefix length, as in fd00::2/64"
        )
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"is not an IPv{version} address with prefix length") from None
    if iface.version != version:
        raise ValueError(f"is an IPv{iface.version} address where IPv{version} is expected")
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        raise ValueError("is not a unicast address")
    net = iface.network
    if version == 4 and net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(f"is the {'network' if iface.ip == net.network_address else 'broadcast'} address of {net}")
    return iface


def ipv4_problem(value: str) -> str | None:
    try:
        interface_address(value, 4)
    except ValueError as exc:
        return str(exc)
    return None


def ipv6_problem(value: str) -> str | None:
    try:
        interface_address(value, 6)
    except ValueError as exc:
        return str(exc)
    return None


def split_host_port(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port); raises ValueError."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("is not of the form [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError("needs a port, as in 127.0.0.1:5555")
    if not host:
        raise ValueError("needs a host before the port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"has port {port_text!r}; a port is a number from 1 to 65535")
    if not re.fullmatch(r"[A-Za-z0-9_.:%-]+", host):
        raise ValueError(f"has host {host!r}, which is neither an IP address nor a host name")
    return host, int(port_text)


def inet_problem(value: str) -> str | None:
    try:
        split_host_port(value)
    except ValueError as exc:
        return str(exc)
    return None


def is_multicast(value: str) -> bool:
    try:
        host, _ = split_host_port(value)
        return ipaddress.ip_address(host).is_multicast
    except ValueError:
        return False


def unix_path_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if "\0" in value:
        return "contains a NUL byte"
    if len(value.encode()) > UNIX_PATH_MAX:
        return f"is {len(value.encode())} bytes long; a unix socket path holds at most {UNIX_PATH_MAX}"
    return None


def si(value: float, unit: str) -> str:
    """1234567 -> '1.2 M' + unit: rates and sizes as people read them."""
    for prefix in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.0f} {prefix}{unit}" if not prefix else f"{value:.1f} {prefix}{unit}"
        value /= 1000
    return f"{value:.1f} T{unit}"
