"""Scenarios from the app: S chooses one of the file's and sends it to the
running lab, the title shows its time and step as the worker says them, and S
again stops it."""

from __future__ import annotations

from pathlib import Path

from qnet_tui import protocol
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.labpanel import ScenarioChooser
from tests.ui.heard import hear
from tests.ui.test_cable import Sends, stats

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
PLAYING = {"name": "vm2-cut", "state": "running", "elapsed": 3.2, "duration": 12.0, "step": 1, "steps": 1,
           "doing": "link vm2 - hub0 (vm2 -> hub0 only) down for 10s"}  # fmt: skip


async def test_s_plays_a_chosen_scenario_shows_its_step_and_stops_it():
    app = QnetApp(load_file(SAMPLES / "flaky-uplink.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        client = app.lab.client = Sends()
        hear(app, {"type": "state", "state": "running"})
        await pilot.pause()
        await pilot.press("S")
        assert isinstance(app.screen, ScenarioChooser)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert client.sent == [protocol.Scenario("vm2-cut")]

        hear(app, dict(PLAYING, type="scenario_state", elapsed=0.0, step=0, doing="started"))
        await pilot.pause()
        assert "scenario vm2-cut 0s/12s, step 0/1: started" in app.sub_title
        hear(app, stats([]) | {"scenario": PLAYING})  # each tick carries the time
        await pilot.pause()
        assert app.sub_title.endswith(
            "[lab running; scenario vm2-cut 3s/12s, step 1/1: link vm2 - hub0 (vm2 -> hub0 only) down for 10s]"
        )

        await pilot.press("S")  # one playing: S stops it
        assert client.sent[-1] == protocol.Scenario(None)
        hear(app, dict(PLAYING, type="scenario_state", state="stopped"))
        await pilot.pause()
        assert "scenario" not in app.sub_title
        assert any("Scenario vm2-cut stopped" in n.message for n in app._notifications)


async def test_s_says_why_when_there_is_nothing_to_play():
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("S")
        await pilot.pause()
        assert any("Run the lab first" in n.message for n in app._notifications)
        client = app.lab.client = Sends()
        hear(app, {"type": "state", "state": "running"})
        await pilot.pause()
        await pilot.press("S")
        await pilot.pause()
        assert client.sent == []
        assert any("This file has no scenarios" in n.message for n in app._notifications)
