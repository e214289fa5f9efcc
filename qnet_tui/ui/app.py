"""The Textual app. For now a read-only view of a topology and its diagnostics;
the editor grows from here."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from qnet_tui.model.diagnostics import Diagnostic
from qnet_tui.model.kinds import FIELDS, Kind
from qnet_tui.model.yamlio import Document, load_file, new_document

# Columns in the order a frame travels: host NIC -> bridge -> tap -> hub -> guest.
KIND_ORDER = [Kind.HOST_NIC, Kind.BRIDGE, Kind.TAP, Kind.HUB, Kind.GUEST_NIC, Kind.SOCKET]


class QnetApp(App[None]):
    TITLE = "qnet-tui"
    CSS = """
    #body { height: 1fr; }
    #nodes { width: 3fr; }
    #links { width: 1fr; min-width: 24; }
    #diagnostics { height: auto; max-height: 40%; border-top: solid $primary; padding: 0 1; }
    """
    BINDINGS: ClassVar = [Binding("q", "quit", "Quit")]

    def __init__(self, document: Document) -> None:
        super().__init__()
        self.document = document

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield DataTable(id="nodes", cursor_type="row")
            yield DataTable(id="links", cursor_type="row")
        with VerticalScroll(id="diagnostics"):
            yield Static(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        doc = self.document
        name = doc.path.name if doc.path else "new topology"
        self.sub_title = f"{name} — lab {doc.topology.name}" if doc.topology.name else name
        nodes = self.query_one("#nodes", DataTable)
        nodes.add_columns("node", "kind", "attributes")
        order = {k: i for i, k in enumerate(KIND_ORDER)}
        for node in sorted(doc.topology.nodes.values(), key=lambda n: order.get(n.kind, 99)):
            known = [f.name for f in FIELDS.get(node.kind, ())] if isinstance(node.kind, Kind) else []
            shown = [f"{k}={_yaml_scalar(node.attrs[k])}" for k in known if k in node.attrs]
            kind = node.kind.title if isinstance(node.kind, Kind) else str(node.kind)
            nodes.add_row(node.id, kind, "  ".join(shown), key=node.id)
        links = self.query_one("#links", DataTable)
        links.add_columns("link", "")
        for a, b in doc.topology.links:
            links.add_row(a, b)
        self.show_diagnostics(doc.diagnostics())

    def show_diagnostics(self, diagnostics: list[Diagnostic]) -> None:
        panel = self.query_one("#problems", Static)
        if not diagnostics:
            panel.update(Text.assemble(("valid", "green"), ": no problems"))
            return
        text = Text()
        for d in diagnostics:
            colour = "red" if d.is_error else "yellow"
            text.append(str(d.severity), colour).append(f" {d.line}:{d.col} {d.text}\n")
        text.rstrip()
        panel.update(text)


def _yaml_scalar(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def run_app(path: str | None, theme: str | None = None) -> int:
    document = load_file(path) if path and Path(path).exists() else new_document(path=Path(path) if path else None)
    app = QnetApp(document)
    if theme:
        if theme not in app.available_themes:
            print(f"qnet-tui: no theme '{theme}'; themes: {', '.join(sorted(app.available_themes))}")
            return 2
        app.theme = theme
    app.run()
    return 0
