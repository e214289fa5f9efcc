"""The decoded frame log of a traffic pane.

RichLog renders every line to strips as it is written and keeps them all;
Textual's strips hold caches that refer back to themselves, so each one is
garbage only the full cycle collector finds (and the app runs that rarely,
see QnetApp.on_mount). Under a flood a pane is written ~100 lines a second,
most of which scroll past unseen. This log keeps plain strings in tuples
(which the collector stops tracking) and draws a line only when it is on
screen. A text filter and a BPF display filter choose which of the kept
lines are shown, old ones included.

A cursor picks a line (up/down, a click); while one is picked the log stops
following new lines, and enter asks for that frame's detail (Chosen)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from qnet_tui.pcapfilter import Filter

BOLD = Style(bold=True)


class Line(NamedTuple):
    """One sampled frame as the log keeps it (a tuple of atoms: untracked by the collector)."""

    head: str  # the port column, drawn bold
    rest: str  # length and summary
    haystack: str  # lower-case text the text filter looks in
    hex: str  # the bytes kept (the sample's first up to 256)
    length: int  # on the wire


class FrameLog(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    FrameLog { background: $surface; }
    FrameLog > .framelog--cursor { background: $block-cursor-blurred-background; }
    FrameLog:focus > .framelog--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"framelog--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("enter", "choose", "Frame detail"),
        Binding("escape", "leave", "Back", show=False),
    ]

    class Chosen(Message):
        """Enter on a line: show that frame."""

        def __init__(self, log: FrameLog, line: Line) -> None:
            super().__init__()
            self.log, self.line = log, line

    def __init__(self, max_lines: int) -> None:
        super().__init__()
        self._kept: deque[Line] = deque(maxlen=max_lines)  # every line kept
        self.lines: deque[Line] = deque()  # the lines the filters let through: the ones drawn
        self._filter = self._bare = ""
        self.bpf: Filter | None = None
        self.cursor: int | None = None  # index in lines of the line picked
        self._width = 0

    def on_mount(self) -> None:
        self.anchor()  # follow new lines at the bottom until the user scrolls up, as a terminal does

    def _wanted(self, line: Line) -> bool:
        if self._filter and not any(t in s for t in (self._filter, self._bare) for s in (line.haystack, line.hex)):
            return False
        if self.bpf is not None:
            try:
                frame = bytes.fromhex(line.hex)
            except ValueError:
                return False
            return self.bpf.matches(frame, line.length)
        return True

    def write_frames(self, lines: Iterable[Line]) -> None:
        """Append lines (the oldest kept go when it is full)."""
        reading_back, dropped = self.cursor is not None or not self.is_vertical_scroll_end, 0
        kept, shown = self._kept, self.lines
        for line in lines:
            if len(kept) == kept.maxlen and shown and shown[0] is kept[0]:
                shown.popleft()  # the oldest line goes, from the screen too
                dropped += 1
            kept.append(line)
            if self._wanted(line):
                shown.append(line)
                self._width = max(self._width, cell_len(line.head) + cell_len(line.rest))
        self.virtual_size = Size(self._width, len(shown))
        if dropped and self.cursor is not None:
            self.cursor = max(0, self.cursor - dropped) if shown else None
        if dropped and reading_back:
            # Someone is reading back: keep the lines they see in place as the oldest go.
            self.scroll_to(y=max(0, self.scroll_offset.y - dropped), animate=False, immediate=True)
        self.refresh()

    def _refilter(self) -> None:
        picked = self.lines[self.cursor] if self.cursor is not None and self.cursor < len(self.lines) else None
        self.lines = deque(line for line in self._kept if self._wanted(line))
        self.virtual_size = Size(self._width, len(self.lines))
        self.cursor = next((i for i, line in enumerate(self.lines) if line is picked), None)
        if self.cursor is None:
            self.anchor()  # to the newest of what is shown, following again (the old place may be past the end)
        else:
            self.call_after_refresh(self._show_cursor)
        self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only the kept lines holding text (a MAC with or without colons)."""
        self._filter = text.strip().lower()
        self._bare = self._filter.replace(":", "")
        self._refilter()

    def set_bpf(self, bpf: Filter | None) -> None:
        """Show only the kept frames a BPF display filter keeps (None: all)."""
        self.bpf = bpf
        self._refilter()

    # -- the cursor -----------------------------------------------------------------------

    @property
    def picked(self) -> Line | None:
        return self.lines[self.cursor] if self.cursor is not None and self.cursor < len(self.lines) else None

    def _pick(self, index: int | None) -> None:
        if not self.lines:
            index = None
        if index is None:
            self.cursor = None
            self.anchor()
            self.scroll_end(animate=False, immediate=True)
        else:
            self.cursor = max(0, min(index, len(self.lines) - 1))
            self.release_anchor()  # a line is picked: new ones must not move it away
            self._show_cursor()
        self.refresh()

    def _show_cursor(self) -> None:
        if self.cursor is None:
            return
        top, height = self.scroll_offset.y, max(1, self.scrollable_content_region.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def _bottom(self) -> int:
        """The last line on screen: where the cursor starts."""
        return min(len(self.lines) - 1, self.scroll_offset.y + self.scrollable_content_region.height - 1)

    def action_move(self, step: int) -> None:
        self._pick(self._bottom() if self.cursor is None else self.cursor + step)

    def action_page(self, step: int) -> None:
        height = max(1, self.scrollable_content_region.height)
        self._pick((self._bottom() if self.cursor is None else self.cursor) + step * height)

    def action_first(self) -> None:
        self._pick(0)

    def action_follow(self) -> None:
        self._pick(None)

    def action_choose(self) -> None:
        line = self.picked
        if line is None:
            raise SkipAction()
        self.post_message(self.Chosen(self, line))

    def action_leave(self) -> None:
        """Escape: follow again, and let the pane's escape take the keys back to the canvas."""
        self._pick(None)
        raise SkipAction()

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.lines):
            if index == self.cursor and event.chain >= 2:
                self.post_message(self.Chosen(self, self.lines[index]))
            self._pick(index)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width, style = self.size.width, self.rich_style
        index = scroll_y + y
        if index >= len(self.lines):
            return Strip.blank(width, style)
        line = self.lines[index]
        if index == self.cursor:
            style = style + self.get_component_rich_style("framelog--cursor")
        strip = Strip([Segment(line.head, style + BOLD), Segment(line.rest, style)])
        return strip.crop_extend(scroll_x, scroll_x + width, style)
