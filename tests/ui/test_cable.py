"""Cable pull from the app: `l` on the selected node sends the link message
(a chooser when the node has several links), and the canvas draws a link the
lab has down dashed, until the statistics say it is up again."""

from __future__ import annotations

from pathlib import Path

from qnet_tui import protocol
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.labpanel import CableChooser
from tests.ui.heard import hear
from tests.ui.test_traffic_replay import recorded

SAMPLES = Path(__file__).parents[2] / "sample_topologies"


class Sends:
    """A connected lab client that keeps what the app sends."""

    def __init__(self) -> None:
        self.file, self.sent = None, []

    def send(self, message: protocol.ClientMessage) -> bool:
        self.sent.append(message)
        return True

    def stop(self) -> None:
        pass


def dashed(canvas: TopologyCanvas) -> int:
    """Dashed line cells of the drawing as the canvas paints it."""
    text = "".join(seg.text for y in range(canvas.size.height) for seg in canvas.render_line(y))
    return text.count("┄") + text.count("┆")


def stats(links: list[dict]) -> dict:
    return dict(next(m for m in recorded() if m["type"] == "stats"), links=links)


async def test_l_pulls_the_selected_nodes_cable_and_the_canvas_shows_it():
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        client = app.lab.client = Sends()
        hear(app, {"type": "state", "state": "running"})
        await pilot.pause()
        app.canvas.select("vm2")
        await pilot.press("l")
        assert client.sent == [protocol.Link("vm2", "hub1", False)]
        assert dashed(app.canvas) == 0  # the canvas shows what the lab says, not what was asked

        hear(app, stats([{"a": "hub1", "b": "vm2", "a_b": False, "b_a": True}]))
        await pilot.pause()
        assert app.canvas.down == {frozenset(("hub1", "vm2"))}
        assert dashed(app.canvas) > 0
        await pilot.press("l")  # a link with a direction down: put back, both ways
        assert client.sent[-1] == protocol.Link("vm2", "hub1", True)

        hear(app, stats([]))
        await pilot.pause()
        assert dashed(app.canvas) == 0

        app.canvas.select("hub1")  # two links: which one?
        await pilot.press("l")
        assert isinstance(app.screen, CableChooser)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert client.sent[-1] == protocol.Link("hub1", "vm2", False)


async def test_l_without_a_running_lab_says_so_and_sends_nothing():
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.canvas.select("vm2")
        await pilot.press("l")
        await pilot.pause()
        assert any("Run the lab first" in n.message for n in app._notifications)
