"""The worker's Loop: timers wake it through its timerfd, to the nanosecond,
never through epoll's timeout, which is whole milliseconds rounded up (each
emulated delay came out up to 1 ms late)."""

from __future__ import annotations

import threading
import time

from qnet_tui.lab.loop import Loop


class SpyEpoll:
    """An epoll that records the timeout of each wait."""

    def __init__(self, epoll) -> None:
        self.epoll, self.timeouts = epoll, []

    def poll(self, timeout: float = -1, maxevents: int = -1):
        self.timeouts.append(timeout)
        return self.epoll.poll(timeout, maxevents)

    def __getattr__(self, name: str):
        return getattr(self.epoll, name)


def run_briefly(loop: Loop) -> None:
    """Run the loop in a thread: a loop that never wakes fails the test, not the run."""
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the loop did not wake for its timers"


def test_timers_wake_the_loop_through_its_alarm_not_a_millisecond_timeout() -> None:
    loop = Loop()
    spy = loop.epoll = SpyEpoll(loop.epoll)
    armed: list[float] = []
    set_alarm = loop.alarm.set
    loop.alarm.set = lambda when: (armed.append(when), set_alarm(when))
    wanted: list[float] = []

    def at(when: float, callback) -> None:
        wanted.append(when)
        loop.call_at(when, callback)

    # Each timer is set from the one before, so it is always ahead, however late the thread runs.
    at(time.monotonic() + 0.0015, lambda: at(time.monotonic() + 0.0015, loop.stop))
    try:
        run_briefly(loop)
    finally:
        loop.close()
    assert len(wanted) == 2
    assert spy.timeouts and set(spy.timeouts) == {-1.0}  # every wait ends on an fd: the alarm's
    assert armed == wanted  # set to each timer's own time, unrounded


def test_a_timer_due_when_the_alarm_last_rang_still_wakes_the_loop() -> None:
    loop = Loop()
    when = time.monotonic() + 0.001
    try:
        loop.call_at(when, loop.stop)
        run_briefly(loop)
        assert loop.alarm.armed is None  # it rang; the same time again must set it anew
        loop.call_at(when, loop.stop)
        run_briefly(loop)
    finally:
        loop.close()
