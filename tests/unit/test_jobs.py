"""The worker's slow work runs off its loop (lab/jobs.py): a job's done runs
on the loop once the thread is through, the loop serving the rest
meanwhile; a stopping lab waits for a file being written, and drops the
rest. And a ring's file is written whole, or not left at all."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from qnet_tui.lab import jobs
from qnet_tui.lab.capture import new_file, write_new
from qnet_tui.lab.jobs import Job, Jobs
from qnet_tui.lab.loop import Loop

from .test_loop import run_briefly


def test_a_job_ends_on_the_loop_which_served_the_rest_meanwhile() -> None:
    loop, served = Loop(), threading.Event()
    pool = Jobs(loop)
    ended: list[tuple[object, threading.Thread]] = []
    loop_thread: list[threading.Thread] = []

    def serve() -> None:
        loop_thread.append(threading.current_thread())
        served.set()

    def work() -> str:
        # Done only once the loop has run a timer: work run on the loop would wait here in vain.
        assert served.wait(10), "the loop served nothing while the job ran"
        return "written"

    def done(job: Job) -> None:
        ended.append((job.result(), threading.current_thread()))
        loop.stop()

    pool.start(work, done)
    loop.call_later(0.01, serve)
    try:
        run_briefly(loop)
    finally:
        pool.close(0)
        loop.close()
    assert ended == [("written", loop_thread[0])]
    assert pool.running == []


def test_what_a_job_raised_is_raised_by_its_result_on_the_loop() -> None:
    loop = Loop()
    pool = Jobs(loop)
    errors: list[OSError] = []

    def done(job: Job) -> None:
        with pytest.raises(OSError) as raised:
            job.result()
        errors.append(raised.value)
        loop.stop()

    pool.start(lambda: os.read(-1, 1), done)
    try:
        run_briefly(loop)
    finally:
        pool.close(0)
        loop.close()
    assert len(errors) == 1 and errors[0].strerror == "Bad file descriptor"


def test_closing_waits_for_a_file_being_written_and_drops_the_rest() -> None:
    loop = Loop()
    pool = Jobs(loop)
    go, never = threading.Event(), threading.Event()
    events: list[str] = []

    def slow_write() -> str:
        go.wait(10)
        return "whole"

    pool.start(slow_write, lambda job: events.append(f"saved {job.result()}"), must_finish=True)
    dropped = pool.start(
        never.wait, lambda job: events.append("compiled"), abandon=lambda job: events.append("dropped")
    )
    threading.Timer(0.05, go.set).start()
    try:
        pool.close(10)
        assert events == ["saved whole", "dropped"] and pool.fd == -1
        never.set()  # its thread ends after the close: nothing runs, nothing is written to a closed fd
        dropped.thread.join(10)
        assert events == ["saved whole", "dropped"]
    finally:
        never.set()
        loop.close()


def test_a_file_not_written_in_time_is_said_and_left_to_its_thread() -> None:
    loop = Loop()
    pool = Jobs(loop)
    go = threading.Event()
    events: list[str] = []
    pool.start(go.wait, lambda job: events.append("saved"), abandon=lambda job: events.append("late"), must_finish=True)
    started = time.monotonic()
    try:
        pool.close(0.1)
        assert events == ["late"] and time.monotonic() - started < 5
    finally:
        go.set()
        loop.close()


def test_jobs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_JOBS", 2)
    loop = Loop()
    pool = Jobs(loop)
    go = threading.Event()
    try:
        pool.start(go.wait, lambda job: None)
        assert not pool.full
        pool.start(go.wait, lambda job: None)
        assert pool.full
    finally:
        go.set()
        pool.close(0)
        loop.close()


def test_a_file_is_written_whole_past_one_writev(tmp_path: Path) -> None:
    blocks = [bytes([i % 256]) * (i % 97 + 1) for i in range(3 * os.sysconf("SC_IOV_MAX") + 5)]
    path = tmp_path / "ring.pcapng"
    assert write_new(new_file(path), path, blocks) == sum(map(len, blocks))
    assert path.read_bytes() == b"".join(blocks)
    with pytest.raises(FileExistsError):  # never over a file, or through a link
        new_file(path)


def test_a_write_that_fails_removes_what_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "full.pcapng"
    new = new_file(path)
    os.write(new, b"part")
    os.close(new)
    full = os.open("/dev/full", os.O_WRONLY | os.O_CLOEXEC)  # every write: ENOSPC
    with pytest.raises(OSError) as raised:
        write_new(full, path, [b"block"] * 10)
    assert raised.value.strerror == "No space left on device"
    assert not path.exists()
