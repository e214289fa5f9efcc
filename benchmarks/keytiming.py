"""Key-to-repaint timing for the UI benchmarks: when a key event enters the
app, and when the canvas paints its first line after it."""

from __future__ import annotations

import time

from textual import events

from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas


class KeyTiming:
    def __init__(self, app: QnetApp) -> None:
        self.painted: list[float] = []
        self.keys: list[float] = []
        canvas = app.query_one(TopologyCanvas)
        render_line, post_message = canvas.render_line, app.post_message

        def timed_render(y: int):
            self.painted.append(time.perf_counter())
            return render_line(y)

        def note_key(message):
            if isinstance(message, events.Key):
                self.keys.append(time.perf_counter())
            return post_message(message)

        canvas.render_line = timed_render
        app.post_message = note_key

    def clear(self) -> None:
        self.painted.clear()
        self.keys.clear()

    def latency(self) -> float | None:
        """Seconds from the last cleared key to the first paint after it."""
        after = [t for t in self.painted if self.keys and t >= self.keys[0]]
        return after[0] - self.keys[0] if after else None
