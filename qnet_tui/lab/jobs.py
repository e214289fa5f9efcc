"""Slow work off the forwarding loop: a thread per job, its end told to the
loop through one eventfd, where the job's `done` runs.

Writing a ring of up to 256 MiB to a file, or compiling a capture filter
(libpcap may look a host name up: seconds), would stall every hub of the
lab for as long on the loop. A job's work touches nothing the loop owns;
its `done`, on the loop, does. os.write and ctypes calls release the GIL,
so the loop forwards meanwhile (pcap_compile is thread-safe since libpcap
1.8; the app compiles filters in threads too).

A job that writes a file must finish: when the lab stops, close waits for
it (bounded). The others are dropped then (`abandon`, on the loop, frees
what they held)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from qnet_tui.lab.loop import Loop

MAX_JOBS = 8  # running at once; a client asking for more is refused, not queued


class Job:
    def __init__(
        self,
        work: Callable[[], Any],
        done: Callable[[Job], None],
        abandon: Callable[[Job], None] | None,
        must_finish: bool,
        what: str,
        run: Callable[[Job], None],
    ) -> None:
        self.work, self.done, self.abandon = work, done, abandon
        self.must_finish = must_finish
        self.what = what
        self.value: Any = None
        self.error: Exception | None = None
        # A daemon: a host name libpcap is still looking up must not keep a stopped lab's process alive.
        self.thread = threading.Thread(target=run, args=(self,), name=f"qnet-tui: {what}", daemon=True)

    def result(self) -> Any:
        """What work returned; what it raised is raised here, on the loop (as a Future's)."""
        if self.error is not None:
            raise self.error
        return self.value


class Jobs:
    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()  # guards _finished and fd between the threads and the loop
        self._finished: list[Job] = []
        self.running: list[Job] = []  # started, their done not yet run (the loop's alone)
        loop.add(self.fd, self._on_wake)

    @property
    def full(self) -> bool:
        return len(self.running) >= MAX_JOBS

    def start(
        self,
        work: Callable[[], Any],
        done: Callable[[Job], None],
        *,
        abandon: Callable[[Job], None] | None = None,
        must_finish: bool = False,
        what: str = "",
    ) -> Job:
        """Run work in a thread of its own; done(job) on the loop once it returned or raised."""
        job = Job(work, done, abandon, must_finish, what, self._run)
        self.running.append(job)
        job.thread.start()
        return job

    def _run(self, job: Job) -> None:
        try:
            job.value = job.work()
        except Exception as exc:  # carried to the loop, where done sees it raised by job.result()
            job.error = exc
        with self._lock:
            if self.fd >= 0:  # closed: the loop no longer listens (and the number may be another fd's now)
                self._finished.append(job)
                os.eventfd_write(self.fd, 1)

    def _take(self) -> list[Job]:
        with self._lock:
            finished, self._finished = self._finished, []
        for job in finished:
            self.running.remove(job)
        return finished

    def _on_wake(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)
        for job in self._take():
            job.done(job)

    def close(self, wait: float) -> None:
        """The lab stops: wait up to `wait` s for the jobs that must finish and
        run their done; abandon the rest, those too if they had not finished
        (their threads go on while the process lasts)."""
        deadline = time.monotonic() + wait
        for job in [j for j in self.running if j.must_finish]:
            job.thread.join(max(0.0, deadline - time.monotonic()))
        self.loop.remove(self.fd)
        with self._lock:
            os.close(self.fd)
            self.fd = -1
        for job in self._take():
            if job.must_finish:
                job.done(job)
            elif job.abandon is not None:
                job.abandon(job)
        late, self.running = self.running, []
        for job in late:
            if job.abandon is not None:
                job.abandon(job)
