"""A real VM guest: one qemu-system-x86_64 process the lab starts, wires
and ends.

Wiring. Each NIC is a stream netdev on which QEMU *listens* (server=on) on a
unix socket in the lab's runtime folder, and the lab dials it (a StreamPort
in connect mode, which redials until it answers). QEMU 7.2 has no reconnect
for a stream client: had QEMU dialled the lab, a lab restart would cut every
VM off for good, and a VM started before the lab would never connect. A
QEMU server goes back to listening when its peer hangs up, so both a lab
restart and a VM restart reconnect by themselves.

Around it: a QMP socket (state, set_link), the serial console on a socket
with everything it printed kept in a log file, a pid file by which a later
run finds and ends a VM a killed worker left, and for a disk image a qcow2
overlay per run, so the user's image is never written."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"


class VmError(Exception):
    pass


@dataclass
class VmNic:
    id: str  # the guest NIC's node id
    mac: str
    model: str  # a QEMU device: virtio-net-pci, e1000, rtl8139 ...


@dataclass
class VmSpec:
    name: str  # the guest's id
    nics: list[VmNic]
    memory_mb: int = 256
    cpus: int = 1
    kernel: str | None = None  # boot this kernel (with initrd), or
    initrd: list[str] = field(default_factory=list)  # concatenated in this order
    append: str = ""
    disk: str | None = None  # boot this image through an overlay
    disk_format: str = "qcow2"


@dataclass
class VmFiles:
    """Where a VM keeps its sockets and files, in the lab's runtime folder."""

    folder: Path
    name: str

    def nic_socket(self, nic: str) -> Path:
        return self.folder / f"{self.name}.{nic}.nic"

    @property
    def qmp(self) -> Path:
        return self.folder / f"{self.name}.qmp"

    @property
    def console(self) -> Path:
        return self.folder / f"{self.name}.console"

    @property
    def console_log(self) -> Path:
        return self.folder / f"{self.name}.console.log"

    @property
    def pidfile(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def overlay(self) -> Path:
        return self.folder / f"{self.name}.overlay.qcow2"

    @property
    def initrd(self) -> Path:
        return self.folder / f"{self.name}.initrd"

    @property
    def stderr(self) -> Path:
        return self.folder / f"{self.name}.qemu.log"


def qemu_argv(spec: VmSpec, files: VmFiles, accel: str, extra: list[str] | None = None) -> list[str]:
    """The whole command line of the VM (accel: "kvm" or "tcg")."""
    argv = [
        QEMU,
        *("-name", f"guest={spec.name},process=qnet-{spec.name}"),
        *("-machine", f"q35,accel={accel}"),
        *("-cpu", "host" if accel == "kvm" else "max"),
        *("-m", str(spec.memory_mb), "-smp", str(spec.cpus)),
        *("-nodefaults", "-no-user-config", "-display", "none", "-vga", "none"),
        *("-pidfile", str(files.pidfile)),
        *("-qmp", f"unix:{files.qmp},server=on,wait=off"),
        *(
            "-chardev",
            f"socket,id=console,path={files.console},server=on,wait=off,logfile={files.console_log},logappend=on",
        ),
        *("-serial", "chardev:console"),
    ]
    for i, nic in enumerate(spec.nics):
        argv += [
            *("-netdev", f"stream,id=n{i},server=on,addr.type=unix,addr.path={files.nic_socket(nic.id)}"),
            # Device ids by position: node ids need not be QEMU ids (QMP's set_link names nic0, nic1 ...).
            *("-device", f"{nic.model},netdev=n{i},mac={nic.mac},id=nic{i}"),
        ]
    if spec.kernel:
        argv += ["-kernel", spec.kernel, "-append", f"console=ttyS0 {spec.append}".strip()]
        if spec.initrd:
            argv += ["-initrd", str(files.initrd) if len(spec.initrd) > 1 else spec.initrd[0]]
    if spec.disk:
        argv += ["-drive", f"file={files.overlay},format=qcow2,if=virtio"]
    return argv + (extra or [])


def prepare(spec: VmSpec, files: VmFiles) -> None:
    """The files QEMU needs before it starts: the initrd parts joined (the
    kernel unpacks concatenated archives), the disk's overlay."""
    if spec.kernel and len(spec.initrd) > 1:
        with open(files.initrd, "wb") as out:
            for part in spec.initrd:
                with open(part, "rb") as f:
                    out.write(f.read())
    if spec.disk:
        image = Path(spec.disk).resolve()
        if not image.is_file():
            raise VmError(f"{spec.name}: no disk image {image}")
        result = subprocess.run(
            [QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", spec.disk_format, "-b", str(image), str(files.overlay)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise VmError(f"{spec.name}: cannot make an overlay of {image}: {result.stderr.strip()}")


def start(spec: VmSpec, files: VmFiles, accel: str, extra: list[str] | None = None) -> subprocess.Popen:
    """Start QEMU; it ends with the worker (SIGKILL on the worker's death)."""
    prepare(spec, files)
    with contextlib.suppress(FileNotFoundError):
        files.pidfile.unlink()
    with open(files.stderr, "ab") as err:
        try:
            return subprocess.Popen(
                qemu_argv(spec, files, accel, extra),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # a Ctrl-C in the worker's terminal is for the worker
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise VmError(f"{spec.name}: cannot start {QEMU}: {exc.strerror}") from None


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def last_words(files: VmFiles, lines: int = 3) -> str:
    """What QEMU said last on stderr: why it would not start, or died."""
    try:
        text = files.stderr.read_text(errors="replace")
    except OSError:
        return ""
    return " ".join(x.strip() for x in text.strip().splitlines()[-lines:])


def stop(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """End QEMU: SIGTERM (it exits at once, closing its files), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def end_recorded(pidfile: Path) -> bool:
    """End the QEMU a killed run left, found by its pid file; True if one was
    ended. The pid must still be a QEMU started with that pid file: a pid the
    kernel has since given to another process is left alone."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    if str(pidfile).encode() not in argv:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)  # a leftover cleanup, not the forwarding path
    with contextlib.suppress(OSError):
        pidfile.unlink()
    return True
