"""A traffic pane's conversation table: the worker's MAC pairs or IP flows,
nodes named, sorted by any column, totals or rates, and the rest summed as
"others".

The statistics bring a new table up to five times a second, and a flood
does not slow them: a table is at most 50 rows, made into text only while
it is on screen, and only the lines in view are drawn (as the frame log).
The cursor and the sort stay on their row and column from one table to the
next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from qnet_tui.model.values import si
from qnet_tui.pcapfilter import Filter
from qnet_tui.protocol import ConversationRest, ConversationRow, Conversations
from qnet_tui.ui.convframes import row_frames

BROADCASTS = frozenset({"ff:ff:ff:ff:ff:ff", "255.255.255.255"})
GAP = "  "
MIN_END = 14  # the narrowest an end's column gets to let the figures fit
CACHE_ROWS = 4096  # filter results kept per row identity; dropped wholesale past this
BOLD, DIM = Style(bold=True), Style(dim=True)


@dataclass(frozen=True)
class Column:
    id: str
    header: str
    numeric: bool  # right-aligned; sorted largest first at first


def columns(flows: bool, rates: bool) -> list[Column]:
    return [
        *([Column("proto", "proto", False)] if flows else []),
        Column("a", "A (sent first)", False),
        Column("b", "B", False),
        *(
            [Column("fps", "frames/s", True), Column("bps", "bit/s", True)]
            if rates
            else [Column("frames", "frames", True), Column("bytes", "bytes", True)]
        ),
        Column("age", "age", True),
        Column("idle", "idle", True),
    ]


# The same figure in the other mode: a sort by bytes becomes one by bit/s.
COUNTERPART = {"frames": "fps", "bytes": "bps", "fps": "frames", "bps": "bytes"}


def endpoint(address: str, node: str | None, port: int | None) -> str:
    """An end as people read it: its node's name with its MAC or address (and port)."""
    if address.lower() in BROADCASTS and node is None:
        return "broadcast"
    if port is not None:
        address = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"{node} {address}" if node else address


def shorten_end(text: str, width: int) -> str:
    """An end cut to width in its address's middle, so its node's name and
    its port (what tells two flows of one address apart) stay."""
    if cell_len(text) <= width:
        return text
    node, _, address = text.rpartition(" ")
    head = f"{node} " if node and cell_len(node) + 5 <= width else ""  # the node, if 3 address characters fit
    room = width - cell_len(head) - 1  # the address's characters left, with the ellipsis
    if room < 2:
        return set_cell_size(text, width - 1) + "…"
    tail = max((room + 1) // 2, min(len(_port_of(address)), room - 2))
    return head + address[: room - tail] + "…" + address[-tail:]


def _port_of(address: str) -> str:
    """':5201' of 10.0.0.1:5201 or [fe80::1]:5201; '' of an address alone."""
    if address.startswith("["):
        return address[address.rfind("]") + 1 :]
    return address[address.find(":") :] if address.count(":") == 1 else ""


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def row_key(row: ConversationRow) -> tuple:
    return (row["a"], row["b"], row["proto"], row["a_port"], row["b_port"])


class ConversationTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    ConversationTable { background: $surface; }
    ConversationTable > .conversations--cursor { background: $block-cursor-blurred-background; }
    ConversationTable:focus > .conversations--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    ConversationTable > .conversations--header { color: $primary; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"conversations--cursor", "conversations--header"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "flows", "MAC pairs / IP flows"),
        Binding("greater_than_sign", "sort(1)", "Sort by next column"),
        Binding("less_than_sign", "sort(-1)", "Sort by previous column", show=False),
        Binding("minus", "reverse", "Reverse order"),
        Binding("u", "rates", "Rates / totals"),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("home", "move(-1000)", "First", show=False),
        Binding("end", "move(1000)", "Last", show=False),
        Binding("enter", "follow", "Follow"),
        Binding("escape", "leave", "Back", show=False),
    ]

    class FollowWanted(Message):
        """Enter on a TCP or UDP flow: follow it."""

        def __init__(self, table: ConversationTable, row: ConversationRow) -> None:
            super().__init__()
            self.table, self.row = table, row

    HEAD = 2  # lines above the rows: what is shown, and the column headers

    def __init__(self) -> None:
        super().__init__()
        self.flows = False  # MAC pairs, or IP flows
        self.rates = False  # totals (frames, bytes), or rates (frames/s, bit/s)
        self.sort = "bytes"
        self.descending = True
        self.bpf: Filter | None = None
        self.conversations: Conversations | None = None
        self.now = 0.0  # the statistics' time: age and idle are counted from it
        self.shown_rows: list[ConversationRow] = []  # in order, as on screen (others not among them)
        self.others: ConversationRest | None = None  # shown below them, if any
        self.cells: list[list[str]] = []  # the text of each row on screen (others last)
        self.widths: list[int] = []
        self.cursor = 0
        self._cursor_key: tuple | None = None
        self._matches: dict[tuple, bool] = {}
        self._stale = True

    # -- what is shown -------------------------------------------------------------------

    @property
    def columns(self) -> list[Column]:
        return columns(self.flows, self.rates)

    def show(self, conversations: Conversations | None, now: float) -> None:
        """The newest table; made into text now only if it is on screen."""
        self.conversations, self.now = conversations, now
        self._stale = True
        if self.display and self.is_mounted:
            self.rebuild()

    def on_show(self) -> None:
        if self._stale:
            self.rebuild()

    def set_bpf(self, bpf: Filter | None) -> None:
        self.bpf = bpf
        self._matches.clear()
        self.rebuild()

    def _kept(self, row: ConversationRow) -> bool:
        if self.bpf is None:
            return True
        key = (self.flows, *row_key(row))
        kept = self._matches.get(key)
        if kept is None:
            if len(self._matches) > CACHE_ROWS:
                self._matches.clear()
            kept = self._matches[key] = any(self.bpf.matches(f) for f in row_frames(row, self.flows))
        return kept

    def _value(self, row: ConversationRow, column: str) -> float | str:
        if column == "age":
            return self.now - row["first"]
        if column == "idle":
            return self.now - row["last"]
        if column in ("a", "b"):
            return self._end(row, column).lower()
        if column == "proto":
            return row["proto"] or ""
        return row[column]

    def _end(self, row: ConversationRow, side: str) -> str:
        return endpoint(row[side], row[f"{side}_node"], row[f"{side}_port"] if self.flows else None)

    def _text(self, row: ConversationRow, column: str) -> str:
        if column in ("a", "b"):
            return self._end(row, column)
        if column == "proto":
            return row["proto"] or "-"
        if column in ("age", "idle"):
            return ago(float(self._value(row, column)))
        if column == "bps":
            return si(row["bps"], "bit/s")
        if column == "bytes":
            return si(row["bytes"], "B")
        if column == "fps":
            return f"{row['fps']:.1f}"
        return str(row[column])

    def rebuild(self) -> None:
        self._stale = False
        found = self.conversations
        kind = "flows" if self.flows else "pairs"
        rows = [r for r in (found[kind] if found else []) if self._kept(r)]
        numeric = next((c.numeric for c in self.columns if c.id == self.sort), True)
        rows.sort(key=lambda r: self._value(r, self.sort), reverse=self.descending)
        if not numeric:  # ties in a name: the busiest first
            rows.sort(key=lambda r: (self._value(r, self.sort), -r["bytes"]), reverse=self.descending)
        self.shown_rows = rows
        rest = found["others"][kind] if found else None
        self.others = rest if rest and rest["count"] > 0 and self.bpf is None else None
        ids = [c.id for c in self.columns]
        self.cells = [[self._text(r, c) for c in ids] for r in rows]
        if self.others is not None:
            o = self.others
            figures = {
                "frames": str(o["frames"]),
                "bytes": si(o["bytes"], "B"),
                "fps": f"{o['fps']:.1f}",
                "bps": si(o["bps"], "bit/s"),
            }
            self.cells.append([f"others ({o['count']})" if c == "a" else figures.get(c, "") for c in ids])
        headers = self._headers()
        self.widths = [max([cell_len(h), *(cell_len(row[i]) for row in self.cells)]) for i, h in enumerate(headers)]
        self._fit(ids)
        width = sum(self.widths) + len(GAP) * (len(self.widths) - 1)
        self.virtual_size = Size(width, len(self.cells) + self.HEAD)
        # The cursor stays on its row, wherever the sort puts it now.
        keys = [row_key(r) for r in rows]
        if self._cursor_key in keys:
            self.cursor = keys.index(self._cursor_key)
        self.cursor = max(0, min(self.cursor, len(self.cells) - 1))
        self._cursor_key = keys[self.cursor] if self.cursor < len(keys) else None
        self.refresh()

    def _fit(self, ids: list[str]) -> None:
        """Narrow the ends' columns (always the wider, so both keep what they
        can, down to MIN_END) so the figures fit in the pane; what does not
        fit is cut in its address's middle."""
        room = self.scrollable_content_region.width
        if room <= 0:
            return  # not laid out yet: on_resize fits it
        over = sum(self.widths) + len(GAP) * (len(self.widths) - 1) - room
        ends = [ids.index(side) for side in ("a", "b")]
        while over > 0:
            wider = max(ends, key=lambda i: self.widths[i])
            if self.widths[wider] <= MIN_END:
                break
            self.widths[wider] -= 1
            over -= 1

    def on_resize(self) -> None:
        if self.display and self.conversations is not None:
            self.rebuild()

    def _headers(self) -> list[str]:
        arrow = " ▼" if self.descending else " ▲"
        return [c.header + (arrow if c.id == self.sort else "") for c in self.columns]

    @property
    def caption(self) -> str:
        what = "IP flows" if self.flows else "MAC pairs"
        mode = "rates" if self.rates else "totals"
        shown = f"{len(self.shown_rows)} {what}"
        if self.bpf is not None:
            shown += f" matching bpf: {self.bpf.text}"
        if self.conversations is None:
            shown = "no conversations: this lab's worker does not count them"
        other = "IP flows" if not self.flows else "MAC pairs"
        return f"{shown} · {mode} · m: {other}, u: {'totals' if self.rates else 'rates'}, >/-: sort"

    # -- keys and the mouse -------------------------------------------------------------

    def action_flows(self) -> None:
        self.flows = not self.flows
        if self.sort == "proto" or (self.sort not in {c.id for c in self.columns}):
            self.sort, self.descending = ("bps" if self.rates else "bytes"), True
        self.cursor, self._cursor_key = 0, None
        self._matches.clear()
        self.rebuild()

    def action_rates(self) -> None:
        self.rates = not self.rates
        self.sort = COUNTERPART.get(self.sort, self.sort)
        self.rebuild()

    def sort_by(self, column: str) -> None:
        """Sort by column; again on the same column: the other way."""
        if column == self.sort:
            self.descending = not self.descending
        else:
            self.sort = column
            self.descending = next(c.numeric for c in self.columns if c.id == column)
        self.rebuild()

    def action_sort(self, step: int) -> None:
        ids = [c.id for c in self.columns]
        here = ids.index(self.sort) if self.sort in ids else 0
        self.sort_by(ids[(here + step) % len(ids)])

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.rebuild()

    def action_move(self, step: int) -> None:
        if not self.cells:
            return
        self.cursor = max(0, min(self.cursor + step, len(self.cells) - 1))
        keys = [row_key(r) for r in self.shown_rows]
        self._cursor_key = keys[self.cursor] if self.cursor < len(keys) else None
        top, height = self.scroll_offset.y, max(1, self.scrollable_content_region.height - self.HEAD)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        self.refresh()

    def action_follow(self) -> None:
        row = self.shown_rows[self.cursor] if self.cursor < len(self.shown_rows) else None
        if row is None or not self.flows or row["proto"] not in ("tcp", "udp") or row["a_port"] is None:
            self.app.notify("Follow: choose a TCP or UDP flow (m shows the IP flows)", severity="warning")
            return
        self.post_message(self.FollowWanted(self, row))

    def action_leave(self) -> None:
        raise SkipAction()  # the pane's escape: back to the canvas

    def column_at(self, x: int) -> str | None:
        """The column whose header spans x (in the table's own coordinates)."""
        start = 0
        for column, width in zip(self.columns, self.widths, strict=True):
            if start <= x < start + width + len(GAP):
                return column.id
            start += width + len(GAP)
        return None

    def on_click(self, event: events.Click) -> None:
        if event.y == 1:
            column = self.column_at(event.x + self.scroll_offset.x)
            if column is not None:
                self.sort_by(column)
        elif event.y >= self.HEAD:
            self.action_move(self.scroll_offset.y + event.y - self.HEAD - self.cursor)

    # -- drawing --------------------------------------------------------------------------

    def _cells_line(self, cells: list[str], style: Style) -> list[Segment]:
        segments = []
        for i, (column, width, text) in enumerate(zip(self.columns, self.widths, cells, strict=True)):
            if cell_len(text) > width:
                text = shorten_end(text, width) if column.id in ("a", "b") else set_cell_size(text, width - 1) + "…"
            pad = " " * (width - cell_len(text))
            segments.append(Segment((pad + text) if column.numeric else (text + pad), style))
            if i < len(cells) - 1:
                segments.append(Segment(GAP, style))
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width, style = self.size.width, self.rich_style
        if y == 0:
            return Strip([Segment(self.caption, style + DIM)]).crop_extend(0, width, style)
        if len(self.widths) != len(self.columns):
            return Strip.blank(width, style)  # not made into text yet (on_show does it)
        if y == 1:
            header = style + self.get_component_rich_style("conversations--header")
            return Strip(self._cells_line(self._headers(), header)).crop_extend(scroll_x, scroll_x + width, style)
        index = scroll_y + y - self.HEAD
        if index >= len(self.cells):
            return Strip.blank(width, style)
        line_style = style
        if index == self.cursor:
            line_style = style + self.get_component_rich_style("conversations--cursor")
        elif self.others is not None and index == len(self.cells) - 1:
            line_style = style + DIM
        return Strip(self._cells_line(self.cells[index], line_style)).crop_extend(
            scroll_x, scroll_x + width, line_style
        )
