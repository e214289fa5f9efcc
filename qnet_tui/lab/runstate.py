"""A lab's run state on disk: its private runtime folder, the lock that keeps
one run per lab, the state file that lists what the run has made, the
watchdog that removes those things when the worker dies without stopping,
and the removal of what a killed run left behind."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from qnet_tui import protocol
from qnet_tui.lab import hostif, netns, unixpaths, vm, vmguests
from qnet_tui.model.atomic import atomic_write

LOCK_WAIT_S = 10.0  # how long a dead run's lock may stay held while its watchdog clears up


class LabError(Exception):
    """Why the lab cannot start; said to the user as is."""


# -- the state file --------------------------------------------------------------


def read_state(lab: str) -> dict | None:
    try:
        with open(protocol.state_path(lab)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write_state(lab: str, state: dict) -> None:
    """Replace the state file whole; raises model.atomic.WriteFailed."""
    atomic_write(protocol.state_path(lab), json.dumps(state).encode())


def remove_leftovers(lab: str, state: dict | None, log: Callable[[str, str], None] | None = None) -> list[str]:
    """Give back the interfaces a dead run of `lab` borrowed from this
    machine, delete the namespaces it recorded as its own, the socket files
    it made (only while each is the very file it made), and its state file.
    Never anything it did not record, nor another lab's."""
    removed = []
    if state:
        warn = (lambda message: log("warning", f"lab {lab}: {message}")) if log else None
        removed += unixpaths.remove_recorded(state.get("sockets"), warn)
        vms = state.get("vms")
        for record in vms if isinstance(vms, list) else []:
            guest = record.get("guest") if isinstance(record, dict) else None
            if isinstance(guest, str) and "/" not in guest:
                # Its pid file in the lab's own folder, whatever the record says.
                if vm.end_recorded(vm.VmFiles(protocol.lab_dir(lab), guest).pidfile):
                    removed.append(f"VM {guest}")
                vmguests.remove_files(protocol.lab_dir(lab), guest)
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
    # A run killed while it replaced its state file leaves the temporary one.
    state = protocol.state_path(lab)
    for stale in state.parent.glob(f".{state.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(stale).st_mode):
                stale.unlink()
    return removed


# -- the folder and the lock ----------------------------------------------------------


def make_lab_dir(lab: str) -> None:
    """The runtime folders, made private, and never through a link: the lab
    writes, binds and later removes things in its folder as root."""
    for folder, parents in ((protocol.runtime_root(), True), (protocol.lab_dir(lab), False)):
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
        os.chmod(protocol.lab_dir(lab), 0o700, follow_symlinks=False)
    except OSError as exc:
        raise LabError(f"cannot make {protocol.lab_dir(lab)} private: {exc.strerror}") from None


def take_lock(lab: str) -> int:
    """The fd holding the lab's lock, in its freshly made folder. Raises
    LabError when another run holds it."""
    while True:
        make_lab_dir(lab)
        path = protocol.lock_path(lab)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # the folder went with the run that just stopped: make it again
        except OSError as exc:
            raise LabError(f"cannot create {path}: {exc.strerror}") from None
        # While the run that holds it is dead (its watchdog is clearing up
        # after it), wait a moment instead of refusing.
        if not wait_for_lock(fd, lambda: alive((read_state(lab) or {}).get("pid"))):
            state = read_state(lab) or {}
            os.close(fd)
            raise LabError(
                f"lab {lab} is already running (pid {state.get('pid', '?')}, "
                f"from {state.get('file', '?')}); stop it first, or give this topology another name"
            )
        if _is_current(fd, lab):
            return fd
        os.close(fd)  # its holder removed it as it stopped: take the new one


def wait_for_lock(fd: int, give_up: Callable[[], bool], wait_s: float = LOCK_WAIT_S) -> bool:
    """Lock fd exclusively, retrying while it is held until give_up() says
    so or wait_s pass; whether it is ours."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if give_up() or time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _is_current(fd: int, lab: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(protocol.lock_path(lab)).st_ino
    except FileNotFoundError:
        return False


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


def release_lab_dir(lab: str) -> None:
    """Remove the lab's lock and its folder. Only by the lock's holder: whoever
    waits on the lock sees it unlinked under them and takes a fresh one."""
    with contextlib.suppress(OSError):
        control = protocol.control_path(lab)
        if stat.S_ISSOCK(os.lstat(control).st_mode):  # a killed worker's, left in place
            control.unlink()
    with contextlib.suppress(OSError):
        kept = protocol.topology_path(lab)  # a share's file (lab/machines.py)
        if stat.S_ISREG(os.lstat(kept).st_mode):
            kept.unlink()
    with contextlib.suppress(OSError):
        protocol.lock_path(lab).unlink()
        protocol.lab_dir(lab).rmdir()  # only when empty: nothing of anyone else's goes


def alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the watchdog -------------------------------------------------------------------


def start_watchdog(lab: str) -> int:
    """Fork the watchdog of this process's run of lab; returns the pipe's
    write end, which this process holds open until it has stopped cleanly."""
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    worker_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(pipe_w)
            _watchdog(lab, pipe_r, worker_pid)
        finally:
            os._exit(0)
    os.close(pipe_r)
    return pipe_w


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
    if not wait_for_lock(lock, lambda: False):
        return  # a new run holds the lab: it removes what is left when it starts
    state = read_state(lab)
    if not state or state.get("pid") != worker_pid:
        return
    removed = remove_leftovers(lab, state)
    release_lab_dir(lab)
    if removed:
        print(f"qnet-tui: the worker of lab {lab} died; removed {', '.join(removed)}", file=sys.stderr)
