"""A VM guest's serial console in the app: a screen of its own showing what
the console prints (the worker's scrollback first), where every key goes to
the guest, until Ctrl-] (as in `qnet-tui console` and virsh) leaves.

The console is a plain serial line: the guest echoes what is typed, sends
"\\r\\n" line ends, backspace as "\\b \\b", and now and then an escape
sequence (colours, cursor moves), which is dropped here."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

MAX_LINES = 2000
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|.)")
_UNFINISHED = re.compile(r"\x1b(\[[0-?]*[ -/]*|\][^\x07]*)?$")
# Keys that are no character, as a VT100 terminal sends them.
KEYS = {
    "enter": "\r",
    "backspace": "\x7f",
    "tab": "\t",
    "escape": "\x1b",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "home": "\x1b[H",
    "end": "\x1b[F",
    "delete": "\x1b[3~",
}


class Terminal:
    """The lines a serial console has printed, as a dumb terminal keeps them."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque([""], maxlen=MAX_LINES)
        self._pending = ""  # an escape sequence cut between two reads

    def feed(self, text: str) -> None:
        text = self._pending + text
        unfinished = _UNFINISHED.search(text)  # cut between two reads: the rest comes with the next
        self._pending = unfinished.group() if unfinished else ""
        text = _ESCAPE.sub("", text[: unfinished.start()] if unfinished else text)
        line = self.lines.pop()
        for ch in text:
            if ch == "\n":
                self.lines.append(line)
                line = ""
            elif ch == "\b":
                line = line[:-1]
            elif ch == "\r" or ch == "\x07":
                continue  # a carriage return before each newline; the bell
            elif ch >= " " or ch == "\t":
                line += ch.expandtabs(8) if ch == "\t" else ch
        self.lines.append(line)


class ConsoleView(ScrollView):
    DEFAULT_CSS = "ConsoleView { background: $surface; }"

    def __init__(self, terminal: Terminal, **kwargs) -> None:
        super().__init__(**kwargs)
        self.terminal = terminal

    def on_mount(self) -> None:
        self.anchor()
        self.update()

    def update(self) -> None:
        lines = self.terminal.lines
        self.virtual_size = Size(max((len(x) for x in lines), default=0), len(lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width, style = self.size.width, self.rich_style
        index = scroll_y + y
        lines = self.terminal.lines
        if index >= len(lines):
            return Strip.blank(width, style)
        return Strip([Segment(lines[index], style)]).crop_extend(scroll_x, scroll_x + width, style)


class ConsoleScreen(Screen):
    """The console of one VM guest; `type` sends what is typed to it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+right_square_bracket", "leave", "Leave the console", priority=True),
    ]
    DEFAULT_CSS = """
    ConsoleScreen #title { height: 1; background: $primary; color: $text; padding: 0 1; }
    ConsoleScreen ConsoleView { height: 1fr; }
    """

    def __init__(self, guest: str, type: Callable[[bytes], None]) -> None:
        super().__init__()
        self.guest, self.type = guest, type
        self.terminal = Terminal()

    def compose(self) -> ComposeResult:
        yield Static(f"console of {self.guest} — every key goes to the guest; ctrl+] leaves", id="title")
        yield ConsoleView(self.terminal)  # no footer: the app's keys are the guest's here

    def on_mount(self) -> None:
        self.query_one(ConsoleView).focus()

    def show(self, data: bytes) -> None:
        self.terminal.feed(data.decode("utf-8", "replace"))
        if self.is_mounted:
            self.query_one(ConsoleView).update()

    def on_key(self, event: events.Key) -> None:
        if event.key == "ctrl+right_square_bracket":
            return  # the binding's
        text = KEYS.get(event.key)
        if text is None and event.key.startswith("ctrl+") and len(event.key) == 6 and event.key[5].isalpha():
            text = chr(ord(event.key[5]) - ord("a") + 1)  # ctrl+c: ^C
        if text is None and event.character and event.is_printable:
            text = event.character
        if text is not None:
            event.stop()
            event.prevent_default()
            self.type(text.encode())

    def on_paste(self, event: events.Paste) -> None:
        self.type(event.text.replace("\n", "\r").encode())

    def action_leave(self) -> None:
        self.dismiss(None)
