"""The app opens a topology file and shows its nodes, links and diagnostics."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp

SAMPLES = Path(__file__).parents[2] / "sample_topologies"


async def test_shows_sample():
    app = QnetApp(load_file(SAMPLES / "seed-path.yaml"))
    async with app.run_test(size=(120, 30)) as pilot:
        nodes = app.query_one("#nodes", DataTable)
        assert nodes.row_count == 6
        assert [nodes.get_row_at(i)[1] for i in range(6)] == [
            "host NIC",
            "bridge",
            "tap",
            "hub",
            "guest NIC",
            "guest NIC",
        ]
        assert app.query_one("#links", DataTable).row_count == 5
        assert "valid" in str(app.query_one("#problems", Static).render())
        await pilot.press("q")
    assert app.return_code == 0


async def test_shows_load_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nnodes:\n  h: {kind: hub, vlan: [oops]}\n")
    app = QnetApp(load_file(bad))
    async with app.run_test(size=(120, 30)):
        text = str(app.query_one("#problems", Static).render())
        assert "error 4:24 h: vlan must be an integer, not a list" in text
