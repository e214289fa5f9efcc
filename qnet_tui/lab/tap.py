"""TAP devices whose file descriptor the worker holds, as QEMU does."""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08

VNET_HDR_LEN = 10  # struct virtio_net_hdr, without num_buffers
# What the worker accepts from the kernel when a tap carries virtio-net
# headers: partial checksums and 64 KB TCP super-frames, forwarded whole.
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN


def open_tap(name: str, vnet_hdr: bool) -> int:
    """Create tap `name` in this thread's namespace; return its non-blocking fd.
    The device lives as long as the fd: the kernel frees it when the worker dies."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
        if vnet_hdr:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOADS if vnet_hdr else 0)
    except OSError:
        os.close(fd)
        raise
    return fd


TUNSETCARRIER = 0x400454E2  # _IOW('T', 226, int), Linux 5.0+


def set_carrier(fd: int, up: bool) -> None:
    """Carrier of the tap as its side of the kernel sees it: off, its
    interface shows NO-CARRIER and sends nothing (a pulled cable)."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", 1 if up else 0))
