"""Which accelerator a VM guest gets: KVM when it really works, else TCG, with
a one-line reason the app and the CLI can show.

/dev/kvm alone proves little: a nested machine may offer a software KVM (no
vmx/svm flag in /proc/cpuinfo) on which a stock kernel stops with "KVM
internal error ... emulation failure", or (the cloud kernel, measured here)
prints nothing at all. So the CPU flags decide first, and only when they say
yes does a short test boot (the built-in guest image, if it is built, with a
timeout) have the last word."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KVM_DEVICE = "/dev/kvm"
CPUINFO = "/proc/cpuinfo"
VIRT_FLAGS = ("vmx", "svm")  # Intel VT-x, AMD-V
BOOT_TIMEOUT = 20.0  # seconds: a working KVM boots the guest image in well under one
PROBE_MARK = "qnet-probe: ok"  # what the guest image's /init prints in probe mode


@dataclass(frozen=True)
class Accel:
    name: str  # QEMU's -accel value: "kvm" or "tcg"
    reason: str

    @property
    def args(self) -> list[str]:
        return ["-accel", self.name]

    def __str__(self) -> str:
        return f"{self.name.upper()}: {self.reason}"


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first processor listed in /proc/cpuinfo's text."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def device_problem(path: str = KVM_DEVICE) -> str | None:
    """Why `path` cannot be used for KVM, or None if it opens read-write."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"no {path} (no KVM module loaded, or no hardware virtualization)"
    except OSError as exc:
        return f"{path}: {exc.strerror.lower() if exc.strerror else exc}"
    os.close(fd)
    return None


def decide(flags: frozenset[str], device: str | None, test_boot: Callable[[], str | None] | None) -> Accel:
    """The accelerator for these inputs: `device` is device_problem()'s answer;
    `test_boot` (called only when everything else says KVM) returns why a KVM
    boot failed, or None when it worked; None means no test boot can be made."""
    if device is not None:
        return Accel("tcg", device)
    if not flags & set(VIRT_FLAGS):
        return Accel(
            "tcg",
            f"{KVM_DEVICE} is there but the CPU has no vmx or svm flag: a software KVM, "
            "on which a stock kernel does not boot (an emulation failure, or no output at all)",
        )
    flag = sorted(flags & set(VIRT_FLAGS))[0]
    if test_boot is None:
        return Accel("kvm", f"{KVM_DEVICE} opens and the CPU has {flag} (no test boot: the guest image is not built)")
    problem = test_boot()
    if problem is not None:
        return Accel("tcg", f"a KVM test boot failed: {problem}")
    return Accel("kvm", f"{KVM_DEVICE} opens, the CPU has {flag}, and a test boot worked")


def boot_problem(
    kernel: Path, initrd: Path, qemu: str, timeout: float = BOOT_TIMEOUT, accel: str = "kvm"
) -> str | None:
    """Boot the guest image once in probe mode (its /init prints PROBE_MARK
    and powers off): None if it got there, else why not."""
    argv = [
        qemu, "-accel", accel, "-M", "q35", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 qnet.probe",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer from the guest in {timeout:g} s"
    except OSError as exc:
        return f"{qemu}: {exc.strerror or exc}"
    if PROBE_MARK in done.stdout:
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    said = next((line for line in lines if "KVM internal error" in line or "error" in line.lower()), None)
    return said or (lines[-1] if lines else f"QEMU exited with status {done.returncode}")


def _test_boot() -> Callable[[], str | None] | None:
    from qnet_tui.lab import guestimage

    qemu = shutil.which("qemu-system-x86_64")
    image = guestimage.cached()
    if qemu is None or image is None:
        return None
    return lambda: boot_problem(image.kernel, image.initrd, qemu)


@functools.cache
def probe() -> Accel:
    """The accelerator for this machine, probed once per process."""
    try:
        cpuinfo = Path(CPUINFO).read_text()
    except OSError:
        cpuinfo = ""
    flags = cpu_flags(cpuinfo)
    device = device_problem()
    return decide(flags, device, _test_boot() if device is None and flags & set(VIRT_FLAGS) else None)
