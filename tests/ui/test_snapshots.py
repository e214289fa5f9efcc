"""Snapshots of the main screen on every sample and of the add-node form, in
the default theme and the light one. Pinned size, no blinking cursor.
Update after an intended change with: pytest tests/ui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from tests.ui.heard import hear

SAMPLES = sorted((Path(__file__).parents[2] / "sample_topologies").glob("*.yaml"))
THEMES = ["qnet-dark", "qnet-light"]
SIZE = (150, 40)


def make_app(path: Path, theme: str) -> QnetApp:
    app = QnetApp(load_file(path))
    app.settle_s = 0
    app.theme = theme
    return app


async def still(pilot) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_main_screen(snap_compare, sample, theme):
    assert snap_compare(make_app(sample, theme), terminal_size=SIZE, run_before=still)


@pytest.mark.parametrize("theme", THEMES)
def test_add_node_form(snap_compare, theme):
    async def open_form(pilot) -> None:
        pilot.app.query_one("TopologyCanvas").select("hub0")
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        await still(pilot)

    seed = next(p for p in SAMPLES if p.name == "seed-path.yaml")
    assert snap_compare(make_app(seed, theme), terminal_size=SIZE, run_before=open_form)


def test_live_traffic_panes(snap_compare):
    """The traffic panes fed by the recorded stream of a real lab (the README's picture)."""
    from tests.ui.test_traffic_replay import SAMPLE, recorded

    async def replay(pilot) -> None:
        app = pilot.app
        app.lab.add_class("-shown")
        for message in recorded():
            hear(app, message)
            await pilot.pause()
        await still(pilot)

    app = make_app(SAMPLE, "qnet-dark")
    assert snap_compare(app, terminal_size=(160, 50), run_before=replay)


def test_vm_console(snap_compare):
    """The console of vm-router.yaml's router, fed what a real boot and two
    commands printed (the README's picture)."""
    from qnet_tui import protocol
    from tests.ui.test_traffic_replay import SentToWorker

    printed = (Path(__file__).parent / "replays" / "vm-console.txt").read_bytes()

    async def open_console(pilot) -> None:
        app = pilot.app
        app.lab.client = SentToWorker()
        hear(app, {"type": "state", "state": "running"})
        await pilot.pause()
        app.query_one("TopologyCanvas").select("router")
        await pilot.press("v")
        output = protocol.ConsoleOutput.of("router", printed)
        hear(app, {"type": "console_output", "guest": "router", "data": output.data})
        await pilot.pause()
        await still(pilot)

    vm_router = next(p for p in SAMPLES if p.name == "vm-router.yaml")
    assert snap_compare(make_app(vm_router, "qnet-dark"), terminal_size=(110, 30), run_before=open_console)


def test_vm_router_demo(snap_compare):
    """vm-router.yaml running, hostA pinging hostB through the VM router: the
    recorded stream of a real lab (the README's picture)."""
    import json

    recording = Path(__file__).parent / "replays" / "vm-router.jsonl"

    async def replay(pilot) -> None:
        app = pilot.app
        app.lab.add_class("-shown")
        for line in recording.read_text().splitlines():
            hear(app, json.loads(line))
            await pilot.pause()
        await still(pilot)

    vm_router = next(p for p in SAMPLES if p.name == "vm-router.yaml")
    assert snap_compare(make_app(vm_router, "qnet-dark"), terminal_size=(160, 50), run_before=replay)


def test_impaired_links(snap_compare, tmp_path):
    """Impaired links drawn heavy and labelled; the inspector's impair fields of the selected guest NIC."""
    path = tmp_path / "two-vlans.yaml"
    text = (Path(__file__).parents[2] / "sample_topologies" / "two-vlans.yaml").read_text()
    text = text.replace("  - [hub1, vm1]\n", '  - [hub1, vm1, {impair: "delay=50ms jitter=5ms loss=1%"}]\n')
    path.write_text(text.replace("  - [hub2, vm4]\n", "  - [hub2, vm4, {impair: {vm4: rate=10mbit}}]\n"))

    async def select_vm4(pilot) -> None:
        pilot.app.canvas.select("vm4")
        await pilot.pause()
        await pilot.pause()
        pilot.app.inspector.scroll_end(animate=False)
        await still(pilot)

    assert snap_compare(make_app(path, "qnet-dark"), terminal_size=SIZE, run_before=select_vm4)


def test_apply_dialog(snap_compare):
    """r on a running lab after edits: what they change, Apply / Restart / Cancel (the README's picture)."""
    from qnet_tui.ui.dialogs import ApplyChanges

    changes = [
        "~ hub2: vlan 2 -> 7",
        "~ vm1: ipv4 10.0.0.1/24 -> 10.0.0.11/24",
        "+ guest_nic vm5",
        "+ link hub2 - vm5",
        "  made anew (their links drop for a moment): vm1",
        "  scenario flaky stops: the links it changed are put back first",
    ]

    async def open_dialog(pilot) -> None:
        pilot.app.push_screen(ApplyChanges("twovlans", changes))
        await pilot.pause()
        await still(pilot)

    two_vlans = next(p for p in SAMPLES if p.name == "two-vlans.yaml")
    assert snap_compare(make_app(two_vlans, "qnet-dark"), terminal_size=(120, 32), run_before=open_dialog)


def test_conversation_table(snap_compare):
    """VLAN 1's IP flows sorted by bytes, VLAN 2's MAC pairs, from replays/conversations.jsonl
    (the README's picture)."""
    from tests.ui.test_inspection import SAMPLE, recorded

    async def replay(pilot) -> None:
        app = pilot.app
        app.lab.add_class("-shown")
        for message in recorded():
            hear(app, message)
            await pilot.pause()
        panes = app.query_one("TrafficView").panes
        app.query_one("TopologyCanvas").select("hub1")
        await pilot.press("o", "f", "m")  # hub1's pane: conversations, its keys, IP flows
        panes["v2"].toggle_conversations()
        await still(pilot)

    assert snap_compare(make_app(SAMPLE, "qnet-dark"), terminal_size=(160, 50), run_before=replay)


def test_frame_detail(snap_compare):
    """Enter on the TCP segment of replays/conversations.jsonl cut to 256 of its 1514 bytes (the README's picture)."""
    from tests.ui.test_inspection import DECODING, SAMPLE, recorded, until

    async def open_detail(pilot) -> None:
        app = pilot.app
        app.lab.add_class("-shown")
        for message in recorded():
            hear(app, message)
            await pilot.pause()
        app.query_one("TopologyCanvas").select("vm1")
        await pilot.press("f", "up", "enter")
        tree = app.screen.query_one("Tree")
        await until(pilot, lambda: str(tree.root.children[0].label) != DECODING, "scapy")
        await still(pilot)

    assert snap_compare(make_app(SAMPLE, "qnet-dark"), terminal_size=(140, 40), run_before=open_detail)
