"""The worker process: one lab, from start to a clean stop.

Start: refuse a second run of the same lab (a lock), remove what a killed
earlier run left (listed in its state file), fork a watchdog that cleans up
if this process dies without stopping, realize the topology, serve the
control socket. Run: forward frames, emit statistics every tick. Stop
(duration, Ctrl-C, SIGTERM, a client's "stop"): close every fd, delete every
namespace, remove the state file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from qnet_tui import protocol
from qnet_tui.lab import hostif, netns, unixpaths
from qnet_tui.lab.capture import Capture
from qnet_tui.lab.control import ControlServer, MessageError
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import Hub
from qnet_tui.lab.realize import Lab, RealizeError, realize, teardown
from qnet_tui.lab.stats import Stats, format_table
from qnet_tui.model.topology import Topology

WORKER_NICE = -5
WATCHDOG_LOCK_WAIT_S = 10.0
EX_SOFTWARE = 70  # sysexits.h: the worker failed of itself, not of its input


class LabError(Exception):
    """Why the lab cannot start; said to the user as is."""


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_state(lab: str) -> dict | None:
    try:
        with open(protocol.state_path(lab)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def remove_leftovers(lab: str, state: dict | None, log: Callable[[str, str], None] | None = None) -> list[str]:
    """Give back the interfaces a dead run of `lab` borrowed from this
    machine, delete the namespaces it recorded as its own, the socket files
    it made (only while each is the very file it made), and its state file.
    Never anything it did not record, nor another lab's."""
    removed = []
    if state:
        warn = (lambda message: log("warning", f"lab {lab}: {message}")) if log else None
        removed += unixpaths.remove_recorded(state.get("sockets"), warn)
        lent = state.get("lent")
        for record in reversed(lent if isinstance(lent, list) else []):
            problems = hostif.give_back_safely(record, netns.host_ns(lab))
            if not problems:
                removed.append(f"{record['node']} (gave back {record['ifname']})")
            for problem in problems:
                if log:
                    log("warning", f"giving back an interface of lab {lab}: {problem}")
        recorded = [n for n in state.get("namespaces", []) if isinstance(n, str) and netns.belongs_to(n, lab)]
        present = set(netns.existing())
        for name in reversed(recorded):
            if name in present:
                netns.remove(name)
                removed.append(name)
    with contextlib.suppress(FileNotFoundError):
        protocol.state_path(lab).unlink()
    return removed


def is_running(lab: str) -> bool:
    """True while some worker holds the lab's lock."""
    try:
        fd = os.open(protocol.lock_path(lab), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _watchdog(lab: str, pipe_r: int, worker_pid: int) -> None:
    """In a child: wait until the worker is gone (the pipe reaches EOF); if it
    left its state file behind, remove what that file lists."""
    os.setsid()  # out of the terminal's process group: Ctrl-C is for the worker
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(3, pipe_r)
    os.closerange(pipe_r + 1, 1024)  # the lock among them: it must die with the worker
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    while True:
        try:
            if not os.read(pipe_r, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    state = read_state(lab)
    if not state or state.get("pid") != worker_pid:
        return  # stopped cleanly, or a new run has taken over
    # The dead worker's lock may outlive its pipe by a moment (the kernel
    # closes a dying process's fds one by one), and a new run may have taken
    # the lab meanwhile: wait for the lock, then look again.
    try:
        lock = os.open(protocol.lock_path(lab), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # a new run took the lab and finished with it
    deadline = time.monotonic() + WATCHDOG_LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                return  # a new run holds the lab: it removes what is left when it starts
            time.sleep(0.05)
    state = read_state(lab)
    if not state or state.get("pid") != worker_pid:
        return
    removed = remove_leftovers(lab, state)
    release_lab_dir(lab)
    if removed:
        print(f"qnet-tui: the worker of lab {lab} died; removed {', '.join(removed)}", file=sys.stderr)


def release_lab_dir(lab: str) -> None:
    """Remove the lab's lock and its folder. Only by the lock's holder: whoever
    waits on the lock sees it unlinked under them and takes a fresh one."""
    with contextlib.suppress(OSError):
        control = protocol.control_path(lab)
        if stat.S_ISSOCK(os.lstat(control).st_mode):  # a killed worker's, left in place
            control.unlink()
    with contextlib.suppress(OSError):
        protocol.lock_path(lab).unlink()
        protocol.lab_dir(lab).rmdir()  # only when empty: nothing of anyone else's goes


def exit_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM when the process that started this one
    (pid `parent`) dies, so a killed app never leaves its lab running."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    # The parent died before the request took hold: we were handed to init,
    # or to a subreaper (systemd --user), so compare with the pid, not with 1.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    def __init__(
        self,
        topology: Topology,
        file: str,
        *,
        interval: float = 1.0,
        duration: float | None = None,
        out: IO[str] | None = None,
        json_lines: bool = False,
        err: IO[str] | None = None,
        on_state: Callable[[str, str | None], None] | None = None,
        allow_host: bool = False,
    ) -> None:
        self.topology = topology
        self.name = str(topology.name)
        self.file = file
        self.interval = interval
        self.duration = duration
        self.out = out
        self.json_lines = json_lines
        self.allow_host = allow_host
        self.err = err or sys.stderr
        self.loop = Loop()
        self.state = "starting"
        self.lock_fd = -1
        self.watchdog_w = -1
        self.control: ControlServer | None = None
        self.lab: Lab | None = None
        self.stats: Stats | None = None
        self._wake_r, self._wake_w = socket.socketpair()

    # -- messages ----------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        # Whoever read our messages may be gone (the app died): the lab still stops cleanly.
        with contextlib.suppress(OSError, ValueError):
            print(f"qnet-tui: {level}: {message}", file=self.err, flush=True)
        if self.control:
            self.control.broadcast(protocol.encode("log", level=level, message=message))

    def set_state(self, state: str, reason: str | None = None) -> None:
        self.state = state
        if self.control:
            self.control.broadcast(protocol.encode("state", state=state, reason=reason))

    # -- start ---------------------------------------------------------------------

    def acquire(self) -> None:
        if os.geteuid() != 0:
            raise LabError("a lab needs root for its network namespaces: run it with sudo")
        while True:
            self._make_lab_dir()
            try:
                self.lock_fd = os.open(protocol.lock_path(self.name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # the folder went with the run that just stopped: make it again
            except OSError as exc:
                raise LabError(f"cannot create {protocol.lock_path(self.name)}: {exc.strerror}") from None
            if not self._lock(read_state(self.name) or {}):
                state = read_state(self.name) or {}
                os.close(self.lock_fd)
                self.lock_fd = -1
                raise LabError(
                    f"lab {self.name} is already running (pid {state.get('pid', '?')}, "
                    f"from {state.get('file', '?')}); stop it first, or give this topology another name"
                ) from None
            if self._lock_is_current():
                break
            os.close(self.lock_fd)  # its holder removed it as it stopped: take the new one
            self.lock_fd = -1
        removed = remove_leftovers(self.name, read_state(self.name), self.log)
        if removed:
            self.log("warning", f"removed what a killed run of lab {self.name} left behind: {', '.join(removed)}")
        strangers = [n for n in netns.existing() if netns.belongs_to(n, self.name)]
        if strangers:
            raise LabError(
                f"network namespaces {', '.join(strangers)} exist but were not made by lab {self.name}; "
                "remove them or rename the lab"
            )
        self._save_state()
        pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
        worker_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(pipe_w)
                _watchdog(self.name, pipe_r, worker_pid)
            finally:
                os._exit(0)
        os.close(pipe_r)
        self.watchdog_w = pipe_w

    def _make_lab_dir(self) -> None:
        """The runtime folders, made private, and never through a link: the lab
        writes, binds and later removes things in its folder as root."""
        for folder, parents in ((protocol.runtime_root(), True), (protocol.lab_dir(self.name), False)):
            try:
                folder.mkdir(mode=0o700, parents=parents, exist_ok=True)
                st = os.lstat(folder)
            except OSError as exc:
                raise LabError(f"cannot make the runtime folder {folder}: {exc.strerror}") from None
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a file"
                raise LabError(f"{folder} is {what}, not a folder; the lab will not use it: remove it")
            if st.st_uid != os.geteuid():
                raise LabError(f"{folder} belongs to uid {st.st_uid}, not to this user; the lab will not use it")
        try:
            os.chmod(protocol.lab_dir(self.name), 0o700, follow_symlinks=False)
        except OSError as exc:
            raise LabError(f"cannot make {protocol.lab_dir(self.name)} private: {exc.strerror}") from None

    def _lock_is_current(self) -> bool:
        try:
            return os.fstat(self.lock_fd).st_ino == os.stat(protocol.lock_path(self.name)).st_ino
        except FileNotFoundError:
            return False

    def _lock(self, state: dict) -> bool:
        """Take the lab's lock. While the run that holds it is dead (its
        watchdog is clearing up after it), wait a moment instead of refusing."""
        deadline = time.monotonic() + WATCHDOG_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if _alive(state.get("pid")) or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
                state = read_state(self.name) or {}

    def _save_state(self) -> None:
        """Record what the lab has made; raises RealizeError (naming the file)
        when the record cannot be written: nothing more may be made then."""
        try:
            self._write_state()
        except OSError as exc:
            path = protocol.state_path(self.name)
            raise RealizeError(f"cannot write the lab's state file {path}: {exc.strerror}") from None

    def _record(self) -> None:
        """on_record for the lab: while it is taken down, a failed record is
        said, not raised; the teardown must go on."""
        try:
            self._save_state()
        except RealizeError as exc:
            if self.state != "stopping":
                raise
            self.log("warning", str(exc))

    def _write_state(self) -> None:
        lab = self.lab
        _write_json(
            protocol.state_path(self.name),
            {
                "pid": os.getpid(),
                "file": self.file,
                "started": time.time(),
                "namespaces": lab.namespaces if lab else [],
                "lent": lab.lent if lab else [],
                "sockets": lab.sockets if lab else [],
            },
        )

    def start(self) -> None:
        try:
            self.acquire()
        except RealizeError as exc:  # the first state record could not be written
            raise LabError(str(exc)) from None
        # The worker is every guest's switch: when guests' programs take all
        # the CPU, a starved worker drops their frames. Ask for a little more
        # of it than they get, as the kernel's own networking does.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, WORKER_NICE)
        control = ControlServer(
            self.loop, protocol.control_path(self.name), self._on_client_message, self._hello, self._on_fault
        )
        try:
            control.start()
        except OSError as exc:
            raise LabError(f"cannot serve the control socket {control.path}: {exc.strerror}") from None
        self.control = control
        self.set_state("starting")
        lab = self.lab = Lab(
            self.name,
            self.topology,
            protocol.lab_dir(self.name),
            self.loop,
            self.log,
            allow_host=self.allow_host,
            on_record=self._record,
        )
        try:
            realize(lab)
        except RealizeError as exc:
            raise LabError(str(exc)) from None
        self.stats = Stats(lab)
        self.set_state("running")

    def _hello(self) -> list[bytes]:
        return [
            protocol.encode(
                "hello", lab=self.name, file=self.file, pid=os.getpid(), protocol=protocol.PROTOCOL_VERSION
            ),
            protocol.encode("state", state=self.state, reason=None),
        ]

    def _on_client_message(self, msg: dict) -> None:
        """One client message; MessageError says why it is refused."""
        if msg["type"] == "stop":
            self.log("info", "stop requested by a control client")
            self.loop.stop()
        elif msg["type"] == "capture":
            self._capture(msg.get("hub"), msg.get("path"))

    def _on_fault(self, what: str) -> None:
        self.log("error", f"internal error {what} (the lab goes on):\n{traceback.format_exc(limit=8)}")

    def _capture(self, hub_name: object, path: object) -> None:
        hubs = {h.name: h for h in self.lab.all_hubs} if self.lab else {}
        hub = hubs.get(hub_name) if isinstance(hub_name, str) else None
        if hub is None:
            shown = json.dumps(hub_name)[:40] if isinstance(hub_name, (str, int, float)) else type(hub_name).__name__
            why = f"capture: no hub {shown}; hubs are {', '.join(hubs) or 'none'}"
            self.log("error", why)
            raise MessageError(why)
        if path is not None and not (isinstance(path, str) and os.path.isabs(path) and "\0" not in path):
            why = "capture: give an absolute path for the pcap file (a string without NUL bytes), or null to stop"
            self.log("error", why)
            raise MessageError(why)
        if hub.capture is not None:
            self._end_capture(hub)
        if path is None:
            return
        try:
            hub.capture = Capture(Path(path))
        except OSError as exc:
            why = f"capture: cannot write {path}: {exc.strerror}"
            self.log("error", why)
            raise MessageError(why) from None
        self.log("info", f"capturing {hub.name} to {path}")

    def _end_capture(self, hub: Hub) -> None:
        done, hub.capture = hub.capture, None
        done.close()
        if done.error:
            self.log("error", f"capture of {hub.name} failed: {done.error}; {done.frames} frames in {done.path}")
        else:
            self.log("info", f"capture of {hub.name} stopped: {done.frames} frames in {done.path}")

    # -- run -------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.loop.running:
            return
        now = time.monotonic()
        for hub in self.lab.all_hubs:
            if hub.capture is not None and hub.capture.error:
                self._end_capture(hub)
            for level, message in hub.check_loops(now):
                self.log(level, message)
        snapshot = self.stats.snapshot()
        if self.out is not None:
            line = json.dumps(snapshot) if self.json_lines else format_table(snapshot)
            try:
                print(line, file=self.out, flush=True)
            except (BrokenPipeError, ValueError):
                self.out = None
        if self.control and self.control.clients:
            self.control.broadcast(protocol.encode("stats", **snapshot))
            samples = self.stats.samples()
            if samples:
                self.control.broadcast(protocol.encode("samples", samples=samples))
        else:
            self.stats.drop_samples()
        self.loop.call_later(self.interval, self._tick)

    def run(self) -> None:
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self.loop.add(self._wake_r.fileno(), self._on_wake)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            if self.duration is not None:
                self.loop.call_later(self.duration, self.loop.stop)
            self.loop.call_later(self.interval, self._tick)
            self.loop.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(-1)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.loop.stop()

    def _on_wake(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(512)

    # -- stop ------------------------------------------------------------------------

    def stop(self, reason: str | None = None) -> None:
        self.set_state("stopping", reason)
        for hub in self.lab.all_hubs if self.lab else ():
            if hub.capture is not None:
                self._end_capture(hub)
        if self.stats is not None:
            self.stats.close()  # its netlink sockets hold the namespaces
            self.stats = None
        if self.lab is not None:
            teardown(self.lab)
            self.lab = None
        if self.lock_fd >= 0:  # ours to remove only while we hold the lab
            with contextlib.suppress(FileNotFoundError):
                protocol.state_path(self.name).unlink()
        self.set_state("failed" if reason else "stopped", reason)
        if self.control:
            self.control.close()
            self.control = None
        if self.watchdog_w >= 0:
            os.close(self.watchdog_w)  # the watchdog sees EOF, finds no state file, and exits
            self.watchdog_w = -1
        if self.lock_fd >= 0:
            release_lab_dir(self.name)
            os.close(self.lock_fd)
            self.lock_fd = -1
        self.loop.close()
        self._wake_r.close()
        self._wake_w.close()


def run_worker(worker: Worker) -> int:
    """Start, run until told to stop, stop; 0 on a clean run, 1 if it could not
    start (the message says why; nothing is left behind)."""
    try:
        try:
            worker.start()
        except LabError as exc:
            worker.log("error", str(exc))
            worker.stop(str(exc))
            return 1
        except BaseException:
            worker.stop("interrupted while starting")
            raise
        worker.log("info", f"lab {worker.name} is running ({len(worker.lab.namespaces)} namespaces)")
        try:
            worker.run()
        except Exception as exc:  # a fault of the worker itself: said as such, and the lab still goes
            reason = f"internal error: {type(exc).__name__}: {exc}"
            worker.log("error", f"{reason}\n{traceback.format_exc(limit=8)}")
            worker.stop(reason)
            return EX_SOFTWARE
        except BaseException:
            worker.stop()
            raise
        worker.stop()
        worker.log("info", f"lab {worker.name} stopped; everything it made is removed")
        return 0
    except KeyboardInterrupt:
        return 130
