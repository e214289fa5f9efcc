"""The decoded frame log of a traffic pane.

RichLog renders every line to strips as it is written and keeps them all;
Textual's strips hold caches that refer back to themselves, so each one is
garbage only the full cycle collector finds (and the app runs that rarely,
see QnetApp.on_mount). Under a flood a pane is written ~100 lines a second,
most of which scroll past unseen. This log keeps plain strings (which the
collector does not even track) and draws a line only when it is on screen.
A filter chooses which of the kept lines are shown, old ones included."""

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
        # Every line kept, with the lower-case text a filter looks in; and the
        # lines the filter lets through, which are the ones drawn.
        self._kept: deque[tuple[tuple[str, str], str]] = deque(maxlen=max_lines)
        self.lines: deque[tuple[str, str]] = deque()  # (port column, the rest)
        self._filter = self._bare = ""
        self._width = 0

    def on_mount(self) -> None:
        self.anchor()  # follow new lines at the bottom until the user scrolls up, as a terminal does

    def _wanted(self, haystack: str) -> bool:
        return not self._filter or self._filter in haystack or self._bare in haystack

    def write_frames(self, lines: Iterable[tuple[str, str, str]]) -> None:
        """Append (port column, the rest, text to filter on) lines."""
        reading_back, dropped = not self.is_vertical_scroll_end, 0
        kept, shown = self._kept, self.lines
        for head, rest, haystack in lines:
            if len(kept) == kept.maxlen and shown and shown[0] is kept[0][0]:
                shown.popleft()  # the oldest line goes, from the screen too
                dropped += 1
            line = (head, rest)
            kept.append((line, haystack))
            if self._wanted(haystack):
                shown.append(line)
                self._width = max(self._width, cell_len(head) + cell_len(rest))
        self.virtual_size = Size(self._width, len(shown))
        if dropped and reading_back:
            # Someone is reading back: keep the lines they see in place as the oldest go.
            self.scroll_to(y=max(0, self.scroll_offset.y - dropped), animate=False, immediate=True)
        self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only the kept lines holding text (a MAC with or without colons)."""
        self._filter = text.strip().lower()
        self._bare = self._filter.replace(":", "")
        self.lines = deque(line for line, haystack in self._kept if self._wanted(haystack))
        self.virtual_size = Size(self._width, len(self.lines))
        self.anchor()  # to the newest of what is shown, following again (the old place may be past the end)
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
