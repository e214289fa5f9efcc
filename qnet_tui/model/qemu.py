"""QEMU's language: the arguments that attach a real QEMU VM to a topology's
socket node, and a topology read from QEMU networking arguments."""

from __future__ import annotations

import os
from pathlib import Path

from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.values import is_multicast, split_host_port


class QemuArgsError(Exception):
    pass


def _inet(prefix: str, address: str) -> str:
    host, port = split_host_port(address)
    return f"{prefix}.type=inet,{prefix}.host={host},{prefix}.port={port}"


def netdev_args(t: Topology, node_id: str, runtime_dir: Path, netdev_id: str | None = None) -> list[str]:
    """The -netdev a QEMU VM needs to plug into socket node node_id: the
    other end of what the lab serves (the lab listens, QEMU connects, and
    the other way round; a dgram's local and remote swap)."""
    node = t.nodes.get(node_id)
    if node is None:
        raise QemuArgsError(f"no node '{node_id}'")
    if node.kind is not Kind.SOCKET:
        raise QemuArgsError(
            f"{node_id} is a {getattr(node.kind, 'title', node.kind)}: qemu-args attaches VMs to socket nodes"
        )
    netdev_id = netdev_id or node_id
    a = node.attrs
    family, address = node.get("family"), str(a["address"])
    if family == "unix" and not os.path.isabs(address):
        address = str(runtime_dir / address)
    if a["transport"] == "stream":
        server = "off" if a.get("mode") == "listen" else "on"
        addr = f"addr.type=unix,addr.path={address}" if family == "unix" else _inet("addr", address)
        return ["-netdev", f"stream,id={netdev_id},server={server},{addr}"]
    # dgram: QEMU sends to our local address and binds our remote one.
    if family == "unix":
        local = a.get("local")
        if not local:
            raise QemuArgsError(f"{node_id}: a unix dgram socket needs 'local', the path QEMU sends to")
        local = local if os.path.isabs(local) else str(runtime_dir / local)
        return [
            "-netdev",
            f"dgram,id={netdev_id},local.type=unix,local.path={address},remote.type=unix,remote.path={local}",
        ]
    if is_multicast(address):
        return ["-netdev", f"dgram,id={netdev_id},{_inet('remote', address)}"]
    if not a.get("local"):
        raise QemuArgsError(f"{node_id}: a UDP socket needs 'local', the address QEMU sends to")
    return ["-netdev", f"dgram,id={netdev_id},{_inet('local', address)},{_inet('remote', str(a['local']))}"]


def device_args(netdev_id: str, model: str = "virtio-net-pci", mac: str | None = None) -> list[str]:
    return ["-device", f"{model},netdev={netdev_id}" + (f",mac={mac}" if mac else "")]
