"""The Textual app: draw, edit, validate and save a topology."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, OptionList
from textual.widgets.option_list import Option

from qnet_tui.model.diagnostics import Diagnostic, count_phrase, first_problems
from qnet_tui.model.edit import EditError, Editor
from qnet_tui.model.kinds import Kind
from qnet_tui.model.yamlio import Document, SaveError, load_file, new_document
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.dialogs import (
    AddNode,
    ChooseLink,
    Confirm,
    DemoTraffic,
    Help,
    ImportQemu,
    PathPrompt,
    UnsavedChanges,
)
from qnet_tui.ui.inspector import Inspector
from qnet_tui.ui.labclient import LabClient
from qnet_tui.ui.themes import CANVAS_VARIABLES, DEFAULT_THEME, load_themes
from qnet_tui.ui.traffic import PeerWatch, TrafficView, VlanPane, live_counters

MAX_PROBLEMS = 100  # problems the panel lists; it says how many more there are
SETTLE_S = 0.08  # the inspector and diagnostics follow the canvas after this pause


class QnetApp(App[None]):
    TITLE = "qnet-tui"
    CSS = """
    #body { height: 1fr; }
    TopologyCanvas { width: 1fr; }
    Inspector { width: 36; border-left: solid $primary; }
    #diagnostics { height: auto; max-height: 8; border-top: solid $primary; }
    #traffic { display: none; height: 55%; }
    #traffic.-shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("c", "connect", "Connect"),
        Binding("x", "disconnect", "Disconnect"),
        Binding("delete", "delete", "Delete"),
        Binding("d", "duplicate", "Duplicate"),
        Binding("ctrl+z", "undo", "Undo"),
        Binding("ctrl+y", "redo", "Redo"),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("f2", "save_as", "Save as"),
        Binding("ctrl+o", "open", "Open", priority=True),
        Binding("enter", "confirm", "Link here", show=True),
        Binding("escape", "cancel_connect", "Cancel", show=False),
        Binding("r", "run_lab", "Run"),
        Binding("s", "stop_lab", "Stop"),
        Binding("t", "toggle_traffic", "Traffic", show=False),
        Binding("w", "capture", "Capture", show=False),
        Binding("g", "demo_traffic", "Send traffic", show=False),
        Binding("p", "pause_log", "Pause log", show=False),
        Binding("slash", "filter_log", "Filter", show=False),
        Binding("question_mark", "help", "Keys"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]
    COMMANDS_HELP: ClassVar[dict[str, str]] = {
        "add": "Add a node: a form with the kind, id and attributes",
        "connect": "Connect the selected node to another (choose it, then enter)",
        "disconnect": "Remove one of the selected node's links",
        "delete": "Delete the selected node and its links",
        "duplicate": "Duplicate the selected node (new id and MAC)",
        "undo": "Undo the last edit",
        "redo": "Redo what was undone",
        "save": "Save the topology to its file",
        "save_as": "Save the topology to another file",
        "open": "Open another topology file",
        "import_qemu": "Import QEMU networking arguments as a new topology",
        "run_lab": "Run the lab: validate, then build the topology on screen and forward its frames",
        "stop_lab": "Stop the lab: everything it made is removed",
        "toggle_traffic": "Show or hide the traffic panes",
        "demo_traffic": "Send traffic from the selected guest NIC: ping, ARP, DHCP or a UDP burst",
        "capture": "Start or stop a pcap capture of the selected node's VLAN (or peer pair)",
        "pause_log": "Pause or resume the frame logs",
        "filter_log": "Filter the frame logs by protocol, MAC, address or node",
        "help": "Show every key",
        "confirm": "In connect mode: link to the node now selected",
        "quit": "Quit (asks first if there are unsaved changes)",
    }

    def __init__(self, document: Document, theme_errors: Iterable[str] = (), allow_host: bool = False) -> None:
        super().__init__()
        self.document = document
        self.allow_host = allow_host  # passed on to the worker: see `qnet-tui --help`
        self.editor = Editor(document.topology)
        self.connect_from: str | None = None
        self.theme_errors = list(theme_errors)
        self._pending: dict[str, Timer] = {}
        self.lab: LabClient | None = None
        self.lab_state: str | None = None  # starting, running, stopping, stopped, failed
        self.lab_reason: str | None = None
        self.lab_version: object = None  # the topology as the lab was started from it
        self.peers = PeerWatch()
        self._inspector_due = False
        self.settle_s = SETTLE_S
        self.full_gc_s = FULL_GC_S
        themes, errors = load_themes()
        self.theme_errors += errors
        for theme in themes:
            self.register_theme(theme)
        if DEFAULT_THEME in self.available_themes:
            self.theme = DEFAULT_THEME

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(CANVAS_VARIABLES)

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield TopologyCanvas(self.document.topology, id="canvas")
            yield Inspector(id="inspector")
        yield TrafficView(id="traffic")
        yield OptionList(id="diagnostics")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TopologyCanvas).focus()
        self.refresh_all()
        # The cyclic GC, left to itself, walks the whole UI in the middle of a
        # keypress now and then (100-180 ms on a 300-node topology). Objects
        # made at start-up are frozen out of its reach, and it runs when the
        # app is idle instead: a second after the last edit.
        gc.freeze()
        gc.disable()
        # Still collect while nothing is edited (a lab's panes make garbage all
        # the time): the young objects often, which is quick, everything each
        # minute. Textual's strips refer to themselves (their own caches), so
        # only a full collection frees a line once drawn: under a flood about
        # 0.02 MiB/s (benchmarks/soak.py), for ~30 ms each minute.
        self.set_interval(5.0, _collect_young)
        self.set_interval(self.full_gc_s, _collect_all)
        for error in self.theme_errors:
            self.notify(error, title="Theme not loaded", severity="warning", timeout=10)
        if not self.document.editable:
            self.notify(
                "The file's structure could not be read whole, so it is open read-only. "
                "Fix the errors below in a text editor; nothing was changed.",
                title="Read-only",
                severity="error",
                timeout=15,
            )

    def on_unmount(self) -> None:
        gc.enable()
        gc.unfreeze()

    @property
    def canvas(self) -> TopologyCanvas:
        return self.query_one(TopologyCanvas)

    @property
    def inspector(self) -> Inspector:
        return self.query_one(Inspector)

    def refresh_all(self, inspector: bool = True, select: str | None = None) -> None:
        """After an edit, a load, an undo: redraw and retitle now; revalidate
        and refill the inspector just after, so the key's effect shows first."""
        self.canvas.rebuild(self.document.topology, select=select)
        self.refresh_title()
        self._inspector_due = self._inspector_due or inspector
        self._later("slow", self.settle_s, self._refresh_slow)

    def _later(self, name: str, delay: float, callback: Callable[[], object]) -> None:
        """Run callback after delay, unless asked again before: then only the
        newest request runs. A delay of 0 runs it now."""
        timer = self._pending.pop(name, None)
        if timer is not None:
            timer.stop()
        if delay <= 0:
            callback()
        else:
            self._pending[name] = self.set_timer(delay, callback)

    def _refresh_slow(self) -> None:
        self._later("gc", 1.0, _collect_all)
        if self._inspector_due:
            self._inspector_due = False
            self.inspector.show_node(self.document.topology, self.canvas.selected, not self.document.editable)
        self.refresh_diagnostics()

    def refresh_title(self) -> None:
        doc = self.document
        name = doc.path.name if doc.path else "new topology"
        marker = " ●" if self.editor.changed else ""
        lab = f" — lab {doc.topology.name}" if isinstance(doc.topology.name, str) else ""
        state = ""
        if self.lab_state:
            state = f" [lab {self.lab_state}" + (f": {self.lab_reason}" if self.lab_reason else "")
            if self.lab_state == "running" and self.lab_version not in (None, self.editor.version):
                state += "; edited since: restart (s, r) to apply"
            state += "]"
        self.sub_title = f"{name}{marker}{lab}" + ("" if doc.editable else " (read-only)") + state

    def refresh_diagnostics(self) -> None:
        panel = self.query_one("#diagnostics", OptionList)
        diagnostics = self.document.diagnostics() if not self.editor.changed else self._live_diagnostics()
        # A list of 100,000 options would cost more than the validation did.
        self.diagnostics = first_problems(diagnostics, MAX_PROBLEMS)
        panel.clear_options()
        if not diagnostics:
            panel.add_option(Option(Text.assemble(("valid", "green"), ": no problems"), id="none", disabled=True))
            return
        where = not self.editor.changed  # line numbers hold only for the file as it was read
        options = []
        for i, d in enumerate(self.diagnostics):
            colour = "red" if d.is_error else "yellow"
            place = f"{d.line}:{d.col} " if where else ""
            node = f"[{d.node}] " if d.node and not where else ""
            options.append(Option(Text.assemble((f"{d.severity} ", colour), place, node, d.text), id=str(i)))
        if hidden := len(diagnostics) - len(self.diagnostics):
            more = f"and {hidden} more not shown ({count_phrase(diagnostics)} in all)"
            options.append(Option(Text(more, style="italic"), id="more", disabled=True))
        panel.add_options(options)

    def _live_diagnostics(self) -> list[Diagnostic]:
        from qnet_tui.model.validate import validate

        return [d for d in self.document.problems if not d.is_error] + validate(self.document.topology)

    # -- selection --------------------------------------------------------------------

    @on(TopologyCanvas.Selected)
    def _selected(self, event: TopologyCanvas.Selected) -> None:
        if self.inspector.node != event.node:
            # Walking across the canvas should not rebuild a form per step.
            self._later("inspect", self.settle_s, self._inspect_selected)
        if self.connect_from:
            self.notify_connect()

    def _inspect_selected(self) -> None:
        if self.inspector.node != self.canvas.selected:
            self.inspector.show_node(self.document.topology, self.canvas.selected, not self.document.editable)

    @on(OptionList.OptionSelected, "#diagnostics")
    @on(OptionList.OptionHighlighted, "#diagnostics")
    def _diagnostic_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and event.option.id.isdigit():
            d = self.diagnostics[int(event.option.id)]
            if d.node in self.document.topology.nodes:
                self.canvas.select(d.node)

    # -- editing ------------------------------------------------------------------------

    def _editable(self) -> bool:
        if not self.document.editable:
            self.notify("This file is open read-only: fix its structure in a text editor first.", severity="error")
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
        links = len(self.document.topology.neighbours(selected))
        question = f"Delete {selected}" + (f" and its {links} link(s)?" if links else "?")

        def done(yes: bool | None) -> None:
            if yes:
                self._apply("delete", self.editor.delete_node, selected)

        self.push_screen(Confirm(question, yes="Delete"), done)

    def action_duplicate(self) -> None:
        selected = self.canvas.selected
        if selected is not None:
            copy = self._apply("duplicate", self.editor.duplicate, selected)
            if copy:
                self.canvas.select(copy.id)

    def action_undo(self) -> None:
        if self.editor.undo():
            self.refresh_all()

    def action_redo(self) -> None:
        if self.editor.redo():
            self.refresh_all()

    @on(Inspector.Edited)
    def _inspector_edit(self, event: Inspector.Edited) -> None:
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

    # -- the lab ------------------------------------------------------------------------

    class LabMessage(Message):
        """A message from the worker's control socket (posted from its thread)."""

        def __init__(self, message: dict) -> None:
            super().__init__()
            self.message = message

        def can_replace(self, message: Message) -> bool:
            # A newer statistics snapshot makes an unhandled older one useless.
            return (
                isinstance(message, QnetApp.LabMessage)
                and message.message.get("type") == "stats"
                and self.message.get("type") == "stats"
            )

    class LabExited(Message):
        def __init__(self, client: LabClient, code: int, reason: str) -> None:
            super().__init__()
            self.client, self.code, self.reason = client, code, reason

    def action_run_lab(self) -> None:
        if self.lab is not None:
            self.notify(f"Lab {self.document.topology.name} is {self.lab_state}; stop it first (s)", severity="warning")
            return
        errors = [d for d in self._live_diagnostics() if d.is_error]
        if errors:
            self.notify(
                "\n".join(d.text for d in errors[:5]), title="Fix these before running", severity="error", timeout=10
            )
            return
        real = [n for n in self.document.topology.of_kind(Kind.HOST_NIC) if "interface" in n.attrs]
        if real and not self.allow_host:
            self.notify(
                f"{real[0].id} attaches this machine's interface {real[0].attrs['interface']}, which then leaves "
                "this machine for the lab while it runs. To allow that, start qnet-tui with --allow-host.",
                title="Not started",
                severity="error",
                timeout=10,
            )
            return
        try:
            text = (
                new_document(self.document.topology).dumps()
                if self.editor.changed or not self.document.path
                else self.document.dumps()
            )
        except SaveError as exc:
            self.notify(str(exc), title="Cannot run", severity="error")
            return
        client = LabClient(
            text,
            str(self.document.topology.name),
            on_message=lambda m: self.post_message(self.LabMessage(m)),
            on_exit=lambda code, reason: self.post_message(self.LabExited(client, code, reason)),
            allow_host=self.allow_host,
        )
        self.lab, self.lab_state, self.lab_reason = client, "starting", None
        self.lab_version = self.editor.version
        self.peers = PeerWatch()
        self.query_one(TrafficView).clear()
        self.query_one(TrafficView).add_class("-shown")
        client.start()
        self.refresh_title()

    def action_stop_lab(self) -> None:
        if self.lab is None:
            return
        self.lab_state = "stopping"
        self.lab.stop()
        self.refresh_title()

    def _pane_of(self, node: str | None) -> VlanPane | None:
        """The traffic pane of the VLAN (or direct pair) the node forwards in."""
        t = self.document.topology
        if node is None or node not in t.nodes:
            return None
        panes = self.query_one(TrafficView).panes.values()
        if t.nodes[node].kind is Kind.HUB:
            return next((pane for pane in panes if pane.hub == node), None)
        # By the port names the statistics carry: a pair's hub name joins
        # node ids with '-', and ids may hold '-' themselves.
        return next((pane for pane in panes if node in pane.ports), None)

    def action_capture(self) -> None:
        if self.lab is None or self.lab_state != "running":
            self.notify("Run the lab first (r)", severity="warning")
            return
        pane = self._pane_of(self.canvas.selected)
        if pane is None:
            self.notify("Select a hub, or a node on a hub or in a peer pair", severity="warning")
            return
        if pane.capturing:
            self.lab.send("capture", hub=pane.hub, path=None)
            self.notify(f"Capture of {pane.hub} stopped: {pane.capturing}")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"{self.document.topology.name}-{pane.hub}-{stamp}.pcap"

        def chosen(path: Path | None) -> None:
            if path is not None and self.lab is not None:
                self.lab.send("capture", hub=pane.hub, path=str(path.resolve()))

        self.push_screen(
            PathPrompt(f"Capture {pane.border_title} to", default.parent, str(default), must_exist=False), chosen
        )

    def action_demo_traffic(self) -> None:
        t = self.document.topology
        node = self.canvas.selected
        if self.lab is None or self.lab_state != "running" or self.lab.file is None:
            self.notify("Run the lab first (r)", severity="warning")
            return
        if node is None or t.nodes[node].kind is not Kind.GUEST_NIC:
            self.notify("Select the guest NIC to send from", severity="warning")
            return
        # Offer another guest of the same VLAN as the target.
        peers = {m for hub in t.neighbours(node) for m in t.neighbours(hub) if m != node}
        target = next(
            (
                str(t.nodes[m].attrs["ipv4"]).split("/")[0]
                for m in t.nodes
                if m in peers and t.nodes[m].kind is Kind.GUEST_NIC and "ipv4" in t.nodes[m].attrs
            ),
            "",
        )
        lab_file = self.lab.file

        def chosen(cmd: list[str] | None) -> None:
            if cmd:
                self._send_traffic(lab_file, node, cmd)

        self.push_screen(DemoTraffic(node, target), chosen)

    @work(group="traffic")
    async def _send_traffic(self, lab_file: Path, node: str, cmd: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qnet_tui",
            "exec",
            str(lab_file),
            node,
            "--",
            *cmd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        lines = [x for x in out.decode(errors="replace").splitlines() if x.strip()]
        summary = next((x for x in lines if "packet loss" in x or x.startswith("sent ")), lines[-1] if lines else "")
        self.notify(
            summary or f"exit status {proc.returncode}",
            title=f"{node}: {cmd[0].rsplit('/', 1)[-1]}",
            severity="information" if proc.returncode == 0 else "warning",
        )

    def action_toggle_traffic(self) -> None:
        self.query_one(TrafficView).toggle_class("-shown")

    def action_pause_log(self) -> None:
        view = self.query_one(TrafficView)
        view.paused = not view.paused
        self.notify("Frame logs paused (p resumes)" if view.paused else "Frame logs resumed")

    def action_filter_log(self) -> None:
        view = self.query_one(TrafficView)
        view.add_class("-shown")
        view.query_one("#filter").focus()

    @on(LabMessage)
    def _lab_message(self, event: LabMessage) -> None:
        msg = event.message
        kind = msg["type"]
        if kind == "state":
            self.lab_state, self.lab_reason = msg["state"], msg.get("reason")
            self.refresh_title()
        elif kind == "stats":
            self.query_one(TrafficView).show(msg)
            self.canvas.show_live(live_counters(msg))
            for port, connected in self.peers.update(msg):
                self.notify(f"{port}: " + ("a peer connected" if connected else "the peer disconnected"), title="Lab")
        elif kind == "samples":
            self.query_one(TrafficView).log_samples(msg["samples"])
        elif kind == "log" and msg.get("level") in ("warning", "error"):
            self.notify(str(msg.get("message")), title="Lab", severity=msg["level"])

    @on(LabExited)
    def _lab_exited(self, event: LabExited) -> None:
        if event.client is not self.lab:
            return
        self.lab = None
        self.canvas.show_live({})
        if self.lab_state in ("stopping", "stopped") and event.code == 0:
            self.lab_state, self.lab_reason = "stopped", None
        else:
            self.lab_state = "failed"
            self.lab_reason = event.reason or "the worker stopped unexpectedly"
            self.notify(
                f"{self.lab_reason}. Press r to start it again.", title="The lab failed", severity="error", timeout=15
            )
        self.refresh_title()

    async def _stop_lab_and_wait(self) -> None:
        if self.lab is not None:
            self.lab.stop()
            await asyncio.to_thread(self.lab.wait, 30)

    # -- files --------------------------------------------------------------------------

    def action_save(self) -> None:
        if self.document.path is None:
            self.action_save_as()
        else:
            self._save(self.document.path)

    def _save(self, path: Path) -> bool:
        if not self._editable():
            return False
        try:
            self.document.save(path)
        except (SaveError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=10)
            return False
        self.editor.mark_saved()
        self.refresh_title()
        self.notify(f"Saved {path}")
        return True

    def action_save_as(self) -> None:
        doc = self.document
        start = doc.path.parent if doc.path else Path.cwd()
        value = str(doc.path) if doc.path else str(Path.cwd() / f"{doc.topology.name or 'lab'}.yaml")
        self.push_screen(PathPrompt("Save as", start, value, must_exist=False), lambda p: p and self._save(p))

    @work(exclusive=True, group="files")
    async def action_open(self) -> None:
        if not await self._may_leave("open another file"):
            return
        start = self.document.path.parent if self.document.path else Path.cwd()
        path = await self.push_screen_wait(PathPrompt("Open a topology", start))
        if path is None:
            return
        doc = load_file(path)
        if not doc.editable:
            errors = [d.format(path.name) for d in doc.problems if d.is_error]
            self.notify("\n".join(errors[:6]), title=f"Cannot open {path.name}", severity="error", timeout=15)
            return
        self.document = doc
        self.editor = Editor(doc.topology)
        self.canvas.selected = None
        self.refresh_all()

    @work(exclusive=True, group="files")
    async def action_import_qemu(self) -> None:
        if not await self._may_leave("import QEMU arguments"):
            return
        argv = await self.push_screen_wait(ImportQemu())
        if not argv:
            return
        from qnet_tui.model.qemu import import_args

        marked: list[str] = []
        topology, problems = import_args(argv, marked)
        if not topology.nodes:
            self.notify(
                "\n".join(problems[:6]) or "No networking in those arguments",
                title="Nothing imported",
                severity="error",
                timeout=12,
            )
            return
        topology.name = "imported"
        self.document = new_document(topology)
        self.editor = Editor(topology)
        self.canvas.selected = None
        self.refresh_all()
        if problems:
            self.notify("\n".join(problems[:6]), title="Not imported", severity="warning", timeout=15)
        if marked:
            self.notify("\n".join(marked[:6]), title="Imported as external", timeout=15)

    async def _may_leave(self, doing: str) -> bool:
        """True when there is nothing unsaved, or the user saved or discarded it."""
        if not self.editor.changed:
            return True
        choice = await self.push_screen_wait(UnsavedChanges(doing))
        if choice == "save":
            if self.document.path is None:
                path = await self.push_screen_wait(
                    PathPrompt("Save as", Path.cwd(), str(Path.cwd() / "lab.yaml"), must_exist=False)
                )
                return bool(path) and self._save(path)
            return self._save(self.document.path)
        return choice == "discard"

    @work(exclusive=True, group="files")
    async def action_quit(self) -> None:
        if await self._may_leave("quit"):
            await self._stop_lab_and_wait()  # leave nothing behind
            self.exit()

    def action_help(self) -> None:
        # Every key with a description, the footer's and those kept out of it
        # (traffic keys); the first key of an action (ctrl+q quits too).
        first: dict[str, Binding] = {}
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.action in self.COMMANDS_HELP:
                first.setdefault(b.action, b)
        keys = [(self.get_key_display(b), self.COMMANDS_HELP[b.action]) for b in first.values()]
        keys += [
            ("arrows", "move the selection between nodes (left/right: across columns)"),
            ("tab", "next node; shift+tab: previous"),
            ("escape", "cancel connect mode"),
            ("mouse", "click a node to select it; click a problem to select its node"),
        ]
        self.push_screen(Help(keys))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for action, text in self.COMMANDS_HELP.items():
            if action == "confirm":
                continue  # a step of connect, not a command of its own
            title = action.replace("_", " ").capitalize()
            yield SystemCommand(title, text, lambda a=action: self.run_action(a))


# Python functions, not gc.collect itself: Textual's timers count a callback's
# parameters, and cannot for a builtin (the timer dies, and with it the app).
FULL_GC_S = 60.0  # seconds between full collections while the app runs


def _collect_young() -> None:
    gc.collect(1)


def _collect_all() -> None:
    gc.collect()


def run_app(path: str | None, theme: str | None = None, allow_host: bool = False) -> int:
    if path and Path(path).exists():
        document = load_file(path)
    else:
        document = new_document(path=Path(path) if path else None)
        if path:
            document.topology.name = Path(path).stem.replace(".", "-")[:32] or "lab"
    app = QnetApp(document, allow_host=allow_host)
    if theme:
        if theme not in app.available_themes:
            print(f"qnet-tui: no theme '{theme}'; themes: {', '.join(sorted(app.available_themes))}")
            return 2
        app.theme = theme
    app.run()
    return 0
