"""The worker's event loop: one thread, epoll over every fd, and timers.

Timers wake the loop through a timerfd armed at the earliest one's due time,
not through epoll's timeout: that timeout is whole milliseconds, rounded up,
so each emulated delay (lab/impair.py) came out 0-1 ms late. With delay=50ms
each way, in alternating runs of benchmarks/impair_accuracy.py, ping's median
RTT grew by 101.5-102.0 ms with the timeout, and by 100.4-101.1 ms with the
timerfd (but for one run under a load spike); the floor (p5) went from
100.9-101.0 to 100.3-100.5 ms. Where there is no timerfd, the millisecond
timeout remains."""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import os
import select
import time
from collections.abc import Callable

Handler = Callable[[int], None]  # called with the epoll event mask

CLOCK_MONOTONIC = 1  # time.monotonic()'s clock on Linux
TFD_NONBLOCK, TFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class Alarm:
    """A one-shot timerfd on CLOCK_MONOTONIC, set to an absolute time."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p)
        self.fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self._spec = _Itimerspec()
        self.armed: float | None = None  # when it is set to ring, until it rang

    def set(self, when: float) -> None:
        """Ring at time.monotonic() `when` (at once, if that is past)."""
        ns = max(1, round(when * 1e9))  # zero would disarm it
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.armed = when

    def rang(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up that found nothing to read
            os.read(self.fd, 8)
        self.armed = None

    def close(self) -> None:
        os.close(self.fd)


def _alarm() -> Alarm | None:
    try:
        return Alarm()
    except (OSError, AttributeError):  # no timerfd (or no libc to reach it)
        return None


class Loop:
    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Handler] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.running = False
        self.alarm = _alarm()
        if self.alarm is not None:
            self.add(self.alarm.fd, self.alarm.rang)

    def add(self, fd: int, handler: Handler, events: int = select.EPOLLIN) -> None:
        self.handlers[fd] = handler
        self.epoll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self.epoll.modify(fd, events)

    def remove(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # already closed
                self.epoll.unregister(fd)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._seq), callback))

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Call back at time.monotonic() `when` (or on the next turn, if past)."""
        heapq.heappush(self.timers, (when, next(self._seq), callback))

    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        self.running = True
        poll, handlers, timers, alarm = self.epoll.poll, self.handlers, self.timers, self.alarm
        while self.running:
            timeout = -1.0
            if timers:
                due = timers[0][0]
                if alarm is None:
                    timeout = max(0.0, due - time.monotonic())
                elif alarm.armed != due:  # the earliest timer changed: one syscall, not one per turn
                    alarm.set(due)
            try:
                events = poll(timeout, 256)
            except InterruptedError:
                continue
            for fd, mask in events:
                handler = handlers.get(fd)
                if handler is not None:
                    handler(mask)
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, callback = heapq.heappop(timers)
                    callback()

    def close(self) -> None:
        if self.alarm is not None:
            self.alarm.close()
        self.epoll.close()
