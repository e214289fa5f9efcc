"""The worker's event loop: one thread, epoll over every fd, and timers."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import select
import time
from collections.abc import Callable

Handler = Callable[[int], None]  # called with the epoll event mask


class Loop:
    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Handler] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.running = False

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
        poll, handlers, timers = self.epoll.poll, self.handlers, self.timers
        while self.running:
            timeout = -1.0
            if timers:
                timeout = max(0.0, timers[0][0] - time.monotonic())
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
        self.epoll.close()
