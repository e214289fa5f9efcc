"""The app's keys: what each does (the `?` screen and the command palette
say the same), and the rows of the `?` screen."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType

BINDINGS: list[BindingType] = [
    Binding("a", "add", "Add"),
    Binding("c", "connect", "Connect"),
    Binding("x", "disconnect", "Disconnect"),
    Binding("delete", "delete", "Delete"),
    Binding("d", "duplicate", "Duplicate"),
    Binding("e", "edit_node", "Edit", show=False),
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
    Binding("W", "keep_last", "Keep last 30 s", show=False),
    Binding("l", "toggle_link", "Cable", show=False),
    Binding("S", "scenario", "Scenario", show=False),
    Binding("g", "demo_traffic", "Send traffic", show=False),
    Binding("v", "console", "Console", show=False),
    Binding("V", "restart_vm", "Restart VM", show=False),
    Binding("p", "pause_log", "Pause log", show=False),
    Binding("slash", "filter_log", "Filter", show=False),
    Binding("b", "bpf_filter", "BPF filter", show=False),
    Binding("o", "conversations", "Conversations", show=False),
    Binding("f", "enter_pane", "Into the pane", show=False),
    Binding("question_mark", "help", "Keys"),
    Binding("q", "quit", "Quit"),
    Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
]
COMMANDS_HELP: dict[str, str] = {
    "add": "Add a node: a form with the kind, id and attributes",
    "connect": "Connect the selected node to another (choose it, then enter)",
    "disconnect": "Remove one of the selected node's links",
    "delete": "Delete the selected node and its links",
    "duplicate": "Duplicate the selected node (new id, MAC and addresses)",
    "edit_node": "Edit the selected node in the inspector: tab between fields, escape goes back to the canvas",
    "undo": "Undo the last edit",
    "redo": "Redo what was undone",
    "save": "Save the topology to its file",
    "save_as": "Save the topology to another file",
    "open": "Open another topology file (a containerlab .clab.yml or a GNS3 .gns3 is imported)",
    "import_qemu": "Import QEMU networking arguments as a new topology",
    "export_clab": "Export as a containerlab topology: FILE.clab.yml next to the file (what it cannot say is listed)",
    "export_mermaid": "Export as a Mermaid diagram: FILE.mmd next to the file",
    "export_dot": "Export as a Graphviz DOT graph: FILE.dot next to the file",
    "run_lab": (
        "Run the lab: validate, then build the topology on screen and forward its frames; on a running lab, "
        "show what the edits since change and apply them (or restart it)"
    ),
    "stop_lab": "Stop the lab: everything it made is removed",
    "toggle_traffic": "Show or hide the traffic panes",
    "demo_traffic": "Send traffic from the selected guest NIC: ping, ARP, DHCP or a UDP burst",
    "console": "Open the serial console of the selected VM guest (ctrl+] leaves it)",
    "restart_vm": "Restart the selected VM guest (a dead one too); its NICs reconnect",
    "toggle_link": "Pull the cable of the selected node's link, or put it back (a chooser if it has several)",
    "scenario": "Play one of the file's scenarios on the running lab (a chooser if it has several); again: stop it",
    "capture": "Start or stop a pcapng capture of the selected node's VLAN (or peer pair), with an optional filter",
    "keep_last": (
        "Keep the last 30 s of the selected node's VLAN in the lab; pressed again: save the last 30 s to a file"
    ),
    "pause_log": "Pause or resume the frame logs",
    "filter_log": "Filter the frame logs by protocol, MAC, address or node",
    "bpf_filter": (
        "BPF display filter in tcpdump's syntax (tcp port 80, arp or icmp) for the frame logs and the "
        "conversation tables: enter applies it, a bad one shows libpcap's message; empty + enter clears it"
    ),
    "conversations": (
        "Conversations (MAC pairs, IP flows) instead of the frame log, or back: the selected node's pane "
        "(with none selected, every pane)"
    ),
    "enter_pane": (
        "Into the selected node's traffic pane (or the first): pick a frame of its log (enter shows it in full) "
        "or sort its conversation table; escape goes back to the canvas"
    ),
    "help": "Show every key",
    "confirm": "In connect mode: link to the node now selected",
    "quit": "Quit (asks first if there are unsaved changes)",
}

# Keys that are no binding of their own, for the `?` screen.
MORE_KEYS = [
    ("arrows", "move the selection between nodes (left/right: across columns)"),
    ("tab", "next node; shift+tab: previous"),
    ("escape", "cancel connect mode; from the inspector or the filter, back to the canvas"),
    ("mouse", "click a node to select it; click a problem to select its node"),
    ("frame log", "up/down/pgup/pgdn/home pick a frame (no more following), enter: its layers and hex, end: follow"),
    ("frame in full", "F: follow its TCP or UDP conversation (its payload both ways, in order)"),
    ("conversations", "m: MAC pairs / IP flows, u: rates / totals, > <: sort by the next/previous column, -: reverse"),
    ("", "enter on a TCP or UDP flow: follow it; escape stops"),
    ("inspector", "to PEER, from PEER: a link's impairment each way (delay=50ms loss=1%; blank: none), live in a lab"),
]


def help_rows(app: App) -> list[tuple[str, str]]:
    """Every key with a description, the footer's and those kept out of it
    (traffic keys); the first key of an action (ctrl+q quits too)."""
    first: dict[str, Binding] = {}
    for b in BINDINGS:
        if isinstance(b, Binding) and b.action in COMMANDS_HELP:
            first.setdefault(b.action, b)
    return [(app.get_key_display(b), COMMANDS_HELP[b.action]) for b in first.values()] + MORE_KEYS


# Palette titles of the actions with no key.
TITLES = {
    "import_qemu": "Import QEMU",
    "export_clab": "Export as containerlab",
    "export_mermaid": "Export as Mermaid",
    "export_dot": "Export as Graphviz",
}


def system_commands(app: App) -> Iterable[SystemCommand]:
    """Every action in the command palette, under the name the footer and
    the `?` screen give its key."""
    names = dict(TITLES)
    for b in BINDINGS:
        if isinstance(b, Binding):
            names.setdefault(b.action, b.description)
    for action, text in COMMANDS_HELP.items():
        if action == "confirm":
            continue  # a step of connect, not a command of its own
        yield SystemCommand(names[action], text, lambda a=action: app.run_action(a))
