"""The built-in guest image boots for real: built from Debian's packages once
per test session, booted under TCG with one virtio-net NIC on a tap that the
test made in a namespace of its own, and pinged there over IPv4 and IPv6."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from qnet_tui.lab import accel, guestimage, netns
from qnet_tui.lab.guestinit import READY_MARK, GuestConfig, NicConfig

from .conftest import wait_for

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64 (Debian: qemu-system-x86)")

MAC = "52:54:00:4e:00:02"
HOST4, GUEST4 = "10.213.0.1", "10.213.0.2"
HOST6, GUEST6 = "fd00:213::1", "fd00:213::2"


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory: pytest.TempPathFactory) -> guestimage.GuestImage:
    root = tmp_path_factory.mktemp("guest-cache")
    started = time.monotonic()
    try:
        image = guestimage.ensure(root=root)
    except guestimage.GuestImageError as exc:
        pytest.skip(f"the guest image cannot be built here: {exc}")
    print(f"guest image built in {time.monotonic() - started:.1f} s")
    return image


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"qnet-g{uuid.uuid4().hex[:8]}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)  # and the tap in it


def make_tap(ns: str, name: str, *addresses: tuple[str, int]) -> None:
    """A persistent tap in ns (the ioctl runs in this thread, so it is made there) for QEMU to open."""
    with netns.inside(ns), IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="tuntap", mode="tap")
        (index,) = ipr.link_lookup(ifname=name)
        for address, prefixlen in addresses:
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen, IFA_F_NODAD=":" in address)
        ipr.link("set", index=index, state="up")


def run_in(ns: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, preexec_fn=lambda: netns.enter(ns))


def pings(ns: str, address: str) -> bool:
    return run_in(ns, "ping", "-c", "1", "-W", "1", address).returncode == 0


@contextlib.contextmanager
def booted(
    image: guestimage.GuestImage, ns: str, guest: GuestConfig, nics: list[tuple[str, str]], folder: Path
) -> Iterator[float]:
    """The guest under TCG with a virtio-net NIC per (tap, MAC) of nics, in
    that PCI order, until it says it is ready; killed after. Yields the
    seconds from QEMU's start to ready."""
    initrd = image.initrd_for(guest, folder / "initrd")
    console = folder / "console.log"
    argv = [
        QEMU, "-M", "q35", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none",
        "-monitor", "none", "-serial", f"file:{console}", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(initrd), "-append", guestimage.APPEND,
    ]  # fmt: skip
    for i, (tap, mac) in enumerate(nics):
        argv += ["-netdev", f"tap,id=n{i},ifname={tap},script=no,downscript=no"]
        argv += ["-device", f"virtio-net-pci,netdev=n{i},mac={mac},romfile="]
    # QEMU runs in the namespace: it opens each tap by name in its own namespace.
    vm = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: netns.enter(ns)
    )
    started = time.monotonic()
    try:

        def ready() -> bool:
            assert vm.poll() is None, f"QEMU exited: {vm.stderr.read()}"
            return console.exists() and f"{READY_MARK} {guest.hostname}" in console.read_text(errors="replace")

        wait_for(ready, 90, "the guest to configure its NICs")
        yield time.monotonic() - started
    finally:
        vm.kill()
        vm.wait()
    said = console.read_text(errors="replace")
    assert "insmod" not in said and "no NIC has MAC" not in said, said  # /init met no trouble


def test_guest_boots_under_tcg_and_answers_ping(guest_image, namespace, tmp_path: Path):
    make_tap(namespace, "tap0", (HOST4, 24), (HOST6, 64))
    guest = GuestConfig("vm1", (NicConfig(MAC, (f"{GUEST4}/24", f"{GUEST6}/64"), gateway4=HOST4),))
    started = time.monotonic()
    with booted(guest_image, namespace, guest, [("tap0", MAC)], tmp_path) as ready:
        wait_for(lambda: pings(namespace, GUEST4), 30, "ping")
        answered = time.monotonic() - started
        wait_for(lambda: run_in(namespace, "ping", "-6", "-c", "1", "-W", "1", GUEST6).returncode == 0, 30, "ping -6")
        print(f"guest ready {ready:.1f} s after QEMU started, ping answered at {answered:.1f} s")
        result = run_in(namespace, "ping", "-c", "3", "-i", "0.2", "-W", "2", GUEST4)
        assert result.returncode == 0, result.stdout + result.stderr


def test_nics_are_found_by_mac_not_by_order(guest_image, namespace, tmp_path: Path):
    # PCI order: tap0's NIC first. The config lists tap1's MAC as eth0: if /init
    # configured NICs in probe order, each subnet would sit on the other tap.
    make_tap(namespace, "tap0", ("10.213.0.1", 24))
    make_tap(namespace, "tap1", ("10.214.0.1", 24))
    # Strict reverse-path filtering: a reply must come in on the tap it was
    # sent out of (a Linux guest would answer for either address on either NIC).
    with netns.inside(namespace):
        Path("/proc/sys/net/ipv4/conf/all/rp_filter").write_text("1\n")
    on_tap0, on_tap1 = "52:54:00:4e:00:10", "52:54:00:4e:00:11"
    guest = GuestConfig(
        "r1", (NicConfig(on_tap1, ("10.214.0.2/24",)), NicConfig(on_tap0, ("10.213.0.2/24",))), forwarding=True
    )
    with booted(guest_image, namespace, guest, [("tap0", on_tap0), ("tap1", on_tap1)], tmp_path):
        wait_for(lambda: pings(namespace, "10.213.0.2"), 30, "ping on tap0")
        wait_for(lambda: pings(namespace, "10.214.0.2"), 30, "ping on tap1")


def test_probe_mode_boot_under_tcg(guest_image):
    # The KVM probe's test boot, made here under TCG: /init prints the mark and powers off.
    assert accel.boot_problem(guest_image.kernel, guest_image.initrd, QEMU, timeout=60, accel="tcg") is None


@pytest.mark.skipif(
    not os.path.exists("/dev/kvm") or bool(accel.cpu_flags(Path("/proc/cpuinfo").read_text()) & {"vmx", "svm"}),
    reason="only where /dev/kvm is a software KVM (no vmx or svm flag)",
)
def test_a_software_kvm_fails_the_test_boot(guest_image):
    problem = accel.boot_problem(guest_image.kernel, guest_image.initrd, QEMU, timeout=10, accel="kvm")
    assert problem is not None
