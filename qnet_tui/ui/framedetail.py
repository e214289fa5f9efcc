"""One sampled frame, in full: its layers as a tree (scapy's field names and
its text of each value) beside a hex view of the bytes kept, where the bytes
of the layer or field under the tree's cursor are marked. scapy decodes in a
thread (its first import takes a second); escape closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, Tree

from qnet_tui import dissect, segments
from qnet_tui.ui.follow import FollowRequest
from qnet_tui.ui.framelog import Line

DECODING = "decoding..."


class FrameDetail(ModalScreen[None]):
    """Modal: the editor's keys stay out of it (and out of its footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("F", "follow", "Follow its conversation"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"frame-detail--mark"}
    DEFAULT_CSS = """
    FrameDetail { background: $background; }
    FrameDetail > .frame-detail--mark { background: $accent; color: $text; }
    FrameDetail #title { height: 1; background: $primary; color: $text; padding: 0 1; }
    FrameDetail #kept { height: 1; padding: 0 1; color: $text-muted; }
    FrameDetail #layers { width: 1fr; border: round $primary; }
    FrameDetail #hex-scroll { width: 80; border: round $primary; }
    FrameDetail #why { height: auto; color: $error; padding: 0 1; display: none; }
    FrameDetail #why.-shown { display: block; }
    """

    class Decoded(Message):
        def __init__(self, layers: list[dissect.Layer], why: str | None) -> None:
            super().__init__()
            self.layers, self.why = layers, why

    def __init__(self, line: Line, where: str, follow: Callable[[FollowRequest], None] | None = None) -> None:
        super().__init__()
        self.line, self.where, self.follow = line, where, follow
        self.frame: bytes = b""
        self.why: str | None = None  # why the layers cannot be shown
        self.marked: dissect.Span | None = None  # the bytes marked in the hex view
        try:
            self.frame = dissect.frame_bytes(line.hex)
        except dissect.DissectError as exc:
            self.why = str(exc)
        self.hex_plain = Text("\n".join(dissect.hex_rows(self.frame)))  # marked by copies of it

    def compose(self) -> ComposeResult:
        title = Text(
            f"{self.where}: {self.line.head.strip()} {self.line.rest.strip()}", no_wrap=True, overflow="ellipsis"
        )
        yield Static(title, id="title")
        yield Static(dissect.kept_note(len(self.frame), self.line.length), id="kept")
        yield Static("", id="why")
        with Horizontal():
            tree: Tree[None] = Tree("frame", id="layers")
            tree.show_root = False
            yield tree
            with VerticalScroll(id="hex-scroll"):
                yield Static(self._hex_text(), id="hex")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one(Tree)
        tree.root.add_leaf(DECODING)
        tree.focus()
        if self.why is not None:
            self._show([], self.why)
        else:
            self.decode()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dissect", description="decoding a frame")
    def decode(self) -> None:
        try:
            self.post_message(self.Decoded(dissect.layers(self.frame), None))
        except dissect.DissectError as exc:
            self.post_message(self.Decoded([], str(exc)))

    def on_frame_detail_decoded(self, event: FrameDetail.Decoded) -> None:
        self._show(event.layers, event.why)

    def _show(self, layers: list[dissect.Layer], why: str | None) -> None:
        tree: Tree[dissect.Span | None] = self.query_one(Tree)
        tree.clear()
        for layer in layers:
            node = tree.root.add(Text(layer.name, style="bold"), data=layer.span, expand=True)
            for name, value, span in layer.fields:
                # A field whose bytes are not known marks its layer's.
                node.add_leaf(Text.assemble((f"{name}: ", "dim"), value), data=layer.span if span is None else span)
        if layers:
            tree.cursor_line = 0  # on the outermost layer, its bytes marked, as soon as there are layers
        if why is not None:
            self.why = why
            tree.root.add_leaf(Text("no layers: see above"))
            shown = self.query_one("#why", Static)
            shown.update(Text(f"Cannot show this frame's layers: {why}"))
            shown.add_class("-shown")

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[dissect.Span | None]) -> None:
        self.mark(event.node.data)

    def mark(self, span: dissect.Span | None) -> None:
        """Mark the frame's bytes [start, end) in the hex view (None: none)
        and scroll them into view."""
        self.marked = span
        self.query_one("#hex", Static).update(self._hex_text())
        if span is None:
            return
        scroll = self.query_one("#hex-scroll", VerticalScroll)
        first, last = span[0] // dissect.ROW_BYTES, max(span[1] - 1, span[0]) // dissect.ROW_BYTES
        rows = min(last - first + 1, max(scroll.scrollable_content_region.height, 1))  # too tall: its top
        scroll.scroll_to_region(Region(0, first, 1, rows), animate=False)

    def _hex_text(self) -> Text:
        text = self.hex_plain.copy()
        if self.marked is not None:
            style = self.get_component_rich_style("frame-detail--mark")
            for start, end in dissect.hex_ranges(self.marked):
                text.stylize(style, start, end)
        return text

    def action_follow(self) -> None:
        """The TCP or UDP conversation this frame is of, followed (from this frame's sender's side)."""
        seg = segments.parse(self.frame)
        if seg is None or self.follow is None:
            self.notify("Follow: this frame is no TCP or UDP segment", severity="warning")
            return
        proto = "tcp" if seg.proto == segments.TCP else "udp"
        self.dismiss(None)
        self.follow(FollowRequest("", proto, seg.src, seg.sport, seg.dst, seg.dport))

    def action_close(self) -> None:
        self.dismiss(None)
