"""The built-in guest's /init and its per-guest configuration.

The base initramfs (busybox, the NIC modules, this /init) is the same for
every guest and is built once; what makes a guest itself (hostname, each
NIC's MAC, addresses and default gateway, forwarding) is a second, tiny cpio
appended to it, which the kernel unpacks over the first. That second archive
is made here by a pure function of the guest's description."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from qnet_tui.lab import cpio

CONFIG_PATH = "etc/qnet/guest.conf"
MODULES_PATH = "etc/qnet/modules"
READY_MARK = "qnet-guest: ready"  # /init prints it once every NIC is configured

# busybox sh. The config has one "KEY NIC VALUE" per line (see config_text);
# NICs are matched by MAC and renamed eth0, eth1, ... in the config's order.
INIT_SCRIPT = r"""#!/bin/busybox sh
# qnet-tui guest /init: mount, load the NIC modules, configure the NICs from
# /etc/qnet/guest.conf, then keep a shell on the serial console.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
if grep -qw qnet.probe /proc/cmdline; then
    echo "qnet-probe: ok"
    poweroff -f
fi
while read -r mod; do
    insmod "/lib/modules/$mod.ko" || echo "qnet-guest: insmod $mod failed"
done < /etc/qnet/modules
ip link set lo up
conf=/etc/qnet/guest.conf
[ -f "$conf" ] || conf=/dev/null

by_mac() {
    for dev in /sys/class/net/*; do
        [ "$(cat "$dev/address")" = "$1" ] && { echo "${dev##*/}"; return 0; }
    done
    return 1
}

# Two rounds of renames, so that eth1 may become eth0 and eth0 eth1.
n=0
while read -r key nic value; do
    [ "$key" = nic ] || continue
    tries=50
    until dev=$(by_mac "$value"); do
        tries=$((tries - 1))
        [ $tries -gt 0 ] || { echo "qnet-guest: no NIC has MAC $value ($nic)"; continue 2; }
        sleep 0.1
    done
    ip link set "$dev" down
    ip link set "$dev" name "qnet$n"
    echo "$nic" > "/tmp/qnet$n"
    n=$((n + 1))
done < "$conf"
for tmp in /tmp/qnet*; do
    [ -f "$tmp" ] || continue
    ip link set "${tmp##*/}" name "$(cat "$tmp")"
    rm "$tmp"
done
while read -r key nic value; do
    case "$key" in
        hostname) hostname "$nic" ;;
        forwarding)
            echo "$nic" > /proc/sys/net/ipv4/ip_forward
            echo "$nic" > /proc/sys/net/ipv6/conf/all/forwarding ;;
        nic) ip link set "$nic" up ;;
        addr) ip addr add "$value" dev "$nic" ;;
    esac
done < "$conf"
while read -r key nic value; do
    case "$key" in
        gateway4) ip route add default via "$value" dev "$nic" ;;
        gateway6) ip -6 route add default via "$value" dev "$nic" ;;
    esac
done < "$conf"
echo "qnet-guest: ready $(hostname)"
export PS1='\h:\w\$ '
while :; do
    setsid -c sh -l < /dev/ttyS0 > /dev/ttyS0 2>&1
    sleep 1
done
"""
INIT_SHA256 = hashlib.sha256(INIT_SCRIPT.encode()).hexdigest()

HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class GuestConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NicConfig:
    mac: str
    addresses: tuple[str, ...] = ()  # with prefix: "10.0.0.2/24", "fd00::2/64"
    gateway4: str | None = None
    gateway6: str | None = None


@dataclass(frozen=True)
class GuestConfig:
    hostname: str
    nics: tuple[NicConfig, ...] = ()  # eth0, eth1, ... in this order
    forwarding: bool = False


def _gateway(where: str, text: str | None, version: int) -> str | None:
    if text is None:
        return None
    try:
        gw = ipaddress.ip_address(text)
    except ValueError:
        raise GuestConfigError(f"{where}: gateway {text!r} is not an IP address") from None
    if gw.version != version:
        raise GuestConfigError(f"{where}: gateway{version} {text!r} is not an IPv{version} address")
    return str(gw)


def config_text(guest: GuestConfig) -> str:
    """The guest's /etc/qnet/guest.conf, checked field by field."""
    if not HOSTNAME.fullmatch(guest.hostname):
        raise GuestConfigError(f"guest {guest.hostname!r}: hostname must be letters, digits and '-' (63 at most)")
    lines = [f"hostname {guest.hostname}", f"forwarding {int(guest.forwarding)}"]
    macs: set[str] = set()
    for i, nic in enumerate(guest.nics):
        where = f"guest {guest.hostname}: eth{i}"
        mac = nic.mac.lower()
        if not MAC.fullmatch(mac):
            raise GuestConfigError(f"{where}: {nic.mac!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
        if mac in macs:
            raise GuestConfigError(f"{where}: MAC {mac} is on another NIC of this guest")
        macs.add(mac)
        lines.append(f"nic eth{i} {mac}")
        for text in nic.addresses:
            try:
                address = ipaddress.ip_interface(text)
            except ValueError:
                raise GuestConfigError(f"{where}: {text!r} is not an address with a prefix (10.0.0.2/24)") from None
            if "/" not in text:
                raise GuestConfigError(f"{where}: {text!r} has no prefix length (10.0.0.2/24)")
            lines.append(f"addr eth{i} {address.with_prefixlen}")
        for version, gateway in ((4, nic.gateway4), (6, nic.gateway6)):
            if (gw := _gateway(where, gateway, version)) is not None:
                lines.append(f"gateway{version} eth{i} {gw}")
    return "\n".join(lines) + "\n"


def guest_cpio(guest: GuestConfig) -> bytes:
    """The per-guest archive appended to the base initramfs."""
    return cpio.archive(
        [cpio.directory("etc"), cpio.directory("etc/qnet"), cpio.file(CONFIG_PATH, config_text(guest).encode())]
    )


def base_entries(busybox: bytes, modules: list[tuple[str, bytes]]) -> list[cpio.Entry]:
    """The base initramfs: /init, busybox, and the modules in load order."""
    dirs = ["bin", "dev", "etc", "etc/qnet", "lib", "lib/modules", "proc", "root", "run", "sbin", "sys", "tmp"]
    dirs += ["usr", "usr/bin", "usr/sbin"]
    return [
        *(cpio.directory(d) for d in dirs),
        cpio.char_device("dev/console", 5, 1),
        cpio.file("bin/busybox", busybox, 0o755),
        cpio.file("init", INIT_SCRIPT.encode(), 0o755),
        *(cpio.file(f"lib/modules/{name}.ko", data) for name, data in modules),
        cpio.file(MODULES_PATH, "".join(f"{name}\n" for name, _ in modules).encode()),
    ]
