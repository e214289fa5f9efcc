"""`qnet-tui capture FILE NODE [-w FILE|-] [--ring S] [--filter EXPR]`:
Wireshark live. pcapng of a running lab's hub, streamed to stdout (for
`| tshark -r -` or `| wireshark -k -i -`) or a file, with one interface per
port (lab/capture.py).

How: this process makes a pipe and passes its write end to the worker over
the control socket (SCM_RIGHTS, with a `capture_stream` message); the worker
writes pcapng into it without ever blocking (what a full pipe cannot take is
missed, counted, and said in the stream); this process copies the pipe to
its output. The stream lasts until Ctrl-C (the connection closes, the worker
closes its end, the rest is copied), the lab stops, or the reader goes
(EPIPE). With --ring the worker keeps the last seconds instead, and writes
them to a new file on Enter or SIGUSR1."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import time
from pathlib import Path

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, Session, check_running, read_topology
from qnet_tui.lab.elsewhere import end_when_reader_goes
from qnet_tui.model.diagnostics import printable
from qnet_tui.pcapfilter import FilterError, compile_filter

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20  # the most an unprivileged pipe may hold by default: room for bursts
DRAIN_S = 5.0  # after Ctrl-C, how long the rest of the stream may take to come


class CaptureError(AskError):
    pass


def open_stream(session: Session, message: protocol.CaptureStream, fd: int | None) -> protocol.Capturing:
    session.start(message, fd)
    return session.wait(protocol.Capturing)


def _say(message: str) -> None:
    print(f"qnet-tui capture: {printable(message)}", file=sys.stderr, flush=True)


def numbered(path: Path) -> Path:
    """path if it is free, else path-2, path-3 ... (before the suffix: last-2.pcapng)."""
    n = 1
    candidate = path
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def capture_command(
    file: str, node: str, out: str, ring: float | None, filter_text: str | None, host: str | None = None
) -> int:
    try:
        t = read_topology(file, node, host=host)
        if filter_text:
            try:
                compile_filter(filter_text)  # said here, before anything starts (the worker checks again)
            except FilterError as exc:
                raise CaptureError(f"bad {exc}") from None
        if ring is not None and out == "-":
            raise CaptureError("--ring needs -w FILE: the file the last seconds are written to")
        if host is not None:
            end_when_reader_goes()  # run for another machine: its ssh going ends it
        check_running(file, str(t.name))
        if ring is not None:
            return _ring(str(t.name), node, Path(out).absolute(), ring, filter_text)
        return _stream(str(t.name), node, out, filter_text)
    except AskError as exc:  # a CaptureError too
        _say(str(exc))
        return 1


class Signals:
    """SIGINT, SIGTERM and SIGUSR1 as bytes on a pipe select() waits on."""

    WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.old_fd = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        self.old = {s: signal.signal(s, lambda *_: None) for s in self.WATCHED}

    def take(self) -> list[int]:
        with contextlib.suppress(BlockingIOError):
            return list(os.read(self.r, 64))
        return []

    def close(self) -> None:
        signal.set_wakeup_fd(self.old_fd)
        for s, handler in self.old.items():
            signal.signal(s, handler)
        os.close(self.r)
        os.close(self.w)


def _stream(lab: str, node: str, out: str, filter_text: str | None) -> int:
    if out == "-":
        out_fd, path = sys.stdout.fileno(), None
    else:
        path = Path(out)
        try:
            out_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise CaptureError(f"{out} exists; give a new file name") from None
        except OSError as exc:
            raise CaptureError(f"cannot write {out}: {exc.strerror}") from None
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    session, signals = Session(lab), Signals()
    written = 0
    try:
        try:
            started = open_stream(session, protocol.CaptureStream(node, filter_text or None), w)
        finally:
            os.close(w)  # the worker holds the write end now: its closing is our EOF
        _say(
            f"{started.hub} (ports {', '.join(started.ports) or 'none yet'}) to {out if path else 'stdout'}; "
            "Ctrl-C stops"
        )
        stopping: float | None = None
        while True:
            watched = [r, signals.r] + ([session.sock] if stopping is None and not session.gone else [])
            ready = select.select(watched, [], [], 0.5 if stopping else None)[0]
            if signals.r in ready and {signal.SIGINT, signal.SIGTERM} & set(signals.take()) and stopping is None:
                stopping = time.monotonic()
                session.close()  # the worker ends the stream and closes its end: the rest comes, then EOF
            if r in ready:
                data = os.read(r, 1 << 20)
                if not data:
                    break
                try:
                    _write_all(out_fd, data)
                except BrokenPipeError:
                    return 0  # the reader went (tshark -c, a closed Wireshark): nothing to say
                written += len(data)
            if stopping is None and session.sock in ready:
                session.read()
            if stopping is not None and time.monotonic() - stopping > DRAIN_S:
                _say(f"the lab did not end the stream within {DRAIN_S:g} s; stopped without its last frames")
                break
        if path is not None:
            os.fsync(out_fd)
        if stopping is None:  # the worker ended it: the lab stops, or the hub went
            if session.ended is None:
                with contextlib.suppress(CaptureError):
                    session.wait(protocol.CaptureEnded, 2.0)
            ended = session.ended
            reason = ended.reason if ended else f"lab {lab} stopped"
            missed = f", {ended.missed} missed (the reader was slow)" if ended and ended.missed else ""
            _say(f"{reason}; the stream ended{f' ({ended.frames} frames{missed})' if ended else ''}")
        elif path is not None:
            _say(f"stopped; {written} bytes in {out}")
        return 0
    finally:
        signals.close()
        session.close()
        os.close(r)
        if path is not None:
            os.close(out_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ring(lab: str, node: str, out: Path, seconds: float, filter_text: str | None) -> int:
    if not out.parent.is_dir():
        raise CaptureError(f"no such folder: {out.parent}")
    session, signals = Session(lab), Signals()
    try:
        started = open_stream(session, protocol.CaptureStream(node, filter_text or None, seconds), None)
        tty = os.isatty(sys.stdin.fileno())
        how = "Enter or " if tty else ""
        _say(
            f"keeping the last {seconds:g} s of {started.hub} (at most 256 MiB); {how}"
            f"kill -USR1 {os.getpid()} writes them to {out} (or a numbered name), Ctrl-C stops"
        )
        watched = [session.sock, signals.r] + ([sys.stdin.fileno()] if tty else [])
        while True:
            ready = select.select(watched, [], [])[0]
            save = False
            if signals.r in ready:
                taken = set(signals.take())
                if {signal.SIGINT, signal.SIGTERM} & taken:
                    return 0
                save = signal.SIGUSR1 in taken
            if tty and sys.stdin.fileno() in ready:
                if not os.read(sys.stdin.fileno(), 1024):
                    watched.remove(sys.stdin.fileno())  # stdin closed: SIGUSR1 still saves
                save = True
            if session.sock in ready:
                session.read()
                if session.gone or session.ended:
                    reason = session.ended.reason if session.ended else f"lab {lab} stopped"
                    _say(f"{reason}; the ring is gone")
                    return 0
            if save:
                _save(session, started.hub, out)
    finally:
        signals.close()
        session.close()


def _save(session: Session, hub: str, out: Path) -> None:
    target = numbered(out)
    session.send(protocol.CaptureSave(hub, str(target)))
    try:
        saved = session.wait(protocol.CaptureSaved)
    except CaptureError as exc:
        _say(str(exc))
        return
    _say(f"wrote the last {saved.seconds:g} s of {hub} to {saved.path}: {saved.frames} frames, {saved.bytes} bytes")
