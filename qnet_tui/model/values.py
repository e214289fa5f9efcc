"""Checks of single attribute values. Each returns None when the value is good,
or a short phrase saying what is wrong with it; callers add the where."""

from __future__ import annotations

import ipaddress
import posixpath
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
# Octets without leading zeros: ipaddress refuses those, and says why.
_OCTET = r"(0|[1-9][0-9]{0,2})"
_IPV4_RE = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/([0-9]{{1,2}})")
UNIX_PATH_MAX = 107  # sizeof(sun_path) - 1
# Where root's labs keep their files (protocol.runtime_root()): a relative unix
# path lives in RUNTIME_ROOT/<lab>/, beside the lab's own files below.
RUNTIME_ROOT = "/run/qnet-tui"
LAB_FILES = {"control.sock": "control socket", "state.json": "state file", "lock": "lock file"}


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
    if _IFNAME_RE.fullmatch(name) and len(name) <= IFNAME_MAX and name not in RESERVED_IFNAMES:
        return None  # the usual case, in one regex; the rest says what is wrong
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
    if not mac.strip("0:"):
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


def _plain_ipv4(value: str) -> tuple[int, int] | None:
    """The usual 'A.B.C.D/P' as (address, prefix length), read without the
    ipaddress module (ten times faster: a big file has tens of thousands);
    None for anything else, which interface_address then reads."""
    m = _IPV4_RE.fullmatch(value)
    if m is None:
        return None
    a, b, c, d, prefix = map(int, m.groups())
    if a > 255 or b > 255 or c > 255 or d > 255 or prefix > 32:
        return None
    return a << 24 | b << 16 | c << 8 | d, prefix


def host_address(value: str, version: int) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, str | None]:
    """interface_address's verdict on 'ADDRESS/PREFIX': (the address, None),
    or (None, what is wrong)."""
    plain = _plain_ipv4(value) if version == 4 else None
    if plain is None:
        try:
            return interface_address(value, version).ip, None
        except ValueError as exc:
            return None, str(exc)
    ip, prefix = plain
    if 224 <= ip >> 24 <= 239 or ip == 0:
        return None, "is not a unicast address"
    if prefix < 31:
        mask = 0xFFFFFFFF << (32 - prefix) & 0xFFFFFFFF
        net = ip & mask
        if ip in (net, net | ~mask & 0xFFFFFFFF):
            what = "network" if ip == net else "broadcast"
            return None, f"is the {what} address of {ipaddress.IPv4Network((net, prefix))}"
    return ipaddress.IPv4Address(ip), None


def ipv4_problem(value: str) -> str | None:
    return host_address(value, 4)[1]


def ipv6_problem(value: str) -> str | None:
    return host_address(value, 6)[1]


def _gateway_problem(value: str, version: int) -> str | None:
    if "/" in value:
        return f"is a router's address, without a prefix length, as in {'10.0.0.1' if version == 4 else 'fd00::1'}"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return f"is not an IPv{version} address"
    if ip.version != version:
        return f"is an IPv{ip.version} address where IPv{version} is expected"
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        return "is not a unicast address"
    return None


def gateway4_problem(value: str) -> str | None:
    return _gateway_problem(value, 4)


def gateway6_problem(value: str) -> str | None:
    return _gateway_problem(value, 6)


HOSTNAME_MAX = 64  # HOST_NAME_MAX: sethostname() takes no more
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def absolute_path_problem(value: str) -> str | None:
    # Absolute: the lab runs a private copy of the file, from another folder.
    if not value.startswith("/"):
        return "must be an absolute path (it is read where the lab runs, not beside the file)"
    if "\0" in value:
        return "must not hold a NUL byte"
    return None


def hostname_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if len(value) > HOSTNAME_MAX:
        return f"is {len(value)} characters long; a host name holds at most {HOSTNAME_MAX}"
    if not _HOSTNAME_RE.fullmatch(value):
        return "must be letters, digits and '-' (not first or last), in labels joined by '.'"
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


def qemu_socket(node_id: str) -> str:
    """Where the lab serves a QEMU-backed guest NIC: in its runtime folder."""
    return f"{node_id}.sock"


def lab_folder(lab: str) -> str:
    return f"{RUNTIME_ROOT}/{lab}"


def normalize_unix_path(path: str) -> str:
    """One spelling per file, for comparing paths: no '.', doubled '/' or
    '//' in front (the kernel reads '//run' as '/run'), and /var/run as the
    /run it links to on every current distribution."""
    norm = posixpath.normpath(path)
    if norm.startswith("/"):
        norm = "/" + norm.lstrip("/")
        if norm == "/var/run" or norm.startswith("/var/run/"):
            norm = norm.removeprefix("/var")
    return norm


def lab_path_problem(path: str, lab: str | None) -> str | None:
    """A relative unix path (of lab, when its name is known): it lives in the
    lab's runtime folder, so it must stay inside it, leave the lab's own files
    alone and still fit sun_path once the folder is in front of it."""
    if path.startswith("~"):
        return "starts with '~', which names no home folder here: a relative path lives in the lab's runtime folder"
    if path[0].isspace():
        return "starts with white space"
    if ".." in path.split("/"):
        return "has a '..' component: a relative path must stay inside the lab's runtime folder"
    norm = normalize_unix_path(path)
    if norm == "." or path.endswith("/"):
        return "names a folder, not a socket"
    first = norm.split("/", 1)[0]
    if first in LAB_FILES:
        return f"is the lab's own {LAB_FILES[first]} ({first} in its runtime folder)"
    if any(part.startswith(".") for part in norm.split("/")):
        return "names a file starting with '.': such names in the lab's runtime folder are the lab's own"
    if lab is not None:
        full = f"{lab_folder(lab)}/{path}"
        if len(full.encode()) > UNIX_PATH_MAX:
            return (
                f"is {full!r} with the lab's runtime folder in front: {len(full.encode())} bytes, "
                f"and a unix socket path holds at most {UNIX_PATH_MAX}"
            )
    return None


def external_path_problem(path: str, lab: str | None, binds: bool) -> str | None:
    """An absolute unix path the topology marks external: it must be outside
    the lab's own folder (that is what relative paths are for); inside
    another lab's folder a lab binds nothing, and reaches only its sockets,
    never its control socket or other files of its own."""
    norm = normalize_unix_path(path)
    if not norm.startswith(RUNTIME_ROOT + "/"):
        return None
    other, _, inner = norm.removeprefix(RUNTIME_ROOT + "/").partition("/")
    if lab is not None and other == lab:
        return (
            f"is inside this lab's own runtime folder {lab_folder(lab)}: "
            f"write it relative ({inner or '.'}) and without external"
        )
    if binds:
        return (
            f"is inside {RUNTIME_ROOT}, where labs keep their own files: a lab binds a socket there "
            "only in its own folder (a relative path)"
        )
    first = inner.split("/", 1)[0]
    if not inner or first in LAB_FILES or any(part.startswith(".") for part in inner.split("/")):
        what = LAB_FILES.get(first, "runtime folder" if not inner else "file")
        return f"is lab {other}'s own {what}: another lab is reached only through the sockets it serves"
    return None


def inet_endpoint(value: str) -> tuple[str, int] | None:
    """'HOST:PORT' -> (host, port) with one spelling per host ('localhost'
    is 127.0.0.1, IPv6 compressed), for comparing addresses; None if malformed."""
    try:
        host, port = split_host_port(value)
    except ValueError:
        return None
    if host.lower() == "localhost":
        return "127.0.0.1", port
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return host.lower(), port


def is_local_host(host: str) -> bool:
    """A host any socket of this machine reaches: loopback, or 'any' (0.0.0.0, ::)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def si(value: float, unit: str) -> str:
    """1234567 -> '1.2 M' + unit: rates and sizes as people read them."""
    for prefix in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.0f} {prefix}{unit}" if not prefix else f"{value:.1f} {prefix}{unit}"
        value /= 1000
    return f"{value:.1f} T{unit}"
