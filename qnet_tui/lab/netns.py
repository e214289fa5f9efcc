"""Network namespaces of a lab: names, creation, removal, and running code
inside one. Every namespace of lab L is `qnet-L` (its host side) or
`qnet-L.NODE`; lab names cannot hold '.', so no lab's names match another's."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2 import netns as _pr_netns

PREFIX = "qnet-"
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
_libc = ctypes.CDLL(None, use_errno=True)


def host_ns(lab: str) -> str:
    return f"{PREFIX}{lab}"


def node_ns(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}.{node}"


def belongs_to(name: str, lab: str) -> bool:
    return name == host_ns(lab) or name.startswith(host_ns(lab) + ".")


def existing() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def create(name: str) -> None:
    """Make namespace `name` in this process, in a thread of its own that
    unshares its network and leaves it bound at /run/netns/NAME. (pyroute2's
    create forks a helper for this, which a killed worker leaves running: it
    could make the namespace after the cleanup looked, and nobody would know
    it.) Killed midway, at most the recorded mount point is left."""
    if name in existing():
        raise FileExistsError(f"network namespace {name} already exists")
    failed: list[BaseException] = []

    def make() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:  # this thread alone
                err = ctypes.get_errno()
                raise OSError(err, f"unshare: {os.strerror(err)}")
            _pr_netns.attach(name, "thread-self")  # the mount point, and the bind of this thread's namespace
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=make, name=f"netns-{name}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def remove(name: str) -> None:
    _pr_netns.remove(name)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace `name`: sockets and tap
    devices made there belong to it and stay there afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def iproute(name: str) -> IPRoute:
    """A netlink socket bound to namespace `name` (a socket keeps the namespace it was made in)."""
    with inside(name):
        return IPRoute()


def enter(name: str) -> None:
    """Move this thread (in a child about to exec: the process) into `name`."""
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def own_hostname(name: str) -> None:
    """Give this process (about to exec) a UTS namespace of its own with
    this host name: a guest's programs see the guest's name, the machine's stays."""
    if _libc.unshare(CLONE_NEWUTS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    data = name.encode()
    if _libc.sethostname(data, len(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sethostname: {os.strerror(err)}")
