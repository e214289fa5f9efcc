"""The topology canvas: nodes as boxes in columns, links as box-drawing lines,
scrolling, and a selection that moves by key or mouse.

Rendering follows Textual's line API: the layout is turned once into runs of
text per row, each run tagged with what it belongs to (a node, links, a
title); painting a visible row only picks styles for its runs, so moving the
selection repaints without laying anything out again."""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.color import Color, ColorParseError
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.ui.impairlabel import Way, active, link_label
from qnet_tui.ui.layout import BOX_H, BOX_W, LINE_CHARS, MARGIN, Layout, layout

# What a run of text belongs to: ("box", node), ("link", mask of link indices), ("title", None),
# ("label", node): the room under a box for its links' impairment label.
Owner = tuple[str, object]
Run = tuple[int, str, Owner]

KIND_VARIABLE = {
    Kind.HOST_NIC: "node-host-nic",
    Kind.BRIDGE: "node-bridge",
    Kind.TAP: "node-tap",
    Kind.HUB: "node-hub",
    Kind.GUEST_NIC: "node-guest-nic",
    Kind.SOCKET: "node-socket",
    Kind.GUEST: "node-guest-nic",  # a machine, in its NICs' colour
}


# A link with a direction down (a pulled cable) is drawn dashed, an impaired one
# heavy, one both heavy dashed: each seen without colour too.
DOWN_LINK = str.maketrans("─│", "┄┆")
IMPAIRED_LINK = str.maketrans("─│┌┐└┘├┤┬┴┼", "━┃┏┓┗┛┣┫┳┻╋")
DOWN_IMPAIRED_LINK = str.maketrans("─│┌┐└┘├┤┬┴┼", "┅┇┏┓┗┛┣┫┳┻╋")

# The selected box is drawn with double lines: it stands out without colour too.
SELECTED_BORDER = str.maketrans("╭╮╰╯─│", "╔╗╚╝═║")


def _is_hub(t: Topology, node: str) -> bool:
    n = t.nodes.get(node)
    return n is not None and n.kind is Kind.HUB


def _fit(text: str, width: int) -> str:
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


def _with_label(border: str, label: str) -> str:
    """A bottom border with a label set into it: ╰─ in 12 out 8 ───╯"""
    label = f"─ {label[: len(border) - 5]} "
    return border[0] + label + border[1 + len(label) :]


def paint_rows(lay: Layout) -> list[list[Run]]:
    """The layout as rows of runs; pure, so tests can read the drawing."""
    rows: list[list[Run]] = [[] for _ in range(lay.height)]
    for x, title in zip(lay.column_x, lay.column_titles, strict=True):
        rows[MARGIN].append((x, _fit(title, BOX_W), ("title", None)))
    inner = BOX_W - 2
    bottom = "╰" + "─" * inner + "╯"
    for box in lay.boxes.values():
        owner: Owner = ("box", box.node)
        top = "╭─ " + _fit(box.title, inner - 3).rstrip() + " "
        top = top + "─" * (BOX_W - 1 - len(top)) + "╮"
        lines = [top] + ["│ " + _fit(text, inner - 1) + "│" for text in box.lines] + [bottom]
        for dy, line in enumerate(lines):
            rows[box.y + dy].append((box.x, line, owner))
    # Link cells, merged into runs of one row with the same links.
    for (x, y), (bits, links) in sorted(lay.cells.items(), key=lambda item: (item[0][1], item[0][0])):
        row = rows[y]
        owner = ("link", links)
        ch = LINE_CHARS.get(bits, "┼")
        if row and row[-1][2] == owner and row[-1][0] + len(row[-1][1]) == x:
            start, text, _ = row[-1]
            row[-1] = (start, text + ch, owner)
        else:
            row.append((x, ch, owner))
    # Under each box, up to the first link that crosses there: room for a label.
    for box in lay.boxes.values():
        y = box.y + BOX_H
        if y >= lay.height:
            continue
        width = next((dx for dx in range(BOX_W) if (box.x + dx, y) in lay.cells), BOX_W)
        if width:
            rows[y].append((box.x, " " * width, ("label", box.node)))
    for row in rows:
        row.sort(key=lambda run: run[0])
    return rows


class TopologyCanvas(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    TopologyCanvas { background: $surface; }
    TopologyCanvas:focus { background-tint: $foreground 3%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("tab", "cycle(1)", "Next node", show=False),
        Binding("shift+tab", "cycle(-1)", "Previous node", show=False),
    ]

    selected: reactive[str | None] = reactive(None)

    class Selected(Message):
        def __init__(self, node: str | None) -> None:
            super().__init__()
            self.node = node

    def __init__(self, topology: Topology, **kwargs) -> None:
        super().__init__(**kwargs)
        self.topology = topology
        self.layout_: Layout = Layout()
        self.rows: list[list[Run]] = []
        self._styles: dict[str, Style] = {}
        self._selected_links = 0  # mask of the selected node's links
        self.live: dict[str, str] = {}  # per node, counters of a running lab, drawn in its bottom border
        self.down: frozenset[frozenset[str]] = frozenset()  # links a running lab has down, as node pairs
        self._down_links = 0  # their mask
        # Impairments: the file's, overlaid while a lab runs by what it reported;
        # and per port of a running lab, the frames they dropped.
        self.lab_impair: dict[Way, str] = {}
        self.impair_drops: dict[str, int] = {}
        self.lab_impair_complete = False
        self.labels: dict[str, str] = {}  # per node, the label under its box
        self._impaired_links = 0

    # -- data ------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._theme_changed())
        self.rebuild()

    def _theme_changed(self) -> None:
        self._styles.clear()
        self.refresh()

    def rebuild(self, topology: Topology | None = None, select: str | None = None) -> None:
        """Lay the topology out again, after an edit or a load; then select
        `select`, or keep the selection if its node is still there."""
        if topology is not None:
            self.topology = topology
        self.layout_ = layout(self.topology)
        self.rows = paint_rows(self.layout_)
        self.virtual_size = Size(self.layout_.width, self.layout_.height)
        if select in self.topology.nodes:
            self.selected = select
        elif self.selected not in self.topology.nodes:
            self.selected = next(iter(self._order()), None)
        self._selected_links = sum(1 << i for i, link in enumerate(self.topology.links) if self.selected in link)
        self._down_links = self._mask_of(self.down)
        self._label_impairments()
        self.refresh()

    def _mask_of(self, pairs: frozenset[frozenset[str]]) -> int:
        return sum(1 << i for i, link in enumerate(self.topology.links) if frozenset(link) in pairs)

    def show_down(self, pairs: frozenset[frozenset[str]]) -> None:
        """The links a running lab has down (pulled cables): drawn dashed, in the error colour."""
        self.down = pairs
        self._down_links = self._mask_of(pairs)
        self.refresh()

    def show_impairments(self, lab: dict[Way, str], drops: dict[str, int], complete: bool = False) -> None:
        """What a running lab reported of its links' impairments (by direction,
        over the file's; complete: all of them, whatever the file says), and
        per port what they dropped; both {} when it stops."""
        self.lab_impair, self.impair_drops, self.lab_impair_complete = lab, drops, complete
        self._label_impairments()
        self.refresh()

    @property
    def impairments(self) -> dict[Way, str]:
        """By direction, the impairments drawn: the file's, and over them the running lab's."""
        if self.lab_impair_complete:
            return dict(self.lab_impair)
        return {**self.topology.impair, **self.lab_impair}

    def _label_impairments(self) -> None:
        """Impaired links are drawn heavy, and labelled under the box of their
        end that is no hub (or that has fewer links): a guest NIC, a tap."""
        impair = self.impairments
        boxes, t = self.layout_.boxes, self.topology
        labels: dict[str, list[str]] = {}
        mask = 0
        for i, (a, b) in enumerate(t.links):
            if not (active(impair.get((a, b))) or active(impair.get((b, a)))):
                continue
            mask |= 1 << i
            if a not in boxes or b not in boxes:
                continue
            here, there = sorted((a, b), key=lambda n: (_is_hub(t, n), len(t.neighbours(n)), -boxes[n].x))
            label = link_label(impair, here, there, boxes[there].x < boxes[here].x)
            dropped = self.impair_drops.get(a, 0) + self.impair_drops.get(b, 0)
            labels.setdefault(here, []).append(label + (f" ✗{dropped}" if dropped else ""))
        self._impaired_links = mask
        self.labels = {node: " ".join(texts) for node, texts in labels.items()}

    def _order(self) -> list[str]:
        """Nodes left to right, top to bottom: the order Tab walks."""
        boxes = self.layout_.boxes.values()
        return [b.node for b in sorted(boxes, key=lambda b: (b.x, b.y))]

    # -- selection ---------------------------------------------------------------

    def watch_selected(self, old: str | None, new: str | None) -> None:
        self._selected_links = sum(1 << i for i, link in enumerate(self.topology.links) if new in link)
        box = self.layout_.boxes.get(new) if new else None
        if box is not None:
            self.scroll_to_region(Region(box.x - 2, box.y - 1, BOX_W + 4, BOX_H + 2), animate=False)
        self.refresh()
        self.post_message(self.Selected(new))

    def show_live(self, live: dict[str, str]) -> None:
        """New counters for the boxes' borders: repaint those border rows only."""
        changed = {n for n in live.keys() | self.live.keys() if live.get(n) != self.live.get(n)}
        self.live = live
        offset = self.scroll_offset
        for node in changed:
            box = self.layout_.boxes.get(node)
            if box is not None:
                row = box.y + BOX_H - 1 - offset.y
                if 0 <= row < self.size.height:
                    self.refresh(Region(box.x - offset.x, row, BOX_W, 1))

    def select(self, node: str | None) -> None:
        self.selected = node

    def action_cycle(self, step: int) -> None:
        order = self._order()
        if not order:
            return
        i = order.index(self.selected) if self.selected in order else -step
        self.selected = order[(i + step) % len(order)]

    def action_move(self, dx: int, dy: int) -> None:
        boxes = self.layout_.boxes
        here = boxes.get(self.selected) if self.selected else None
        if here is None:
            self.action_cycle(1)
            return
        if dy:
            same = sorted((b for b in boxes.values() if b.x == here.x), key=lambda b: b.y)
            i = same.index(here) + dy
            if 0 <= i < len(same):
                self.selected = same[i].node
            return
        columns = sorted({b.x for b in boxes.values()})
        i = columns.index(here.x) + dx
        while 0 <= i < len(columns):
            candidates = [b for b in boxes.values() if b.x == columns[i]]
            if candidates:
                self.selected = min(candidates, key=lambda b: abs(b.cy - here.cy)).node
                return
            i += dx

    def on_click(self, event: events.Click) -> None:
        offset = self.scroll_offset
        box = self.layout_.box_at(event.x + offset.x, event.y + offset.y)
        if box is not None:
            self.selected = box.node
        self.focus()

    # -- painting ----------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            variables = self.app.get_css_variables()

            def colour(*names: str) -> RichColor | None:
                for var in names:
                    try:
                        return Color.parse(variables[var]).rich_color
                    except (KeyError, ColorParseError):
                        continue
                return None

            base = self.rich_style
            if name == "title":
                style = base + Style(dim=True, italic=True)
            elif name == "link":
                style = base + Style(color=colour("topology-link", "primary"))
            elif name == "link-selected":
                style = base + Style(color=colour("link-selected", "accent"), bold=True)
            elif name == "link-down":
                style = base + Style(color=colour("link-down", "error"))
            elif name == "link-impaired":
                style = base + Style(color=colour("link-impaired", "warning"))
            elif name == "selected":
                style = base + Style(color=colour("node-selected-border", "accent"), bold=True)
            else:
                style = base + Style(color=colour(name, "foreground"))
            self._styles[name] = style
        return style

    def _run_style(self, owner: Owner) -> Style:
        kind, what = owner
        if kind == "box":
            if what == self.selected:
                return self._style("selected")
            node = self.topology.nodes.get(what)
            return self._style(KIND_VARIABLE.get(node.kind, "foreground") if node else "foreground")
        if kind == "link":
            if what & self._down_links and not what & ~self._down_links:
                return self._style("link-down")
            if what & self._selected_links:
                return self._style("link-selected")
            return self._style("link-impaired" if not what & ~self._impaired_links else "link")
        if kind == "label":
            return self._style("link-impaired")
        return self._style("title")

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        row = scroll_y + y
        base = self.rich_style
        if row >= len(self.rows):
            return Strip.blank(width, base)
        segments = []
        x = scroll_x
        end = scroll_x + width
        for start, text, owner in self.rows[row]:
            stop = start + len(text)
            if stop <= x or start >= end:
                continue
            if owner[0] == "label":
                if owner[1] not in self.labels:
                    continue  # no label: the row's blank fills it
                text = _fit(self.labels[owner[1]], len(text))
            if start > x:
                segments.append(Segment(" " * (start - x), base))
                x = start
            if owner[0] == "box" and owner[1] in self.live and text.startswith("╰"):
                text = _with_label(text, self.live[owner[1]])
            piece = text[x - start : min(stop, end) - start]
            if owner[1] == self.selected and owner[0] == "box":
                piece = piece.translate(SELECTED_BORDER)
            elif owner[0] == "link":
                links = owner[1]
                impaired = not links & ~self._impaired_links  # a cell only impaired links pass through
                if links & self._down_links and not links & ~self._down_links:
                    piece = piece.translate(DOWN_IMPAIRED_LINK if impaired else DOWN_LINK)
                elif impaired:
                    piece = piece.translate(IMPAIRED_LINK)
            segments.append(Segment(piece, self._run_style(owner)))
            x += len(piece)
        if x < end:
            segments.append(Segment(" " * (end - x), base))
        return Strip(segments, width)
