"""The editing keys of the app: add, connect, disconnect, delete,
duplicate, undo, redo and the inspector's edits, each through the Editor,
whose refusals are shown with the rule that forbids them. A mixin of QnetApp
(it uses the app's document, editor, canvas and refresh_all)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qnet_tui.model.edit import EditError
from qnet_tui.model.kinds import Kind
from qnet_tui.ui.dialogs import AddNode, ChooseLink, Confirm
from qnet_tui.ui.inspector import Inspector

if TYPE_CHECKING:
    from qnet_tui.model.edit import Editor
    from qnet_tui.model.yamlio import Document
    from qnet_tui.ui.canvas import TopologyCanvas
    from qnet_tui.ui.labpanel import LabPanel


class EditKeys:
    document: Document
    editor: Editor
    connect_from: str | None
    busy: str | None  # a save or a lab start reads the topology in a thread: no edits meanwhile

    if TYPE_CHECKING:  # the app's

        @property
        def canvas(self) -> TopologyCanvas: ...
        @property
        def inspector(self) -> Inspector: ...
        def refresh_all(self, inspector: bool = True, select: str | None = None) -> None: ...
        def refresh_title(self) -> None: ...
        def notify(self, message: str, **kwargs: Any) -> None: ...
        def push_screen(self, screen: Any, callback: Any = None) -> Any: ...
        def refresh_bindings(self) -> None: ...
        @property
        def lab(self) -> LabPanel: ...

    @contextlib.contextmanager
    def _busy(self, doing: str) -> Iterator[None]:
        self.busy = doing
        try:
            yield
        finally:
            self.busy = None

    def _editable(self) -> bool:
        if not self.document.editable:
            self.notify("This file is open read-only: fix its structure in a text editor first.", severity="error")
            return False
        if self.busy:
            self.notify(f"A moment: {self.busy}", severity="warning")
            return False
        return True

    def _apply(self, what: str, edit: Any, *args: Any, select: str | None = None) -> Any:
        """Run one Editor operation; a refusal is shown with the rule that forbids it."""
        if not self._editable():
            return None
        try:
            result = edit(*args)
        except EditError as exc:
            self.notify(str(exc), title=f"Cannot {what}", severity="error")
            return None
        self.refresh_all(select=select)
        return result if result is not None else True

    def action_add(self) -> None:
        if not self._editable():
            return
        self.push_screen(AddNode(self.document.topology, link_to=self.canvas.selected), self._added)

    def _added(self, result: tuple[Kind, str, dict, str | None] | None) -> None:
        if result is None:
            return
        kind, node_id, attrs, link_to = result
        if self._apply("add the node", self.editor.add_node, kind, node_id, attrs, select=node_id) and link_to:
            self._apply("link it", self.editor.connect, node_id, link_to)

    def action_connect(self) -> None:
        if not self._editable():
            return
        if self.canvas.selected is None:
            self.notify("Select the node to connect from first", severity="warning")
            return
        self.connect_from = self.canvas.selected
        self.notify_connect()
        self.refresh_bindings()

    def notify_connect(self) -> None:
        self.sub_title = f"connect {self.connect_from} → {self.canvas.selected}: enter to link, escape to cancel"

    def action_confirm(self) -> None:
        if self.connect_from is None:
            return
        source, target = self.connect_from, self.canvas.selected
        self.connect_from = None
        self.refresh_bindings()
        if target is None or target == source:
            self.refresh_title()
            return
        self._apply("connect", self.editor.connect, source, target)
        self.refresh_title()

    def action_cancel_connect(self) -> None:
        if self.connect_from is not None:
            self.connect_from = None
            self.refresh_bindings()
            self.refresh_title()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("confirm", "cancel_connect"):
            return self.connect_from is not None
        return True  # undo and redo stay shown: a footer that changes per edit costs a recompose per key

    def action_disconnect(self) -> None:
        selected = self.canvas.selected
        if not self._editable() or selected is None:
            return
        peers = self.document.topology.neighbours(selected)
        if not peers:
            self.notify(f"{selected} has no links", severity="warning")
        elif len(peers) == 1:
            self._apply("disconnect", self.editor.disconnect, selected, peers[0])
        else:
            self.push_screen(
                ChooseLink(selected, peers),
                lambda peer: peer and self._apply("disconnect", self.editor.disconnect, selected, peer),
            )

    def action_delete(self) -> None:
        selected = self.canvas.selected
        if not self._editable() or selected is None:
            return
        peers = self.document.topology.neighbours(selected)
        question = f"Delete {selected}" + (f" and its {len(peers)} link(s)?" if peers else "?")

        def done(yes: bool | None) -> None:
            if yes:
                # The selection stays where it was: on a neighbour, not the first node.
                self._apply("delete", self.editor.delete_node, selected, select=peers[0] if peers else None)

        self.push_screen(Confirm(question, yes="Delete"), done)

    def action_duplicate(self) -> None:
        selected = self.canvas.selected
        if selected is not None:
            copy = self._apply("duplicate", self.editor.duplicate, selected)
            if copy:
                self.canvas.select(copy.id)

    def action_edit_node(self) -> None:
        if self.canvas.selected is None:
            self.notify("Select the node to edit first", severity="warning")
            return
        if self.inspector.node != self.canvas.selected:  # still walking: build its form now
            self.inspector.show_node(self.document.topology, self.canvas.selected, not self.document.editable)
        self.inspector.edit()

    def action_undo(self) -> None:
        label = self.editor.undo_label
        if self._editable() and self.editor.undo():
            self.refresh_all()
            self.notify(f"Undone: {label} (ctrl+y redoes it)", timeout=3)

    def action_redo(self) -> None:
        label = self.editor.redo_label
        if self._editable() and self.editor.redo():
            self.refresh_all()
            self.notify(f"Redone: {label}", timeout=3)

    def on_inspector_edited(self, event: Inspector.Edited) -> None:
        # By name, not @on: Textual gathers @on handlers of its own classes only, not of a mixin.
        if not self._editable():
            return
        try:
            if event.name == "id":
                self.editor.rename(event.node, event.value)
            elif event.value is None:
                self.editor.del_attr(event.node, event.name)
            else:
                self.editor.set_attr(event.node, event.name, event.value)
        except EditError as exc:
            self.inspector.show_problem(event.name, exc.problem or str(exc))
            return
        self.refresh_all(inspector=event.name == "id", select=event.value if event.name == "id" else None)

    def on_inspector_impair_edited(self, event: Inspector.ImpairEdited) -> None:
        """A link direction's impairment: into the topology (undoable, saved as
        the link's impair:) and, while the lab runs, into the lab at once."""
        if not self._editable():
            return
        way = (event.a, event.b)
        before, version = self.document.topology.impair.get(way), self.editor.version
        try:
            kept = self.editor.set_impair(event.a, event.b, event.text)
        except EditError as exc:
            self.inspector.show_impair(way, None, exc.problem)
            return
        self.inspector.show_impair(way, kept)
        if kept == before:
            return
        lab = self.lab
        if lab.running:
            lab.impair(event.a, event.b, kept or "none")
            if lab.version == version:  # the lab was the topology before this edit, and is again after it
                lab.version = self.editor.version
        self.refresh_all(inspector=False)
