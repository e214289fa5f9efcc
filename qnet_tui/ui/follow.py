"""Follow a conversation: a TCP or UDP flow's payload both ways, in order,
as the worker reassembles it (lab/follow.py), growing while the screen is
open: what `a` sent in one colour, what `b` sent in another, bytes that are
no text as dots. Escape closes it, and the worker stops following."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Footer, RichLog, Static

from qnet_tui.model.values import si
from qnet_tui.segments import payload_text

MAX_LINES = 20_000
STYLES = ("bold red", "bold blue")  # a -> b, b -> a: Wireshark's colours
WIDTH = 160  # a line longer than this is wrapped at it (binary payload has no newlines)


@dataclass(frozen=True)
class FollowRequest:
    hub: str
    proto: str  # tcp or udp
    a: str
    a_port: int
    b: str
    b_port: int
    a_name: str | None = None  # the nodes the topology names for the ends
    b_name: str | None = None

    def end(self, side: str) -> str:
        name = self.a_name if side == "a" else self.b_name
        address, port = (self.a, self.a_port) if side == "a" else (self.b, self.b_port)
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        return f"{name} {where}" if name else where


class FollowScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close (stop following)")]
    DEFAULT_CSS = """
    FollowScreen { background: $background; }
    FollowScreen #title { height: 1; background: $primary; color: $text; padding: 0 1; }
    FollowScreen #status { height: 1; padding: 0 1; color: $text-muted; }
    FollowScreen RichLog { height: 1fr; border: round $primary; }
    """

    def __init__(self, request: FollowRequest) -> None:
        super().__init__()
        self.request = request
        self.sent = [0, 0]  # payload bytes each way
        self.frames = 0
        self.full = [False, False]
        self.ended: str | None = None
        self._partial: tuple[int, str] | None = None  # the last way's unfinished line

    def compose(self) -> ComposeResult:
        r = self.request
        title = f"Follow {r.proto} on {r.hub}: {r.end('a')} ⇄ {r.end('b')}"
        yield Static(Text(title, no_wrap=True, overflow="ellipsis"), id="title")
        yield Static("", id="status")
        yield RichLog(max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self._status()

    def add(self, chunks: list[dict[str, Any]], frames: int, full: list[bool]) -> None:
        """A `followed` message's chunks, in order."""
        log = self.query_one(RichLog)
        for chunk in chunks:
            way = 1 if chunk.get("way") == 1 else 0
            try:
                data = base64.b64decode(chunk.get("data", ""), validate=True)
            except ValueError:
                continue  # not base64: the protocol module let it through as a string only
            self.sent[way] += len(data)
            text = payload_text(data)
            if self._partial is not None:
                if self._partial[0] == way:
                    text = self._partial[1] + text
                else:
                    self._write(log, *self._partial)
                self._partial = None
            *lines, rest = text.split("\n")
            for line in lines:
                self._write(log, way, line)
            if rest:
                self._partial = (way, rest)
        self.frames, self.full = frames, list(full)
        self._status()

    def _write(self, log: RichLog, way: int, line: str) -> None:
        for start in range(0, max(len(line), 1), WIDTH):
            log.write(Text(line[start : start + WIDTH], style=STYLES[way]))

    def end(self, reason: str) -> None:
        """The worker stopped following (the lab stops, the hub went)."""
        self.ended = reason
        self._status()

    def _status(self) -> None:
        r = self.request
        parts = [
            f"{self.frames} frames",
            f"{r.a_name or r.a} sent {si(self.sent[0], 'B')}" + (" (kept no more)" if self.full[0] else ""),
            f"{r.b_name or r.b} sent {si(self.sent[1], 'B')}" + (" (kept no more)" if self.full[1] else ""),
        ]
        if self.ended:
            parts.append(f"ended: {self.ended}")
        status = Text(" · ".join(parts))
        status.append("   ")
        status.append(f"{r.a_name or r.a}", style=STYLES[0])
        status.append(" / ")
        status.append(f"{r.b_name or r.b}", style=STYLES[1])
        self.query_one("#status", Static).update(status)

    @property
    def text(self) -> str:
        """What is shown, as plain text (for tests)."""
        lines = [strip.text for strip in self.query_one(RichLog).lines]
        if self._partial is not None:
            lines.append(self._partial[1])
        return "\n".join(lines)

    def action_close(self) -> None:
        self.dismiss(None)
