"""Modal screens: typed, each ending in dismiss(value)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DirectoryTree, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from qnet_tui.model import guests, placement
from qnet_tui.model.edit import default_attrs, next_id
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.validate import link_problem
from qnet_tui.model.values import ifname_problem
from qnet_tui.ui.fields import FieldEditor

FOCUS_MARK = ("▸ ", " ◂")  # around the label of the button enter presses


class _Modal(ModalScreen):
    """A dialog: escape cancels; left and right move between its buttons, and
    the button enter presses (at first the default one) is marked ▸ like this ◂."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("left", "next_button(-1)", "Previous button", show=False),
        Binding("right", "next_button(1)", "Next button", show=False),
    ]
    SUBMITS: ClassVar[dict[str, str]] = {}  # input id -> the button enter in it stands for
    DEFAULT_CSS = """
    _Modal { align: center middle; }
    _Modal > .dialog {
        width: 72; height: auto; max-height: 90%; padding: 1 2;
        border: thick $primary; background: $panel;
    }
    _Modal .question { width: 100%; margin-bottom: 1; }  /* wrapped, never clipped */
    _Modal .buttons { height: auto; margin-top: 1; align-horizontal: right; }
    _Modal Button { margin-left: 1; }
    _Modal .error { color: $error; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_next_button(self, step: int) -> None:
        # Only from a button: in an input, left and right move its cursor (the input's own keys come first).
        here = self.focused
        if not isinstance(here, Button) or here.parent is None:
            return
        row = list(here.parent.query_children(Button))
        i = row.index(here) + step
        if 0 <= i < len(row):
            # Now, not later as Widget.focus() does: the next key, maybe already
            # read with this one, must move on from the button this one chose.
            self.set_focus(row[i])

    # Both follow the focus as it is now: the blur of the old widget may come after the focus of the new.
    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._mark(self.focused)

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self._mark(self.focused)

    def _mark(self, focused: object) -> None:
        """Mark the button enter presses now: the one focused, or the one an
        input in focus submits to."""
        target = focused if isinstance(focused, Button) else None
        if target is None and isinstance(focused, Input) and focused.id in self.SUBMITS:
            target = self.query_one(f"#{self.SUBMITS[focused.id]}", Button)
        for button in self.query(Button):
            text = str(button.label)
            bare = text[len(FOCUS_MARK[0]) : -len(FOCUS_MARK[1])] if text.startswith(FOCUS_MARK[0]) else text
            want = f"{FOCUS_MARK[0]}{bare}{FOCUS_MARK[1]}" if button is target else bare
            if want != text:
                button.label = want


class Confirm(_Modal):
    """A yes/no question; dismisses with True or False (escape: False)."""

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(self.no, id="no")
                yield Button(self.yes, id="yes", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)


class UnsavedChanges(_Modal):
    """What to do with unsaved changes: "save", "discard", or None (cancel)."""

    def __init__(self, doing: str) -> None:
        super().__init__()
        self.doing = doing

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"The topology has unsaved changes. Save them before you {self.doing}?", classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Discard", id="discard", variant="error")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#save", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class ApplyChanges(_Modal):
    """What applying the edits to the running lab changes; dismisses with
    "apply", "restart" or None (cancel). Refused (`why`): restart or cancel."""

    DEFAULT_CSS = """
    ApplyChanges .changes { height: auto; max-height: 20; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, lab: str, changes: list[str], why: str | None = None) -> None:
        super().__init__()
        self.lab, self.changes, self.why = lab, changes, why

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            if self.why:
                question = f"Lab {self.lab} cannot take these edits while it runs: {self.why}. Restart it?"
            else:
                question = f"Apply these edits to lab {self.lab}? What they leave alone keeps forwarding."
            yield Static(question, classes="question")
            with VerticalScroll(classes="changes"):
                yield Static("\n".join(self.changes), markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Restart", id="restart", variant="warning")
                if not self.why:
                    yield Button("Apply", id="apply", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#restart" if self.why else "#apply", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class AddNode(_Modal):
    """The add-node form: kind, id and the kind's fields, filled with defaults.
    Dismisses with (kind, id, attrs, link_to) or None."""

    SUBMITS: ClassVar[dict[str, str]] = {"node-id": "add"}

    DEFAULT_CSS = """
    AddNode #fields { height: auto; max-height: 20; }
    AddNode Select { width: 30; }
    """

    def __init__(self, topology: Topology, kind: Kind = Kind.GUEST_NIC, link_to: str | None = None) -> None:
        super().__init__()
        self.topology = topology
        self.kind = kind
        self.link_to = link_to

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add a node", classes="question")
            yield Select([(k.title, k) for k in Kind], value=self.kind, allow_blank=False, id="kind")
            yield Input(id="node-id", placeholder="id (an interface name)")
            yield Label("", id="id-error", classes="error")
            yield VerticalScroll(id="fields")
            yield Checkbox("", id="link", value=True)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Add", id="add", variant="primary")

    def on_mount(self) -> None:
        self._fill()

    def _fill(self) -> None:
        node_id = next_id(self.topology, self.kind)
        self.query_one("#node-id", Input).value = node_id
        fields = self.query_one("#fields", VerticalScroll)
        fields.remove_children()
        attrs = default_attrs(self.topology, self.kind, node_id)
        target = self.topology.nodes.get(self.link_to) if self.link_to else None
        if self.kind is Kind.GUEST_NIC and target is not None and target.kind is Kind.GUEST:
            attrs["guest"] = target.id  # `a` on a guest adds it a NIC
        choices = {"guest": guests.guest_ids(self.topology), "host": placement.host_names(self.topology)}
        fields.mount(FieldEditor(self.kind, attrs, choices))
        self._update_link_choice()

    def _update_link_choice(self) -> None:
        box = self.query_one("#link", Checkbox)
        target = self.link_to
        if target and target in self.topology.nodes:
            probe = Topology(nodes=dict(self.topology.nodes), links=list(self.topology.links))
            from qnet_tui.model.topology import Node

            probe.add(Node("\0new", self.kind, {}))
            allowed = link_problem(probe, "\0new", target) is None
            box.label = f"link it to {target}"
            box.display = allowed
            box.value = allowed
        else:
            box.display = False
            box.value = False

    @on(Select.Changed, "#kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self.kind = event.value
        self._fill()

    @on(Input.Changed, "#node-id")
    def _id_changed(self, event: Input.Changed) -> None:
        problem = ifname_problem(event.value)
        if not problem and event.value in self.topology.nodes:
            problem = "is taken"
        self.query_one("#id-error", Label).update(f"id {problem}" if problem else "")

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#add")
    @on(Input.Submitted, "#node-id")
    def _add(self) -> None:
        node_id = self.query_one("#node-id", Input).value.strip()
        editor = self.query_one(FieldEditor)
        attrs, problems = editor.values()
        if problems or self.query_one("#id-error", Label).render().plain:
            self.notify("Fix the marked fields first", severity="warning")
            return
        link = self.link_to if self.query_one("#link", Checkbox).value else None
        self.dismiss((self.kind, node_id, attrs, link))


class ChooseLink(_Modal):
    """Which of a node's links to remove; dismisses with the peer's id or None."""

    def __init__(self, node: str, peers: list[str]) -> None:
        super().__init__()
        self.node, self.peers = node, peers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Disconnect {self.node} from:", classes="question")
            yield OptionList(*[Option(f"{self.node} ── {p}", id=p) for p in self.peers], id="peers")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class YamlTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if (p.is_dir() and not p.name.startswith(".")) or p.suffix in (".yaml", ".yml")]


class PathPrompt(_Modal):
    """Ask for a file path, with a tree of the folder to pick from; dismisses
    with the Path or None."""

    DEFAULT_CSS = """
    PathPrompt YamlTree { height: 16; margin-top: 1; }
    """
    SUBMITS: ClassVar[dict[str, str]] = {"path": "ok"}

    def __init__(self, title: str, start: Path, value: str = "", must_exist: bool = True) -> None:
        super().__init__()
        self.title_text, self.start, self.value, self.must_exist = title, start, value, must_exist

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="question")
            yield Input(value=self.value, placeholder="path to a .yaml file", id="path")
            yield Label("", id="path-error", classes="error")
            yield from self.extra()
            yield YamlTree(self.start, id="tree")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#path", Input).value = str(event.path)
        if self.must_exist:
            self._ok()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted, "#path")
    def _ok(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        path = Path(text).expanduser()
        error = ""
        if not text:
            error = "give a file name"
        elif self.must_exist and not path.is_file():
            error = f"no such file: {path}"
        elif not self.must_exist and not path.parent.is_dir():
            error = f"no such folder: {path.parent}"
        if error:
            self.query_one("#path-error", Label).update(error)
            return
        self.dismiss(self.result(path))

    def extra(self) -> ComposeResult:
        """More fields, under the path (a subclass's)."""
        yield from ()

    def result(self, path: Path) -> object:
        return path


class CapturePrompt(PathPrompt):
    """Where a capture goes, and an optional capture filter (tcpdump's syntax):
    dismisses with (Path, filter text) or None. The filter is compiled by the
    caller, off the event loop (libpcap may look a host name up)."""

    SUBMITS: ClassVar[dict[str, str]] = {"path": "ok", "filter": "ok"}

    def extra(self) -> ComposeResult:
        yield Input(placeholder="capture filter, as tcpdump's: icmp or arp (blank: every frame)", id="filter")

    def result(self, path: Path) -> tuple[Path, str]:
        return path, self.query_one("#filter", Input).value.strip()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self._ok()


HELP_HEADING = "Keys. Escape closes this list; ctrl+p opens the command palette, which has every action too."


class Help(_Modal):
    """Every key of the app and what it does."""

    DEFAULT_CSS = """
    Help > .dialog { width: 100; max-width: 95%; }
    Help Grid { grid-size: 2; grid-columns: 14 1fr; height: auto; grid-gutter: 0 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("question_mark", "cancel", "Close", show=False),
        Binding("q", "cancel", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Label(HELP_HEADING, classes="question")
            with Grid():
                for key, text in self.keys:
                    yield Label(f"[b]{key}[/b]")
                    yield Label(text)


class DemoTraffic(_Modal):
    """What traffic to send from a guest NIC; dismisses with the command
    (argv to run inside the guest) or None. A VM guest's NIC (vm_ifname: its
    interface there) gets what its busybox has: ping and arping."""

    DEFAULT_CSS = """
    DemoTraffic Select { width: 40; }
    DemoTraffic .row { height: auto; }
    DemoTraffic .row Label { width: 10; padding: 1 1 0 0; }
    DemoTraffic .row Input { width: 1fr; }
    """
    SUBMITS: ClassVar[dict[str, str]] = {"target": "send", "count": "send"}
    COUNTS: ClassVar[dict[str, str]] = {"ping": "3", "udp": "100"}  # what each sends unless told; arp, dhcp: one

    def __init__(self, node: str, target: str, vm_ifname: str | None = None) -> None:
        super().__init__()
        self.node, self.target, self.vm_ifname = node, target, vm_ifname

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Send traffic from {self.node}", classes="question")
            kinds = [("ping an address", "ping"), ("ARP who-has", "arp")]
            if self.vm_ifname is None:
                kinds += [("DHCP discover", "dhcp"), ("a burst of UDP frames", "udp")]
            yield Select(
                kinds,
                value="ping",
                allow_blank=False,
                id="what",
            )
            with Horizontal(classes="row", id="target-row"):
                yield Label("address")
                yield Input(self.target, placeholder="an IPv4 address in the VLAN", id="target")
            with Horizontal(classes="row", id="count-row"):
                yield Label("how many")
                yield Input(self.COUNTS["ping"], placeholder="frames (or pings) to send", id="count")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Send", id="send", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()  # enter sends at once: ping the offered guest

    @on(Select.Changed, "#what")
    def _what_changed(self, event: Select.Changed) -> None:
        what = str(event.value)
        self.query_one("#target-row").display = what != "dhcp"
        self.query_one("#count-row").display = what in self.COUNTS
        if what in self.COUNTS:
            self.query_one("#count", Input).value = self.COUNTS[what]

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#send")
    @on(Input.Submitted)
    def _send(self) -> None:
        what = self.query_one("#what", Select).value
        target = self.query_one("#target", Input).value.strip()
        count = self.query_one("#count", Input).value.strip()
        if what in ("ping", "arp", "udp") and not target:
            self.notify("Give an address", severity="warning")
            return
        if what in self.COUNTS and not (count.isdigit() and int(count) > 0):
            self.notify("Give how many to send: a whole number, 1 or more", severity="warning")
            return
        if what == "ping":
            self.dismiss(["ping", "-c", count, "-i", "0.2", "-W", "1", target])
        elif self.vm_ifname is not None:
            self.dismiss(["arping", "-c", "1", "-I", self.vm_ifname, target])
        elif what == "udp":
            self.dismiss([sys.executable, "-m", "qnet_tui.lab.demo", "udp", target, count])
        else:
            self.dismiss([sys.executable, "-m", "qnet_tui.lab.demo", what, *([target] if what == "arp" else [])])


class ImportQemu(_Modal):
    """QEMU networking arguments to read; dismisses with the argument list or None."""

    SUBMITS: ClassVar[dict[str, str]] = {"args": "import"}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Paste QEMU networking arguments (-net, -nic, -netdev, -device):", classes="question")
            yield Input(placeholder="-netdev tap,id=n0,ifname=tap0 -device e1000,netdev=n0", id="args")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Import", id="import", variant="primary")

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#import")
    @on(Input.Submitted)
    def _import(self) -> None:
        import shlex

        try:
            argv = shlex.split(self.query_one("#args", Input).value)
        except ValueError as exc:
            self.notify(f"Cannot read the arguments: {exc}", severity="error")
            return
        if argv:
            self.dismiss(argv)
