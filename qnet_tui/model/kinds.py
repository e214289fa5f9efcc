"""The element kinds of a topology, their attributes and which links they take.

This table is the single source for the YAML schema, validation and (later)
the editor's forms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from qnet_tui.model import values


class Kind(StrEnum):
    HOST_NIC = "host_nic"
    BRIDGE = "bridge"
    TAP = "tap"
    HUB = "hub"
    GUEST_NIC = "guest_nic"
    SOCKET = "socket"
    GUEST = "guest"

    @property
    def title(self) -> str:
        return KIND_TITLES[self]


KIND_TITLES = {
    Kind.HOST_NIC: "host NIC",
    Kind.BRIDGE: "bridge",
    Kind.TAP: "tap",
    Kind.HUB: "hub",
    Kind.GUEST_NIC: "guest NIC",
    Kind.SOCKET: "socket",
    Kind.GUEST: "guest",
}

# QEMU's x86 NIC models (qemu-system-x86_64 -device help, "Network devices").
NIC_MODELS = (
    "virtio-net-pci",
    "e1000",
    "e1000e",
    "rtl8139",
    "igb",
    "ne2k_pci",
    "pcnet",
    "i82550",
    "i82551",
    "i82557a",
    "i82557b",
    "i82557c",
    "i82558a",
    "i82558b",
    "i82559a",
    "i82559b",
    "i82559c",
    "i82559er",
    "i82562",
    "i82801",
    "vmxnet3",
    "tulip",
    "virtio-net-pci-non-transitional",
    "virtio-net-pci-transitional",
    "usb-net",
)


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute of a node kind."""

    name: str
    type: type
    help: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    int_range: tuple[int, int] | None = None

    @property
    def type_name(self) -> str:
        return {str: "a string", int: "an integer", bool: "true or false"}[self.type]

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value for this field, or None."""
        # bool is an int in Python; YAML's true is no VLAN number.
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            return f"must be {self.type_name}, not {values.describe(value)}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {values.describe(value)}"
        if self.int_range and not self.int_range[0] <= value <= self.int_range[1]:
            lo, hi = self.int_range
            return f"must be from {lo} to {hi}, not {value}"
        if self.check:
            return self.check(value)
        return None


def _mac(required: bool) -> Field:
    return Field("mac", str, "MAC address, e.g. 52:54:00:12:34:56", required=required, check=values.mac_problem)


_IPV4 = Field("ipv4", str, "IPv4 address with prefix length, e.g. 10.0.0.2/24", check=values.ipv4_problem)
_IPV6 = Field("ipv6", str, "IPv6 address with prefix length, e.g. fd00::2/64", check=values.ipv6_problem)
# A guest NIC's machine: the NICs naming one guest share its namespace (eth0, eth1, ... in file order).
GUEST_FIELD = "guest"
# Which computer runs a node (model/placement.py): a name from the file's hosts: section.
HOST_FIELD = "host"
_HOST = Field(
    HOST_FIELD,
    str,
    "which machine runs it (a name under hosts); none: where its bridge, guest or peer is, else this one",
)

FIELDS: dict[Kind, tuple[Field, ...]] = {
    Kind.HOST_NIC: (
        Field("ipv4", str, "IPv4 address of the outside host on this uplink", check=values.ipv4_problem),
        Field("ipv6", str, "IPv6 address of the outside host on this uplink", check=values.ipv6_problem),
        _mac(required=False),
        Field(
            "interface",
            str,
            "a real interface of this machine to attach instead of an outside host (needs --allow-host)",
            check=values.ifname_problem,
        ),
        Field("dhcp_server", bool, "the outside LAN has a DHCP server: its offers are expected", default=False),
        _HOST,
    ),
    Kind.BRIDGE: (
        Field("stp", bool, "run the spanning tree protocol", default=False),
        Field("vlan_filtering", bool, "802.1Q VLAN filtering on the bridge", default=False),
        _IPV4,
        _IPV6,
        _HOST,
    ),
    Kind.TAP: (_HOST,),
    Kind.HUB: (
        Field("vlan", int, "QEMU hub id: the VLAN number", required=True, int_range=(0, 4095)),
        Field(
            "forwarding",
            str,
            "auto: the kernel floods for a hub of namespace guests alone (fast); worker: the lab's worker always",
            default="auto",
            choices=("auto", "worker"),
        ),
        # No host: a hub is on every machine with one of its ports, stitched between them.
        Field(
            "vni",
            int,
            "VXLAN network identifier that carries it between machines; none: its VLAN",
            int_range=(0, (1 << 24) - 1),
        ),
    ),
    Kind.GUEST_NIC: (
        Field("model", str, "emulated NIC model", default="virtio-net-pci"),
        _mac(required=True),
        Field(GUEST_FIELD, str, "the guest (machine) this NIC belongs to; none: a guest of its own"),
        _IPV4,
        Field("gateway", str, "IPv4 default route via this address, in ipv4's subnet", check=values.gateway4_problem),
        _IPV6,
        Field("gateway6", str, "IPv6 default route via this address, in ipv6's subnet", check=values.gateway6_problem),
        Field("qemu", bool, "a real QEMU VM plugs in here (see qemu-args) instead of a namespace guest", default=False),
        # The lab's checks (lab/checks.py) flag DHCP server messages from nodes that do not say this.
        Field("dhcp_server", bool, "it runs a DHCP server: its offers are expected", default=False),
        _HOST,
    ),
    Kind.SOCKET: (
        Field("transport", str, "stream (TCP or unix) or dgram (UDP)", required=True, choices=("stream", "dgram")),
        Field("family", str, "unix or inet", default="unix", choices=("unix", "inet")),
        Field("mode", str, "stream: listen for QEMU, or connect to it", choices=("listen", "connect")),
        Field("address", str, "unix: a path; inet: HOST:PORT (dgram: the remote, or a multicast group)", required=True),
        Field("local", str, "dgram: the local address to bind"),
        Field(
            "external",
            bool,
            "unix: the paths are absolute, outside the lab's folder: a socket another program serves or uses",
            default=False,
        ),
        _HOST,
    ),
    # A machine: no links of its own, its guest NICs name it. A namespace, or with vm: true a QEMU VM.
    Kind.GUEST: (
        Field("forwarding", bool, "forward IPv4 and IPv6 between its NICs: a router", default=False),
        Field(
            "hostname", str, "the name the guest's programs see (exec runs them with it)", check=values.hostname_problem
        ),
        Field("vm", bool, "boot it as a QEMU VM: the built-in guest, or the kernel or disk below", default=False),
        Field("memory", int, "VM: memory in MiB", default=256, int_range=(32, 1 << 20)),
        Field("cpus", int, "VM: virtual CPUs", default=1, int_range=(1, 64)),
        Field("kernel", str, "VM: a kernel to boot instead of the built-in one", check=values.absolute_path_problem),
        Field("initrd", str, "VM: the kernel's initramfs", check=values.absolute_path_problem),
        Field("append", str, "VM: the kernel's command line, after console=ttyS0"),
        Field(
            "disk",
            str,
            "VM: a disk image to boot; the lab writes an overlay, never it",
            check=values.absolute_path_problem,
        ),
        Field("disk_format", str, "VM: the disk image's format", default="qcow2", choices=("qcow2", "raw")),
        _HOST,
    ),
}

FIELD_BY_NAME: dict[Kind, dict[str, Field]] = {k: {f.name: f for f in fs} for k, fs in FIELDS.items()}


@dataclass(frozen=True, slots=True)
class Slot:
    """A group of peer kinds a node kind may link to, and how many links of
    that group it takes (None: any number)."""

    peers: frozenset[Kind]
    most: int | None
    what: str  # how a message names the group


def _slot(most: int | None, what: str, *peers: Kind) -> Slot:
    return Slot(frozenset(peers), most, what)


SLOTS: dict[Kind, tuple[Slot, ...]] = {
    Kind.HOST_NIC: (_slot(1, "bridge", Kind.BRIDGE),),
    Kind.BRIDGE: (_slot(None, "host NICs and taps", Kind.HOST_NIC, Kind.TAP),),
    Kind.TAP: (
        _slot(1, "bridge", Kind.BRIDGE),
        _slot(1, "hub or guest NIC", Kind.HUB, Kind.GUEST_NIC),
    ),
    Kind.HUB: (_slot(None, "taps, guest NICs and sockets", Kind.TAP, Kind.GUEST_NIC, Kind.SOCKET),),
    Kind.GUEST_NIC: (_slot(1, "hub, tap or socket", Kind.HUB, Kind.TAP, Kind.SOCKET),),
    Kind.SOCKET: (_slot(1, "hub or guest NIC", Kind.HUB, Kind.GUEST_NIC),),
    Kind.GUEST: (),
}


_SLOT_OF: dict[tuple[Kind, Kind], Slot] = {
    (kind, peer): slot for kind, slots in SLOTS.items() for slot in slots for peer in slot.peers
}


def slot_for(kind: Kind, peer: Kind) -> Slot | None:
    return _SLOT_OF.get((kind, peer))


def peers_phrase(kind: Kind) -> str:
    """'a hub connects to taps, guest NICs and sockets' and the like."""
    if not SLOTS[kind]:
        return f"a {kind.title} has no links of its own: its guest NICs link, and name it in 'guest:'"
    parts = []
    for slot in SLOTS[kind]:
        parts.append(f"one {slot.what}" if slot.most == 1 else slot.what)
    return f"a {kind.title} connects to {' and '.join(parts)}"
