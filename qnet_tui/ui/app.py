"""The Textual app: draw, edit, validate and save a topology, and run it.

The app is the composition and the keys: the canvas and inspector edit
through the Editor, files.py opens and saves, the LabPanel runs the lab."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, OptionList
from textual.worker import Worker, WorkerState

from qnet_tui.model.diagnostics import Diagnostic
from qnet_tui.model.edit import Editor
from qnet_tui.model.yamlio import Document, load_file, new_document
from qnet_tui.protocol import LabState
from qnet_tui.ui import files, gcpolicy, keys
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.dialogs import Help
from qnet_tui.ui.editing import EditKeys
from qnet_tui.ui.inspector import Inspector
from qnet_tui.ui.labpanel import LabPanel
from qnet_tui.ui.problems import ProblemList
from qnet_tui.ui.themes import CANVAS_VARIABLES, DEFAULT_THEME, load_themes

SETTLE_S = 0.08  # the inspector and diagnostics follow the canvas after this pause


class QnetApp(EditKeys, App[None]):
    TITLE = "qnet-tui"
    CSS = """
    #body { height: 1fr; }
    TopologyCanvas { width: 1fr; }
    Inspector { width: 36; border-left: solid $primary; }
    #diagnostics { height: auto; max-height: 8; border-top: solid $primary; }
    """
    BINDINGS = keys.BINDINGS
    COMMANDS_HELP = keys.COMMANDS_HELP

    def __init__(
        self,
        document: Document,
        theme_errors: Iterable[str] = (),
        allow_host: bool = False,
        imported: tuple[Path, list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.document = document
        self.imported = imported  # the file the document was imported from, and what was left out
        self.allow_host = allow_host
        self.editor = Editor(document.topology)
        self.connect_from: str | None = None
        self.busy: str | None = None  # a save or a lab start reads the topology in a thread: no edits meanwhile
        self.theme_errors = list(theme_errors)
        self._pending: dict[str, Timer] = {}
        self._inspector_due = False
        self.settle_s = SETTLE_S
        self.full_gc_s = gcpolicy.FULL_GC_S
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
        yield LabPanel(allow_host=self.allow_host, id="lab")
        yield ProblemList(id="diagnostics")
        yield Footer()

    def on_mount(self) -> None:
        self.canvas.focus()
        self.refresh_all()
        gcpolicy.take_over(self, self.full_gc_s)
        for error in self.theme_errors:
            self.notify(error, title="Theme not loaded", severity="warning", timeout=10)
        if self.imported is not None:
            files.tell_import(self, self.imported[0], self.document, self.imported[1])
        if not self.document.editable:
            self.notify(
                "The file's structure could not be read whole, so it is open read-only. "
                "Fix the errors below in a text editor; nothing was changed.",
                title="Read-only",
                severity="error",
                timeout=15,
            )

    def on_unmount(self) -> None:
        gcpolicy.give_back()

    @property
    def canvas(self) -> TopologyCanvas:
        return self.query_one(TopologyCanvas)

    @property
    def inspector(self) -> Inspector:
        return self.query_one(Inspector)

    @property
    def lab(self) -> LabPanel:
        return self.query_one(LabPanel)

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
            self._pending[name] = self.set_timer(delay, lambda: self._while_composed(callback))

    def _while_composed(self, callback: Callable[[], object]) -> None:
        # A timer may fire while the app closes, its widgets already gone.
        if self.query(Inspector) and self.query(TopologyCanvas):
            callback()

    def _refresh_slow(self) -> None:
        self._later("gc", 1.0, gcpolicy.collect_all)
        if self._inspector_due:
            self._inspector_due = False
            self.inspector.show_node(self.document.topology, self.canvas.selected, not self.document.editable)
        self.refresh_diagnostics()

    @property
    def unsaved(self) -> bool:
        """Edits since the last save, or nodes in no file at all (an import)."""
        return self.editor.changed or (self.document.path is None and bool(self.document.topology.nodes))

    def refresh_title(self) -> None:
        doc, lab = self.document, self.lab
        name = doc.path.name if doc.path else "new topology"
        marker = " ●" if self.unsaved else ""
        lab_name = f" — lab {doc.topology.name}" if isinstance(doc.topology.name, str) else ""
        state = ""
        if lab.state:
            state = f" [lab {lab.state}" + (f": {lab.reason}" if lab.reason else "")
            if lab.state is LabState.RUNNING and lab.version not in (None, self.editor.version):
                state += "; edited since: r applies the edits"
            if lab.scenario_line:
                state += f"; {lab.scenario_line}"
            state += "]"
        self.sub_title = f"{name}{marker}{lab_name}" + ("" if doc.editable else " (read-only)") + state

    def refresh_diagnostics(self) -> None:
        diagnostics = self.document.diagnostics() if not self.editor.changed else self._live_diagnostics()
        # Line numbers hold only for the file as it was read.
        self.query_one(ProblemList).show(diagnostics, placed=not self.editor.changed)

    def _live_diagnostics(self) -> list[Diagnostic]:
        from qnet_tui.model.validate import validate

        return [d for d in self.document.problems if not d.is_error] + validate(self.document.topology)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Whatever fails in a worker is said, and the app goes on."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title=f"{event.worker.name} failed", severity="error")

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
        d = self.query_one(ProblemList).problem(event.option.id)
        if d is not None and d.node in self.document.topology.nodes:
            self.canvas.select(d.node)

    # -- the lab ------------------------------------------------------------------------

    @work(exclusive=True, group="lab", exit_on_error=False)
    async def action_run_lab(self) -> None:
        if self.lab.running:
            await self._apply_to_lab()
            return
        if self.lab.stopping:
            await self.lab.gone()
        refused = self.lab.refusal(self.document)
        errors = [d.text for d in self._live_diagnostics() if d.is_error]
        if refused is None and errors:
            refused = ("Fix these before running", "\n".join(errors[:5]))
        if refused is not None:
            self.notify(refused[1], title=refused[0], severity="error", timeout=10)
            return
        if self._editable():
            with self._busy("the lab is starting"):
                await self.lab.run(self.document, self.editor.changed, self.editor.version)

    async def _apply_to_lab(self) -> None:
        """r on a running lab: what the edits since it started change, to apply or restart."""
        if self.lab.version == self.editor.version:
            self.notify(f"Lab {self.document.topology.name} runs the topology as it is; s stops it", title="Running")
            return
        errors = [d.text for d in self._live_diagnostics() if d.is_error]
        if errors:
            self.notify("\n".join(errors[:5]), title="Fix these before applying", severity="error", timeout=10)
            return
        await self.lab.offer_apply(self.document, self.editor.version)

    @on(LabPanel.Restart)
    def _restart_lab(self) -> None:
        self.lab.stop()
        self.action_run_lab()

    def action_stop_lab(self) -> None:
        self.lab.stop()

    # The lab's last messages may come while the app closes and its widgets are gone.
    @on(LabPanel.StateChanged)
    def _lab_state(self) -> None:
        if self.query(LabPanel):
            self.refresh_title()

    @on(LabPanel.Live)
    def _lab_live(self, event: LabPanel.Live) -> None:
        for canvas in self.query(TopologyCanvas):
            canvas.show_live(event.counters)

    @on(LabPanel.LinksDown)
    def _lab_links_down(self, event: LabPanel.LinksDown) -> None:
        for canvas in self.query(TopologyCanvas):
            canvas.show_down(event.links)

    @on(LabPanel.Impairs)
    def _lab_impairs(self, event: LabPanel.Impairs) -> None:
        for canvas in self.query(TopologyCanvas):
            canvas.show_impairments(event.specs, event.drops, event.complete)

    def action_toggle_link(self) -> None:
        self.lab.toggle_link(self.document.topology, self.canvas.selected)

    def action_scenario(self) -> None:
        self.lab.scenario(self.document.topology)

    def action_capture(self) -> None:
        self.lab.capture(self.document.topology, self.canvas.selected)

    def action_keep_last(self) -> None:
        self.lab.keep_last(self.document.topology, self.canvas.selected)

    def action_demo_traffic(self) -> None:
        self.lab.demo_traffic(self.document.topology, self.canvas.selected)

    def action_console(self) -> None:
        self.lab.open_console(self.document.topology, self.canvas.selected)

    def action_restart_vm(self) -> None:
        self.lab.restart_vm(self.document.topology, self.canvas.selected)

    def action_toggle_traffic(self) -> None:
        self.lab.toggle()

    def action_pause_log(self) -> None:
        self.lab.pause_log()

    def action_filter_log(self) -> None:
        self.lab.filter_log()

    def action_bpf_filter(self) -> None:
        self.lab.bpf_filter()

    def action_conversations(self) -> None:
        self.lab.toggle_conversations(self.document.topology, self.canvas.selected)

    def action_enter_pane(self) -> None:
        self.lab.enter_pane(self.document.topology, self.canvas.selected)

    # -- files --------------------------------------------------------------------------

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_save(self) -> None:
        if not self._editable():
            return
        path = self.document.path or await files.ask_path(self, self.document)
        if path is not None:
            await self._save(path)

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_save_as(self) -> None:
        if not self._editable():  # say so before asking where
            return
        path = await files.ask_path(self, self.document)
        if path is not None:
            await self._save(path)

    async def _save(self, path: Path) -> bool:
        if not self._editable():
            return False
        with self._busy("saving"):
            saved = await files.save(self, self.document, path)
        if saved:
            self.editor.mark_saved()
            self.refresh_title()
        return saved

    async def _may_leave(self, doing: str) -> bool:
        """True when there is nothing unsaved, or the user saved or discarded it."""
        if self.busy:
            self.notify(f"A moment: {self.busy}", severity="warning")
            return False
        with self._busy("saving"):
            answer = await files.may_leave(self, self.document, self.unsaved, doing)
        if isinstance(answer, Path):
            self.editor.mark_saved()
            self.refresh_title()
        return answer is not False

    def _switch_to(self, document: Document) -> None:
        self.document = document
        self.editor = Editor(document.topology)
        self.canvas.selected = None
        self.refresh_all()

    def _lab_in_the_way(self, doing: str) -> bool:
        """A lab runs from the topology on screen: its panes, g and w speak of
        that one, so another one on screen would mislead them."""
        if self.lab.client is None:
            return False
        if self.lab.stopping:
            self.notify("A moment: the lab is stopping", severity="warning")
        else:
            self.notify(f"The lab runs this topology: stop it first (s), then {doing}", title="Lab running")
        return True

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_open(self) -> None:
        if not self._lab_in_the_way("open another file") and await self._may_leave("open another file"):
            start = self.document.path.parent if self.document.path else Path.cwd()
            doc = await files.open_file(self, start)
            if doc is not None:
                self._switch_to(doc)

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_import_qemu(self) -> None:
        if not self._lab_in_the_way("import") and await self._may_leave("import QEMU arguments"):
            doc = await files.import_qemu(self)
            if doc is not None:
                self._switch_to(doc)

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_export_clab(self) -> None:
        await files.export_to(self, self.document, "clab")

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_export_mermaid(self) -> None:
        await files.export_to(self, self.document, "mermaid")

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_export_dot(self) -> None:
        await files.export_to(self, self.document, "dot")

    @work(exclusive=True, group="files", exit_on_error=False)
    async def action_quit(self) -> None:
        if await self._may_leave("quit"):
            await self.lab.stop_and_wait()  # leave nothing behind
            self.exit()

    def action_help(self) -> None:
        self.push_screen(Help(keys.help_rows(self)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        ours = list(keys.system_commands(self))
        # Textual's own Quit (it would call ours anyway) and Keys (its key panel) would be twins of ours.
        taken = {c.title for c in ours}
        yield from (c for c in super().get_system_commands(screen) if c.title not in taken)
        yield from ours


def run_app(path: str | None, theme: str | None = None, allow_host: bool = False) -> int:
    imported = None
    # A containerlab or GNS3 name is imported, never made anew: a topology saved under it would not open again.
    if path and files.is_import(Path(path)):
        found, report = files.import_document(Path(path))
        if found is None:
            print("\n".join(f"qnet-tui: {line}" for line in report), file=sys.stderr)
            return 1
        document, imported = found, (Path(path), report)
    elif path and Path(path).exists():
        document = load_file(path)
    else:
        document = new_document(path=Path(path) if path else None)
        if path:
            document.topology.name = Path(path).stem.replace(".", "-")[:32] or "lab"
    app = QnetApp(document, allow_host=allow_host, imported=imported)
    if theme:
        if theme not in app.available_themes:
            print(f"qnet-tui: no theme '{theme}'; themes: {', '.join(sorted(app.available_themes))}")
            return 2
        app.theme = theme
    app.run()
    return 0
