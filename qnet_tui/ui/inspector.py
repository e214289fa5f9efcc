"""The inspector: the selected node's id, attributes and links, editable in
place. Edits go up as messages; the app applies them through the Editor."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from qnet_tui.model import guests
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.values import ifname_problem
from qnet_tui.ui.fields import FieldEditor


class Inspector(VerticalScroll):
    DEFAULT_CSS = """
    Inspector { padding: 0 1; }
    Inspector .heading { text-style: bold; margin-bottom: 1; }
    Inspector .row { height: auto; }
    Inspector .row { margin-bottom: 1; }
    Inspector .name { width: 11; padding: 0 1 0 0; }
    Inspector #rename { width: 1fr; height: 1; border: none; padding: 0 1; }
    Inspector .rename-problem { color: $error; padding-left: 11; }
    Inspector .links { margin-top: 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "done_editing", "Done", show=False)]

    class Edited(Message):
        """name == "id": a rename; value None: remove the attribute."""

        def __init__(self, node: str, name: str, value: Any) -> None:
            super().__init__()
            self.node, self.name, self.value = node, name, value

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.node: str | None = None
        self._wanted: tuple[Topology, str | None, bool] | None = None
        self._busy = False
        self._edit_wanted = False

    def compose(self) -> ComposeResult:
        yield Static("nothing selected", classes="heading")

    def show_node(self, topology: Topology, node_id: str | None, read_only: bool = False) -> None:
        """Show node_id (or nothing). The form is rebuilt in the background,
        one rebuild at a time; a rebuild shows whatever was asked last."""
        self.node = node_id
        self._wanted = (topology, node_id, read_only)
        if not self._busy:
            self._busy = True
            self.run_worker(self._rebuild_until_current, group="inspector")

    async def _rebuild_until_current(self) -> None:
        try:
            shown = None
            while shown is not self._wanted:
                shown = self._wanted
                await self._rebuild(*shown)
        finally:
            self._busy = False
            if self._edit_wanted:
                self.edit()

    def edit(self) -> None:
        """Focus the form's first field (the id): now, or once the form being built is there."""
        self._edit_wanted = True
        fields = self.query("#rename")
        if not self._busy and fields:
            self._edit_wanted = False
            fields.first().focus()

    def action_done_editing(self) -> None:
        # Leaving the field applies it, as tab or a click elsewhere does.
        self.app.query_one("#canvas").focus()

    async def _rebuild(self, topology: Topology, node_id: str | None, read_only: bool) -> None:
        node = topology.nodes.get(node_id) if node_id else None
        if node is None:
            widgets = [Static("nothing selected: add a node with [b]a[/b]", classes="heading")]
        else:
            kind = node.kind.title if isinstance(node.kind, Kind) else f"unknown kind {node.kind}"
            widgets = [
                Static(f"{kind} {node.id}", classes="heading"),
                Horizontal(Label("id", classes="name"), Input(node.id, id="rename", disabled=read_only), classes="row"),
                Label("", classes="rename-problem"),
            ]
            if isinstance(node.kind, Kind):
                choices = {"guest": guests.guest_ids(topology)}
                widgets.append(FieldEditor(node.kind, node.attrs, choices, disabled=read_only))
            peers = topology.neighbours(node.id)
            widgets.append(Static("links: " + (", ".join(peers) if peers else "none"), classes="links"))
        with self.app.batch_update():
            await self.remove_children()
            await self.mount_all(widgets)

    def show_problem(self, name: str, text: str | None) -> None:
        if name == "id":
            self._rename_problem(text)
        else:
            forms = self.query(FieldEditor)
            if forms:  # the form may be still mounting
                forms.last().show_problem(name, text)

    def _rename_problem(self, text: str | None) -> None:
        labels = self.query(".rename-problem")
        if labels:  # the form may be still mounting
            labels.last(Label).update(f"id {text}" if text else "")

    @on(Input.Changed, "#rename")
    def _typing_id(self, event: Input.Changed) -> None:
        problem = ifname_problem(event.value.strip())
        self._rename_problem(problem)

    @on(Input.Submitted, "#rename")
    @on(Input.Blurred, "#rename")
    def _rename(self, event: Input.Submitted | Input.Blurred) -> None:
        new = event.input.value.strip()
        if self.node and new != self.node and not ifname_problem(new):
            self.post_message(self.Edited(self.node, "id", new))

    @on(FieldEditor.Committed)
    def _committed(self, event: FieldEditor.Committed) -> None:
        event.stop()
        if self.node:
            self.post_message(self.Edited(self.node, event.name, event.value))
