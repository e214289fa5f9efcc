"""The shares of a lab on other machines, as their controller runs them.

A lab whose file has a `hosts:` section runs on several machines: the
controller (`qnet-tui run FILE`, or the app's worker) runs the nodes without
`host:`, and starts `qnet-tui run - --host NAME` on each other machine over
OpenSSH, the topology on its stdin. The remote share's control socket is
forwarded by ssh to a socket in the controller's lab folder (`-L`), and the
controller speaks the one protocol over it: it reads the share's statistics,
samples and log, renews its lease, and stops it. No daemon of our own: ssh
is the only transport, and `QNET_SSH_COMMAND` (like git's GIT_SSH_COMMAND)
says how to run it (`ssh -F config`, `ssh -i key`).

If the controller dies, its ssh processes die with it (PDEATHSIG), and each
share stops itself when its lease runs out: nothing is left on any machine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qnet_tui import protocol
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.runstate import LabError
from qnet_tui.model.placement import Host

Log = Callable[[str, str], None]
LEASE_S = 10.0  # a share stops this long after its controller's last word
RENEW_S = 2.0  # how often the controller renews
START_S = 300.0  # a lab's start on every machine (ssh, realize, VMs booting, a guest image built) at most
STOP_S = 30.0  # a share's teardown at most, before its ssh is ended
SSH_ENV = "QNET_SSH_COMMAND"
PR_SET_PDEATHSIG = 1


def share_name(lab: str, host: str) -> str:
    """The name a lab's share on host runs under there: lab names hold no '@',
    so no lab's share takes another lab's namespaces, lock or sockets."""
    return f"{lab}@{host}"


def remote_control_path(lab: str, host: str) -> str:
    """The share's control socket on its machine: where a root worker keeps it
    (a lab needs root), or the folder QNET_RUNTIME_DIR names here, which the
    remote command is then given too (remote_line)."""
    return str(protocol.control_path(share_name(lab, host)))


def remote_line(host: Host, words: list[str]) -> str:
    """The shell line ssh runs on host: its qnet-tui with words, in the runtime
    folder QNET_RUNTIME_DIR names here if it names one. host.command is the
    user's shell words (sudo qnet-tui, /opt/q/bin/qnet-tui): not quoted."""
    override = os.environ.get("QNET_RUNTIME_DIR")
    env = f"QNET_RUNTIME_DIR={shlex.quote(override)} " if override else ""
    return f"exec env {env}{host.command} {shlex.join(words)}"


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def ssh_command() -> list[str]:
    return shlex.split(os.environ.get(SSH_ENV) or "ssh")


class RemoteShare:
    """One other machine's share of the lab: its ssh process and control connection."""

    def __init__(
        self,
        lab: str,
        host: Host,
        topology_text: str,
        origin: str,
        controller: str | None,
        folder: Path,
        log: Log,
        lease: float = LEASE_S,
    ) -> None:
        self.lab, self.host, self.text, self.origin = lab, host, topology_text, origin
        self.controller = controller  # this machine's underlay address as the share should use it
        self.local_path = folder / f"share-{host.name}.sock"
        self.log = log
        self.lease = lease
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.lines = protocol.LineBuffer(protocol.MAX_LINE)
        self.errors: list[str] = []  # the share's own words on stderr, the last ones
        self.state = "starting"
        self.reason: str | None = None
        self.stats: dict[str, Any] | None = None
        self.loop: Loop | None = None
        self.on_message: Callable[[RemoteShare, protocol.Message], None] | None = None
        self.retry_at = 0.0  # when to try the forwarded socket again

    # -- start ---------------------------------------------------------------------

    def argv(self) -> list[str]:
        h = self.host
        words = ["run", "-", "--host", h.name, "--lease", f"{self.lease:g}", "--origin", self.origin]
        if self.controller:
            words += ["--controller", self.controller]
        line = remote_line(h, words)
        forward = f"{self.local_path}:{remote_control_path(self.lab, h.name)}"
        options = ("BatchMode=yes", "ExitOnForwardFailure=yes", "StreamLocalBindUnlink=yes")
        opts = [w for o in options for w in ("-o", o)]
        opts += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        return [*ssh_command(), *opts, "-L", forward, h.ssh or "", line]

    def launch(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.local_path.unlink()
        try:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # a Ctrl-C at the terminal is the controller's to handle
            )
        except OSError as exc:
            raise LabError(f"host {self.host.name}: cannot run {ssh_command()[0]}: {exc.strerror}") from None
        try:
            self.proc.stdin.write(self.text.encode())
        except BrokenPipeError:
            pass  # ssh went at once: its stderr says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        os.set_blocking(self.proc.stderr.fileno(), False)

    def _read_errors(self) -> None:
        with contextlib.suppress(BlockingIOError, ValueError):
            data = self.proc.stderr.read(1 << 16) if self.proc and self.proc.stderr else None
            for line in (data or b"").decode(errors="replace").splitlines():
                # ssh's word for each try of the forwarded socket before the share made it
                if line.strip() and "open failed: connect failed" not in line:
                    self.errors = [*self.errors[-9:], line.strip()]

    def _failed(self, what: str) -> LabError:
        said = [e.removeprefix("qnet-tui: ").removeprefix("error: ") for e in self.errors]
        detail = said[-1] if said else "no word from it"
        return LabError(f"host {self.host.name}: {what}: {detail}")

    def await_running(self, deadline: float) -> None:
        """Block until the share says it runs; LabError naming the host and its
        last words if ssh or the share ends, refuses, or the deadline passes."""
        while True:
            self._read_errors()
            if self.proc.poll() is not None:
                self._read_errors()
                raise self._failed(f"the share ended before it ran (ssh exit {self.proc.returncode})")
            if time.monotonic() > deadline:
                raise self._failed(f"the lab did not start there within {START_S:g} s")
            if self.sock is None and time.monotonic() >= self.retry_at:
                self._connect()
            if self.sock is not None:
                ready = select.select([self.sock, self.proc.stderr], [], [], 0.2)[0]
                if self.sock in ready and self._read_now():
                    return
            else:
                select.select([self.proc.stderr], [], [], 0.2)

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.local_path))
        except OSError:
            sock.close()  # ssh has not bound it yet
            return
        self.sock = sock
        self.lines = protocol.LineBuffer(protocol.MAX_LINE)
        self.send(protocol.Lease(self.lease))

    def _read_now(self) -> bool:
        """Read what came while starting; True once the share runs."""
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            # ssh accepted, but the share's socket is not there yet: try again soon.
            self.sock.close()
            self.sock = None
            self.retry_at = time.monotonic() + 0.2
            return False
        running = False
        for msg in self._messages(data):
            if isinstance(msg, protocol.Hello) and msg.protocol != protocol.PROTOCOL_VERSION:
                raise LabError(
                    f"host {self.host.name}: its qnet-tui speaks protocol {msg.protocol}, this one "
                    f"{protocol.PROTOCOL_VERSION}: install the same version on every machine"
                )
            if isinstance(msg, protocol.State):
                if msg.state is protocol.LabState.RUNNING:
                    running = True
                elif msg.state is protocol.LabState.FAILED:
                    self.errors.append(msg.reason or "failed")
            elif self.on_message is not None:
                self.on_message(self, msg)
        if running:
            self.state = "running"
        return running

    def _messages(self, data: bytes) -> list[protocol.Message]:
        out = []
        try:
            lines = self.lines.feed(data)
        except protocol.ProtocolError:
            lines = []
        for line in lines:
            msg = protocol.decode(line, protocol.WORKER)
            if isinstance(msg, protocol.Stats):
                self.stats = msg.fields()
            if isinstance(msg, protocol.Message):
                out.append(msg)
        return out

    # -- run -----------------------------------------------------------------------

    def follow(self, loop: Loop, on_message: Callable[[RemoteShare, protocol.Message], None]) -> None:
        """From now on read the share on loop and renew its lease."""
        self.loop, self.on_message = loop, on_message
        loop.add(self.sock.fileno(), self._on_readable)
        loop.add(self.proc.stderr.fileno(), self._on_stderr)
        loop.call_later(RENEW_S, self._renew)

    def _renew(self) -> None:
        if self.state == "running" and self.loop is not None:
            self.send(protocol.Lease(self.lease))
            self.loop.call_later(RENEW_S, self._renew)

    def send(self, msg: protocol.Message) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(OSError):  # a broken connection shows as EOF on the next read
            self.sock.sendall(protocol.encode(msg))

    def _on_stderr(self, mask: int) -> None:
        self._read_errors()  # drained so that the share never blocks on it
        if self.proc.poll() is not None and self.loop is not None:
            self.loop.remove(self.proc.stderr.fileno())

    def _on_readable(self, mask: int) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self._gone("its connection ended")
            return
        for msg in self._messages(data):
            if isinstance(msg, protocol.State) and msg.state in (protocol.LabState.FAILED, protocol.LabState.STOPPED):
                self.reason = msg.reason
            self.on_message(self, msg)

    def _gone(self, why: str) -> None:
        if self.loop is not None and self.sock is not None:
            self.loop.remove(self.sock.fileno())
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.state == "running":
            self.state = "gone"
            self._read_errors()
            self.reason = self.reason or why
            self.log("error", f"host {self.host.name}: its share is gone ({self.reason}); the rest runs on")

    # -- stop ----------------------------------------------------------------------

    def ask_stop(self) -> None:
        self.send(protocol.Stop())

    def finish(self, deadline: float) -> None:
        """Wait for the share to end (its control connection closes, then ssh
        exits), then end ssh. A share that does not in time ends when its lease
        runs out."""
        if self.sock is not None:
            if self.loop is not None:
                self.loop.remove(self.sock.fileno())
            # ssh keeps a forwarded connection open until both ends closed it: read to its end.
            while (left := deadline - time.monotonic()) > 0 and select.select([self.sock], [], [], left)[0]:
                try:
                    if not self.sock.recv(1 << 20):
                        break
                except OSError:
                    break
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(max(0.0, deadline - time.monotonic()))
            if self.proc.poll() is None:
                self.log(
                    "warning",
                    f"host {self.host.name}: its share did not stop within {STOP_S:g} s; "
                    f"it stops itself when its lease runs out ({self.lease:g} s)",
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait()
            if self.loop is not None:
                self.loop.remove(self.proc.stderr.fileno())
            self.proc.stderr.close()
        if self.state != "gone":
            self.state = "stopped"
        with contextlib.suppress(FileNotFoundError):
            self.local_path.unlink()

    def machine_stats(self) -> protocol.MachineStats:
        return {"state": self.state, "address": self.host.address, "reason": self.reason}


def stop_all(shares: list[RemoteShare]) -> None:
    """Stop every share at once, then wait for each."""
    for share in shares:
        share.ask_stop()
    deadline = time.monotonic() + STOP_S
    for share in shares:
        share.finish(deadline)


def source_address(peer: str, port: int) -> str:
    """This machine's address on the way to peer (what the kernel would send
    from): no datagram goes out for it."""
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((peer, port))
        return s.getsockname()[0]


def resolve(address: str) -> str:
    """A host's address (an IP literal, or a name looked up now); LabError if none."""
    try:
        infos = socket.getaddrinfo(address, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise LabError(f"cannot find the address of {address}: {exc.strerror}") from None
    return str(infos[0][4][0])
