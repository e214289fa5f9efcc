"""The app's side of a running lab: starts the worker as its own process and
follows its control socket in a plain thread that knows no widgets; what it
hears goes to the app through callbacks (which post messages).

When the app falls behind (a flood of frames on a busy machine), statistics
and samples would pile up in its message queue: the client holds at most
IN_FLIGHT of each kind unhandled and skips the rest, counting what it
skipped. Everything else (state, logs, errors) always goes through."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from qnet_tui import protocol

CONNECT_TIMEOUT_S = 30.0
STATS_INTERVAL_S = 0.2  # panes refresh five times a second
# Unhandled messages of a kind the app may have queued before more are skipped.
IN_FLIGHT: dict[type, int] = {protocol.Stats: 2, protocol.Samples: 4}

Heard = protocol.WorkerMessage | protocol.Malformed


class Backlog:
    """Per kind, messages posted to the app and not handled yet. The client's
    thread counts what it posts, the app's what it handles (one writer each,
    so no lock); a message the app drops for a newer one (can_replace) is
    counted handled with the newer one, by sequence number."""

    def __init__(self, limits: dict[type, int]) -> None:
        self.limits = limits
        self.posted = dict.fromkeys(limits, 0)
        self.handled = dict.fromkeys(limits, 0)
        self.skipped = dict.fromkeys(limits, 0)

    def admit(self, kind: type) -> int | None:
        """The message's sequence number, or None: skip it, the app is behind."""
        limit = self.limits.get(kind)
        if limit is None:
            return 0
        if self.posted[kind] - self.handled[kind] >= limit:
            self.skipped[kind] += 1
            return None
        self.posted[kind] += 1
        return self.posted[kind]

    def done(self, kind: type, seq: int) -> None:
        if kind in self.handled:
            self.handled[kind] = max(self.handled[kind], seq)


class LabClient:
    def __init__(
        self,
        yaml_text: str,
        lab: str,
        on_message: Callable[[Heard, int], None],
        on_exit: Callable[[int, str], None],
        allow_host: bool = False,
    ) -> None:
        self.yaml_text = yaml_text
        self.allow_host = allow_host
        self.lab = lab
        self.on_message = on_message
        self.on_exit = on_exit
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self._file: Path | None = None
        self._stderr: list[str] = []
        self.backlog = Backlog(IN_FLIGHT)

    def start(self) -> None:
        """Start the worker on the topology as it is on screen (saved or not).
        Called from the app's main thread: the worker's death signal is tied
        to the thread that started it."""
        fd, name = tempfile.mkstemp(prefix=f"qnet-{self.lab}-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.yaml_text)
            self.proc = self._spawn(name)
        except OSError:
            os.unlink(name)  # a full /tmp, no python: nothing of this start stays behind
            raise
        self._file = Path(name)
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._follow, name=f"lab-{self.lab}", daemon=True).start()

    def rewrite(self, yaml_text: str) -> None:
        """The lab took a change (apply): its file says so too, for `qnet-tui
        exec` and the like, which find nodes in it. Blocking: call off the UI."""
        if self._file is None:
            return
        new = self._file.with_name(self._file.name + ".new")
        new.write_text(yaml_text)
        new.replace(self._file)
        self.yaml_text = yaml_text

    def _spawn(self, name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "qnet_tui", "run", name, "--interval", str(STATS_INTERVAL_S)),
                *("--exit-with-parent", str(os.getpid())),
                *(["--allow-host"] if self.allow_host else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the terminal's keys and signals are the app's
        )

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            del self._stderr[:-50]

    def _follow(self) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        try:
            while (sock := self._connect(deadline)) is not None:
                if self._relay(sock):
                    break
                # Another process's lab of that name (`qnet-tui run` in a terminal): not
                # ours to show or stop. Ours will say why it cannot start, and exit.
                sock.close()
                time.sleep(0.05)
        except (OSError, protocol.ProtocolError):
            pass
        finally:
            if self.proc.poll() is None and self.sock is None:
                self.proc.terminate()  # never reached its socket: give up on it
            code = self.proc.wait()
            if self.sock is not None:
                self.sock.close()
            self._stderr_reader.join(timeout=1.0)  # the last lines, with the reason it failed
            errors = [x.removeprefix("qnet-tui: error: ") for x in self._stderr if ": error: " in x]
            reason = errors[-1] if errors else (f"the worker exited with status {code}" if code else "")
            if code < 0:
                reason = f"the worker was killed by signal {signal.Signals(-code).name}"
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.unlink()
            self.on_exit(code, reason)

    def _connect(self, deadline: float) -> socket.socket | None:
        """The lab's control socket, once it listens; None when the worker is
        gone or did not get there by the deadline."""
        path = protocol.control_path(self.lab)
        while self.proc.poll() is None and time.monotonic() < deadline:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
                time.sleep(0.05)
        return None

    def _relay(self, sock: socket.socket) -> bool:
        """Pass on what the worker says until it hangs up; False, at once, if
        the socket is another worker's: the first message, hello, names its pid."""
        lines = protocol.LineBuffer()
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return self.sock is not None
            for line in lines.feed(data):
                msg = protocol.decode(line, protocol.WORKER)
                if self.sock is None:
                    if not isinstance(msg, protocol.Hello) or msg.pid != self.proc.pid:
                        return False
                    self.sock = sock  # ours: from now on stop() and send() go here
                seq = self.backlog.admit(type(msg))
                if seq is not None:
                    self.on_message(msg, seq)

    def handled(self, msg: Heard, seq: int) -> None:
        """The app has handled msg: room for the next of its kind."""
        self.backlog.done(type(msg), seq)

    def send(self, msg: protocol.ClientMessage) -> bool:
        """A message to the worker; False if there is no connection (yet)."""
        if self.sock is None:
            return False
        try:
            self.sock.sendall(protocol.encode(msg))
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Ask the worker to stop; it tears the lab down and exits."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(protocol.encode(protocol.Stop()))
                return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    @property
    def file(self) -> Path | None:
        """The topology file the worker runs (a private copy), for `qnet-tui exec`."""
        return self._file

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None
