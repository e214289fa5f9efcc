"""Impairments in the app: an impaired link is drawn heavy with a label under
one of its boxes (the file's, then what a running lab reports, with what it
dropped); the inspector edits each direction (checked, undoable, saved as the
link's impair:, and sent to a running lab at once, its reply shown)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from qnet_tui import protocol
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.impairlabel import link_label, short
from qnet_tui.ui.inspector import ImpairInput
from tests.ui.heard import hear
from tests.ui.test_cable import Sends
from tests.ui.test_traffic_replay import recorded

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
SIZE = (160, 45)
HEAVY = "━┃┏┓┗┛┣┫┳┻╋┅┇"


@pytest.fixture
def lab_file(tmp_path) -> Path:
    """two-vlans.yaml with vm1's link impaired both ways."""
    path = tmp_path / "two-vlans.yaml"
    text = (SAMPLES / "two-vlans.yaml").read_text()
    assert "  - [hub1, vm1]\n" in text
    path.write_text(text.replace("  - [hub1, vm1]\n", '  - [hub1, vm1, {impair: "delay=50ms loss=1%"}]\n'))
    return path


def app_for(path: Path) -> QnetApp:
    app = QnetApp(load_file(path))
    app.settle_s = 0
    return app


def drawing(canvas: TopologyCanvas) -> str:
    return "\n".join("".join(seg.text for seg in canvas.render_line(y)) for y in range(canvas.size.height))


def heavy(canvas: TopologyCanvas) -> int:
    text = drawing(canvas)
    return sum(text.count(ch) for ch in HEAVY)


def impair_field(app: QnetApp, a: str, b: str) -> ImpairInput:
    return next(f for f in app.inspector.query(ImpairInput) if f.way == (a, b))


def notes(app: QnetApp) -> list[str]:
    return [n.message for n in app._notifications]


def stats_with_drops(port: str, loss: int, queue: int) -> dict:
    message = copy.deepcopy(next(m for m in recorded() if m["type"] == "stats"))
    for hub in message["vlans"].values():
        if port in hub["ports"]:
            hub["ports"][port]["drop_reasons"].update({"impair-loss": loss, "impair-queue": queue})
    return message


def test_labels_say_both_ways_alike_or_each_way_with_arrows_on_screen():
    assert short("delay=50ms jitter=5ms loss=1% ge=1%,30% dup=2% rate=10mbit limit=10") == "50ms±5ms 1% ge dup2% 10mbit"
    assert short("delay=fast") == "?"
    both = {("vm1", "hub1"): "loss=1%", ("hub1", "vm1"): "loss=1%"}
    assert link_label(both, "vm1", "hub1", True) == "⇄ 1%"
    one_way = {("hub1", "vm1"): "delay=50ms", ("vm1", "hub1"): "none"}
    assert link_label(one_way, "vm1", "hub1", True) == "→50ms"  # hub1 on the left: towards vm1 goes right
    assert link_label(one_way, "vm1", "hub1", False) == "←50ms"
    assert link_label({("vm1", "hub1"): "none"}, "vm1", "hub1", True) == ""


async def test_an_impaired_link_in_the_file_is_drawn_heavy_and_labelled(lab_file):
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        canvas = app.canvas
        canvas.select("vm4")  # none of vm1's links selected: its colour is the impaired one
        await pilot.pause()
        assert canvas.labels == {"vm1": "⇄ 50ms 1%"}
        assert "⇄ 50ms 1%" in drawing(canvas)
        assert heavy(canvas) > 0
        app.editor.set_impair("hub1", "vm1", None)
        app.editor.set_impair("vm1", "hub1", "none")
        app.refresh_all()
        await pilot.pause()
        assert canvas.labels == {}
        assert heavy(canvas) == 0 and "50ms" not in drawing(canvas)


async def test_a_plain_file_draws_no_heavy_line_and_no_label():
    app = app_for(SAMPLES / "two-vlans.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.canvas.labels == {} and heavy(app.canvas) == 0


async def test_what_the_running_lab_reports_is_drawn_over_the_file_with_its_drops(lab_file):
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        app.lab.client = Sends()
        hear(app, {"type": "state", "state": "running"})
        hear(app, {"type": "impaired", "a": "vm2", "b": "hub1", "forward": "rate=10mbit", "backward": "none"})
        await pilot.pause()
        assert app.canvas.labels == {"vm1": "⇄ 50ms 1%", "vm2": "←10mbit"}  # vm2 -> hub1: right to left
        assert any("vm2 → hub1: rate=10mbit" in n for n in notes(app))
        hear(app, stats_with_drops("vm1", 3, 2))
        await pilot.pause()
        assert app.canvas.labels["vm1"] == "⇄ 50ms 1% ✗5"
        assert "⇄ 50ms 1% ✗5" in drawing(app.canvas)
        hear(app, {"type": "state", "state": "stopped"})
        await pilot.pause()
        assert app.canvas.labels == {"vm1": "⇄ 50ms 1%"}  # the file's again


async def test_the_inspector_edits_each_direction_checked_undoable_and_saved(lab_file):
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        app.canvas.select("vm2")
        await pilot.pause()
        await pilot.pause()
        field = impair_field(app, "vm2", "hub1")
        field.focus()
        field.value = "delay=fast"
        await pilot.press("enter")
        await pilot.pause()
        problem = str(field.problem_label.render())
        assert "towards hub1: delay=fast: expected a time" in problem
        assert ("vm2", "hub1") not in app.document.topology.impair and not app.editor.changed

        field.value = "loss=2%  delay=20ms"
        await pilot.press("enter")
        await pilot.pause()
        assert app.document.topology.impair[("vm2", "hub1")] == "delay=20ms loss=2%"
        assert field.value == "delay=20ms loss=2%" and str(field.problem_label.render()) == ""
        assert app.canvas.labels["vm2"] == "←20ms 2%"
        assert "●" in app.sub_title  # unsaved

        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = lab_file.read_text()
        assert "[hub1, vm2, {impair: {hub1: delay=20ms loss=2%}}]" in saved
        assert load_file(lab_file).topology.impair[("vm2", "hub1")] == "delay=20ms loss=2%"

        app.canvas.focus()
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert ("vm2", "hub1") not in app.document.topology.impair
        assert "vm2" not in app.canvas.labels


async def test_none_in_the_inspector_resets_the_link(lab_file):
    """mininet #881: "loss 0" did not reset; here none (or a blank field) does."""
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        app.canvas.select("vm1")
        await pilot.pause()
        await pilot.pause()
        for way, text in ((("vm1", "hub1"), "none"), (("hub1", "vm1"), "")):
            field = impair_field(app, *way)
            assert field.value == "delay=50ms loss=1%"
            field.focus()
            field.value = text
            await pilot.press("enter")
            await pilot.pause()
            assert field.value == ""
        assert app.document.topology.impair == {}
        assert app.canvas.labels == {}
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "impair" not in lab_file.read_text()


async def test_an_edit_goes_to_the_running_lab_at_once_and_needs_no_restart(lab_file):
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        client = app.lab.client = Sends()
        app.lab.version = app.editor.version
        hear(app, {"type": "state", "state": "running"})
        app.canvas.select("vm2")
        await pilot.pause()
        await pilot.pause()
        field = impair_field(app, "hub1", "vm2")
        field.focus()
        field.value = "delay=30ms"
        await pilot.press("enter")
        await pilot.pause()
        assert client.sent == [protocol.Impair("hub1", "vm2", "delay=30ms", one_way=True)]
        assert "restart" not in app.sub_title
        field.value = "none"
        await pilot.press("enter")
        await pilot.pause()
        assert client.sent[-1] == protocol.Impair("hub1", "vm2", "none", one_way=True)
        field.value = "delay=bad"
        await pilot.press("enter")
        await pilot.pause()
        assert len(client.sent) == 2  # a refused edit is not sent

        hear(app, {"type": "error", "message": "impair hub1 vm2: no link"})
        await pilot.pause()
        assert "impair hub1 vm2: no link" in notes(app)


def test_a_label_never_covers_a_link_crossing_under_its_box():
    from qnet_tui.ui.canvas import paint_rows
    from qnet_tui.ui.layout import BOX_H, Box, Layout

    lay = Layout(width=40, height=12)
    lay.boxes["vm1"] = Box("vm1", None, 2, 2, "guest NIC", ("vm1", "", ""))
    lay.cells[(7, 2 + BOX_H)] = (2 | 8, 1)  # a link crossing the row under vm1's box
    rows = paint_rows(lay)
    labels = [run for run in rows[2 + BOX_H] if run[2] == ("label", "vm1")]
    assert labels == [(2, " " * 5, ("label", "vm1"))]


async def test_the_statistics_say_every_impairment_the_lab_has_whoever_set_it(lab_file):
    app = app_for(lab_file)
    async with app.run_test(size=SIZE) as pilot:
        app.lab.client = Sends()
        hear(app, {"type": "state", "state": "running"})
        # A scenario (or qnet-tui impair) lifted the file's impairment on vm1 and slowed vm2's link:
        # no reply came to the app, the statistics say it.
        stats = stats_with_drops("vm1", 0, 0)
        stats["impaired"] = [{"a": "hub1", "b": "vm2", "spec": "delay=20ms"}]
        hear(app, stats)
        await pilot.pause()
        assert app.canvas.labels == {"vm2": "→20ms"}
        stats["impaired"] = []
        hear(app, stats)
        await pilot.pause()
        assert app.canvas.labels == {} and heavy(app.canvas) == 0
        hear(app, {"type": "state", "state": "stopped"})
        await pilot.pause()
        assert app.canvas.labels == {"vm1": "⇄ 50ms 1%"}  # the file's again
