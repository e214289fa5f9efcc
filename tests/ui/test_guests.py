"""Guests in the editor: added from the `a` form, given NICs from it, and a
NIC's guest chosen in the inspector among the guests there are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from qnet_tui.model.kinds import Kind
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.dialogs import AddNode

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
SIZE = (160, 45)


@pytest.fixture
def router(tmp_path) -> Path:
    path = tmp_path / "router.yaml"
    shutil.copy(SAMPLES / "router.yaml", path)
    return path


def app_for(path: Path) -> QnetApp:
    app = QnetApp(load_file(path))
    app.settle_s = 0
    return app


async def select(pilot, node: str) -> None:
    pilot.app.query_one(TopologyCanvas).select(node)
    await pilot.pause()
    await pilot.pause()


async def test_add_a_guest_then_a_nic_of_it(router):
    app = app_for(router)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        form = app.screen
        assert isinstance(form, AddNode)
        form.query_one("#kind", Select).value = Kind.GUEST
        await pilot.pause()
        assert form.query_one("#node-id", Input).value == "guest1"
        await pilot.click("#add")
        await pilot.pause()
        t = app.document.topology
        assert t.nodes["guest1"].kind is Kind.GUEST
        assert app.query_one(TopologyCanvas).selected == "guest1"
        # `a` on a guest: a guest NIC of that guest (a guest takes no link itself)
        await pilot.press("a")
        form = app.screen
        assert isinstance(form, AddNode) and form.query_one("#field-guest", Select).value == "guest1"
        assert not form.query_one("#link").display
        await pilot.click("#add")
        await pilot.pause()
        assert t.nodes["vm1"].attrs["guest"] == "guest1"
        box = app.query_one(TopologyCanvas).layout_.boxes["vm1"]
        assert box.title == "guest1 eth0"


async def test_inspector_moves_a_nic_to_a_guest(router):
    app = app_for(router)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hostB")
        choice = app.query_one("#field-guest", Select)
        assert choice.is_blank()  # none chosen: a guest of its own
        assert [str(prompt) for prompt, _ in choice._options[1:]] == ["router"]  # the guests there are
        choice.value = "router"
        await pilot.pause()
        await pilot.pause()
        t = app.document.topology
        assert t.nodes["hostB"].attrs["guest"] == "router"
        boxes = app.query_one(TopologyCanvas).layout_.boxes
        # interfaces follow the file's order: hostB comes first
        assert [boxes[n].title for n in ("hostB", "router-v1", "router-v2")] == [
            "router eth0",
            "router eth1",
            "router eth2",
        ]
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert "guest" not in t.nodes["hostB"].attrs
