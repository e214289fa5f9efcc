"""Placement in the editor: a node's host chosen in the inspector among the
file's hosts; a file without hosts gets a text field that says why a name is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import Input, Select

from qnet_tui.model import placement
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
SIZE = (160, 45)


def app_for(tmp_path: Path, sample: str) -> QnetApp:
    path = tmp_path / sample
    shutil.copy(SAMPLES / sample, path)
    app = QnetApp(load_file(path))
    app.settle_s = 0
    return app


async def select(pilot, node: str) -> None:
    pilot.app.query_one(TopologyCanvas).select(node)
    await pilot.pause()
    await pilot.pause()


async def test_inspector_moves_a_bridge_to_another_host(tmp_path):
    app = app_for(tmp_path, "two-machines.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "br0")
        choice = app.query_one("#field-host", Select)
        assert choice.value == "a"
        assert [str(prompt) for prompt, _ in choice._options[1:]] == ["a", "b"]  # the file's hosts
        choice.value = "b"
        await pilot.pause()
        await pilot.pause()
        t = app.document.topology
        assert t.nodes["br0"].attrs["host"] == "b"
        assert placement.machine_of(t)["tap0"] == "b"  # what br0 connects goes with it
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert t.nodes["br0"].attrs["host"] == "a"


async def test_without_hosts_a_typed_host_is_refused(tmp_path):
    app = app_for(tmp_path, "seed-path.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "tap0")
        field = app.query_one("#field-host", Input)  # no hosts to choose from
        field.focus()
        await pilot.pause()
        field.value = "a"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert "host" not in app.document.topology.nodes["tap0"].attrs
        problem = app.query_one("#problem-host")
        assert "the file has none: add it under hosts: in the file first" in str(problem.render())
