"""The inspector: the selected node's id, attributes and links, editable in
place, each link's impairment too (one field per direction). Edits go up as
messages; the app applies them through the Editor."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from qnet_tui.model import guests, placement
from qnet_tui.model.impairment import Impairment, ImpairmentError
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.validate import WORKER_KINDS
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
    Inspector .row.link { margin-bottom: 0; }
    Inspector ImpairInput { width: 1fr; height: 1; border: none; padding: 0 1; }
    Inspector .impair-problem { color: $error; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "done_editing", "Done", show=False)]

    class Edited(Message):
        """name == "id": a rename; value None: remove the attribute."""

        def __init__(self, node: str, name: str, value: Any) -> None:
            super().__init__()
            self.node, self.name, self.value = node, name, value

    class ImpairEdited(Message):
        """Direction a -> b of a link gets the impairment text (blank: none)."""

        def __init__(self, a: str, b: str, text: str) -> None:
            super().__init__()
            self.a, self.b, self.text = a, b, text

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
                choices = {"guest": guests.guest_ids(topology), "host": placement.host_names(topology)}
                widgets.append(FieldEditor(node.kind, node.attrs, choices, disabled=read_only))
            peers = topology.neighbours(node.id)
            widgets.append(Static("links: " + (", ".join(peers) if peers else "none"), classes="links"))
            if topology.hosts is not None and node.kind is not Kind.HUB:
                # Where it runs, host: or not: a tap takes its bridge's, a NIC its guest's.
                machine = placement.machine_of(topology).get(node.id, placement.THIS)
                widgets.append(Static(f"runs on {placement.where(machine)}", classes="links"))
            widgets += _impair_rows(topology, node.id, peers, read_only)
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

    def _impair_inputs(self, way: tuple[str, str]) -> list[ImpairInput]:
        return [field for field in self.query(ImpairInput) if field.way == way]

    def show_impair(self, way: tuple[str, str], text: str | None, problem: str | None = None) -> None:
        """After an edit of direction way: the form it is kept in, or why it was refused."""
        for field in self._impair_inputs(way):
            if problem is None:
                field.value = field.shown = text or ""
            label = field.problem_label
            if label is not None:
                label.update(f"towards {way[1]}: {problem}" if problem else "")

    @on(Input.Changed, "ImpairInput")
    def _typing_impair(self, event: Input.Changed) -> None:
        field = event.input
        assert isinstance(field, ImpairInput)
        problem = None
        if event.value.strip():
            try:
                Impairment.parse(event.value)
            except ImpairmentError as exc:
                problem = str(exc)
        if field.problem_label is not None:
            field.problem_label.update(f"towards {field.way[1]}: {problem}" if problem else "")

    @on(Input.Submitted, "ImpairInput")
    @on(Input.Blurred, "ImpairInput")
    def _impair_edited(self, event: Input.Submitted | Input.Blurred) -> None:
        field = event.input
        assert isinstance(field, ImpairInput)
        if event.input.value.strip() != field.shown:
            field.shown = field.value.strip()
            self.post_message(self.ImpairEdited(*field.way, field.value.strip()))

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


class ImpairInput(Input):
    """One direction of a link's impairment: the text form, blank for none."""

    def __init__(self, way: tuple[str, str], text: str, problem_label: Label, **kwargs: Any) -> None:
        super().__init__(text, placeholder="none", **kwargs)
        self.way = way
        self.shown = text  # what the topology says: leaving the field unchanged edits nothing
        self.problem_label: Label | None = problem_label


def _impair_rows(topology: Topology, node: str, peers: list[str], read_only: bool) -> list[Any]:
    """Per link the worker carries, a field per direction: frames to the peer, and from it."""
    rows: list[Any] = []
    for peer in peers:
        ends = [topology.nodes.get(n) for n in (node, peer)]
        if not any(n is not None and n.kind in WORKER_KINDS for n in ends):
            continue  # bridge to host NIC: all in the kernel, nothing the worker could impair
        problem = Label("", classes="impair-problem")
        fields = []
        for way, name in (((node, peer), f"to {peer}"), ((peer, node), f"from {peer}")):
            text = topology.impair.get(way)
            field = ImpairInput(way, text if isinstance(text, str) else "", problem, disabled=read_only)
            fields.append(Horizontal(Label(_cut(name, 10), classes="name"), field, classes="row link"))
        rows += [Static(f"impair {node} – {peer}", classes="links"), *fields, problem]
    return rows


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
