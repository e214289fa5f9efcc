"""VM guests of a running lab: each guest with vm: true is one QEMU process
(lab/vm.py) that the lab starts, watches (QMP, the process itself), serves
a console for (lab/console.py) and restarts on request.

Booted from the built-in guest image (lab/guestimage.py) unless the
topology names a kernel or a disk: the image's /init configures each NIC
from the topology (addresses, gateways, hostname, forwarding), carried in a
small per-guest archive appended to the image's initramfs."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qnet_tui.lab import vm
from qnet_tui.lab.accel import Accel
from qnet_tui.lab.console import ConsoleRelay, Send
from qnet_tui.lab.guestimage import GuestImage
from qnet_tui.lab.guestinit import READY_MARK, GuestConfig, NicConfig
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.qmp import Qmp
from qnet_tui.model.guests import Machine
from qnet_tui.model.topology import Topology

Log = Callable[[str, str], None]
READY_TIMEOUT_S = 15.0  # QEMU serves its sockets well before the guest boots
READY_POLL_S = 0.02
_HOSTNAME_CHARS = re.compile(r"[^A-Za-z0-9-]")


class VmGuestError(Exception):
    pass


def spec_of(t: Topology, machine: Machine) -> vm.VmSpec:
    g = machine.guest
    nics = [vm.VmNic(nic, str(t.nodes[nic].attrs["mac"]), str(t.nodes[nic].get("model"))) for nic in machine.nics]
    return vm.VmSpec(
        name=machine.id,
        nics=nics,
        memory_mb=int(g.get("memory")),
        cpus=int(g.get("cpus")),
        kernel=g.attrs.get("kernel"),
        initrd=[g.attrs["initrd"]] if "initrd" in g.attrs else [],
        append=str(g.attrs.get("append", "")),
        disk=g.attrs.get("disk"),
        disk_format=str(g.get("disk_format")),
    )


def config_of(t: Topology, machine: Machine) -> GuestConfig:
    """What the built-in guest's /init sets up: the topology's addresses,
    gateways, hostname and forwarding, NIC by NIC (eth0, eth1, ...)."""
    g = machine.guest
    hostname = str(g.attrs.get("hostname", machine.id)).split(".")[0]
    hostname = _HOSTNAME_CHARS.sub("-", hostname).strip("-")[:63] or "guest"
    nics = []
    for nic in machine.nics:
        a = t.nodes[nic].attrs
        nics.append(
            NicConfig(
                mac=str(a["mac"]).lower(),
                addresses=tuple(str(a[k]) for k in ("ipv4", "ipv6") if k in a),
                gateway4=a.get("gateway"),
                gateway6=a.get("gateway6"),
            )
        )
    return GuestConfig(hostname, tuple(nics), g.get("forwarding") is True)


class VmGuest:
    def __init__(
        self,
        t: Topology,
        machine: Machine,
        folder: Path,
        loop: Loop,
        log: Log,
        accel: Accel,
        image: GuestImage | None,
        send: Send,
    ) -> None:
        self.name = machine.id
        self.spec = spec_of(t, machine)
        self.config = config_of(t, machine) if not (self.spec.kernel or self.spec.disk) else None
        self.files = vm.VmFiles(folder, machine.id)
        self.loop, self.log, self.accel, self.image = loop, log, accel, image
        self.proc: subprocess.Popen | None = None
        self.state = "stopped"  # starting, booting, running, paused, stopped, crashed
        self.reason: str | None = None
        self.qmp: Qmp | None = None
        self.console = ConsoleRelay(loop, machine.id, str(self.files.console), send, self._on_console)
        self._heard = b""  # the console's last bytes, where the ready mark may be cut in two
        self.links: dict[str, bool] = {nic.id: True for nic in self.spec.nics}
        self.ready = False  # the built-in guest's /init has configured its NICs

    @property
    def record(self) -> dict[str, Any]:
        """What the state file keeps, so a later run can end this VM."""
        return {"guest": self.name, "pidfile": str(self.files.pidfile)}

    def start(self, wait: bool = True) -> None:
        """Start QEMU. With wait (the lab's start, before it forwards): until
        it serves its sockets, not for the guest to boot. Without (a restart
        while the lab forwards): its sockets are looked for on the loop."""
        spec = self.spec
        if self.config is not None:
            if self.image is None:
                raise VmGuestError(f"{self.name}: no guest image to boot (qnet-tui guest-image builds it)")
            self.image.initrd_for(self.config, self.files.initrd)
            spec = dataclasses.replace(spec, kernel=str(self.image.kernel), initrd=[str(self.files.initrd)])
        for path in (spec.kernel, *spec.initrd):
            if path and not Path(path).is_file():
                raise VmGuestError(f"{self.name}: no file {path} to boot")
        try:
            self.proc = vm.start(spec, self.files, self.accel.name)
        except vm.VmError as exc:
            raise VmGuestError(str(exc)) from None
        self.state, self.reason, self.ready, self._heard = "starting", None, False, b""
        deadline = time.monotonic() + READY_TIMEOUT_S
        if not wait:
            self.loop.call_later(READY_POLL_S, lambda: self._when_served(deadline))
            return
        while not self._served(deadline):
            time.sleep(READY_POLL_S)  # start-up only, before the lab forwards

    def _served(self, deadline: float) -> bool:
        """Whether QEMU serves its sockets (then QMP and the console are
        followed); raises VmGuestError if it died or never will."""
        wanted = [self.files.qmp, self.files.console, *(self.files.nic_socket(n.id) for n in self.spec.nics)]
        if all(p.exists() for p in wanted):
            self._watch()
            self.console.ended = False
            self.console.start()
            return True
        if self.proc.poll() is not None:
            words = vm.last_words(self.files)
            raise VmGuestError(f"{self.name}: QEMU exited at once: {words or f'status {self.proc.returncode}'}")
        if time.monotonic() > deadline:
            raise VmGuestError(f"{self.name}: QEMU did not serve its sockets within {READY_TIMEOUT_S:g} s")
        return False

    def _when_served(self, deadline: float) -> None:
        try:
            if not self._served(deadline):
                self.loop.call_later(READY_POLL_S, lambda: self._when_served(deadline))
        except VmGuestError as exc:
            self.state, self.reason = "crashed", str(exc)
            self.log("error", str(exc))

    def _watch(self) -> None:
        qmp = self.qmp = Qmp(self.loop, str(self.files.qmp), self._on_event, self._on_qmp_closed)
        try:
            qmp.connect()
        except OSError as exc:
            self.log("warning", f"{self.name}: no QMP ({exc.strerror}): its state is not followed")
            self.qmp = None
            return
        qmp.command("query-status", reply=self._status)
        for nic, up in self.links.items():
            if not up:
                self.set_link(nic, False)

    def _status(self, value: dict[str, Any] | None, error: str | None) -> None:
        if value is not None:
            self.state = self._running() if value.get("running") else "paused"

    def _running(self) -> str:
        """The built-in guest is booting until its /init says it is ready;
        of a kernel or disk of the user's, QEMU running is all we know."""
        return "booting" if self.config is not None and not self.ready else "running"

    def _on_console(self, data: bytes) -> None:
        if not self.ready:
            self._heard = (self._heard + data)[-256:]
            if READY_MARK.encode() in self._heard:
                self.ready = True
                if self.state == "booting":
                    self.state = "running"

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "STOP":
            self.state = "paused"
        elif name == "RESUME":
            self.state = self._running()
        elif name == "SHUTDOWN":
            self.state, self.reason = "stopped", f"the guest shut down ({data.get('reason', 'no reason given')})"
        elif name == "GUEST_PANICKED":
            self.state, self.reason = "crashed", "the guest's kernel panicked"

    def _on_qmp_closed(self, why: str) -> None:
        self.qmp = None

    def poll(self) -> None:
        """Called each statistics tick: has QEMU died?"""
        if self.proc is None or self.proc.poll() is None:
            return
        if self.state not in ("stopped", "crashed"):
            words = vm.last_words(self.files)
            status = self.proc.returncode
            how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            self.state, self.reason = "crashed", f"QEMU {how}" + (f": {words}" if words else "")
            self.log("error", f"{self.name}: the VM died ({self.reason}); restart it from the app or CLI")
        self.console._hang_up()

    def set_link(self, nic: str, up: bool) -> None:
        """Carrier of one NIC as the guest sees it (QMP set_link)."""
        self.links[nic] = up
        index = next(i for i, n in enumerate(self.spec.nics) if n.id == nic)
        if self.qmp is not None:
            self.qmp.command("set_link", {"name": f"nic{index}", "up": up}, self._said(f"set_link {nic}"))

    def _said(self, what: str) -> Callable[[dict[str, Any] | None, str | None], None]:
        def reply(value: dict[str, Any] | None, error: str | None) -> None:
            if error:
                self.log("warning", f"{self.name}: {what}: {error}")

        return reply

    def restart(self) -> None:
        self.stop()
        self.start(wait=False)  # the lab goes on forwarding while QEMU starts
        self.log("info", f"{self.name}: VM restarted")

    def stop(self) -> None:
        if self.qmp is not None:
            self.qmp.close("the lab stops the VM")
        self.console.end()
        if self.proc is not None:
            vm.stop(self.proc)
        self.state, self.reason = "stopped", None
        remove_files(self.files.folder, self.name, keep_logs=True)  # a restart must not find old sockets

    def stats(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "accel": self.accel.name,
            "links": dict(self.links),
        }


def remove_files(folder: Path, guest: str, keep_logs: bool = False) -> None:
    """What a VM guest kept in the lab's folder, once its QEMU has ended
    (the console and QEMU's own log stay if asked: a restart keeps them)."""
    files = vm.VmFiles(folder, guest)
    logs = () if keep_logs else (files.console_log, files.stderr)
    for path in (files.initrd, files.overlay, files.pidfile, files.qmp, files.console, *logs):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for nic_socket in folder.glob(f"{guest}.*.nic"):
        with contextlib.suppress(FileNotFoundError):
            nic_socket.unlink()
