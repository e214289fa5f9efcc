"""The decoded frame log of a traffic pane.

RichLog renders every line to strips as it is written and keeps them all;
Textual's strips hold caches that refer back to themselves, so each one is
garbage only the full cycle collector finds (and the app runs that rarely,
see QnetApp.on_mount). Under a flood a pane is written ~100 lines a second,
most of which scroll past unseen. This log keeps plain strings (which the
collector does not even track) and draws a line only when it is on screen."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

BOLD = Style(bold=True)


class FrameLog(ScrollView):
    DEFAULT_CSS = "FrameLog { background: $surface; }"

    def __init__(self, max_lines: int) -> None:
        super().__init__()
        self.lines: deque[tuple[str, str]] = deque(maxlen=max_lines)  # (port column, the rest)
        self._width = 0

    def on_mount(self) -> None:
        self.anchor()  # follow new lines at the bottom until the user scrolls up, as a terminal does

    def write_frames(self, lines: Iterable[tuple[str, str]]) -> None:
        reading_back, dropped = not self.is_vertical_scroll_end, 0
        for head, rest in lines:
            dropped += len(self.lines) == self.lines.maxlen
            self.lines.append((head, rest))
            self._width = max(self._width, cell_len(head) + cell_len(rest))
        self.virtual_size = Size(self._width, len(self.lines))
        if dropped and reading_back:
            # Someone is reading back: keep the lines they see in place as the oldest go.
            self.scroll_to(y=max(0, self.scroll_offset.y - dropped), animate=False, immediate=True)
        self.refresh()

    def clear(self) -> None:
        self.lines.clear()
        self._width = 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width, style = self.size.width, self.rich_style
        index = scroll_y + y
        if index >= len(self.lines):
            return Strip.blank(width, style)
        head, rest = self.lines[index]
        strip = Strip([Segment(head, style + BOLD), Segment(rest, style)])
        return strip.crop_extend(scroll_x, scroll_x + width, style)
