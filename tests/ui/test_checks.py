"""The checks' findings in a VLAN pane and on the canvas, from a recorded
worker stream with findings added to its last statistics, through the real
protocol code."""

from __future__ import annotations

import copy

from textual.widgets import Static

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.checkline import STYLE, checks_line, fit
from qnet_tui.ui.traffic import TrafficView
from tests.ui.test_traffic_replay import SAMPLE, recorded, replay

A = "52:54:00:00:01:01"


def check(kind: str, ports: list[str], nodes: list[str], mac: str | None = None, address: str | None = None) -> dict:
    return {
        "kind": kind,
        "message": f"{kind} on {', '.join(ports)}",
        "ports": ports,
        "nodes": nodes,
        "mac": mac,
        "address": address,
        "count": 3,
        "first": 1000.0,
        "last": 1001.0,
    }


FINDINGS = [
    check("foreign-mac", ["vm2"], ["vm1", "vm2"], mac=A),
    check("duplicate-ip", ["vm1", "vm2"], ["vm1", "vm2"], address="10.0.0.1"),
    check("rogue-dhcp", ["vm2"], ["vm2"], mac="52:54:00:00:01:02"),
    check("nd-conflict", ["vm1", "vm2"], ["vm1", "vm2"], address="fd00::1"),
]


async def test_a_panes_findings_are_one_warning_line_and_marks_on_the_boxes():
    messages = recorded()
    stats = copy.deepcopy([m for m in messages if m["type"] == "stats"][-1])
    stats["vlans"]["1"]["checks"] = FINDINGS
    stats["vlans"]["2"]["checks"] = []
    app = QnetApp(load_file(SAMPLE))
    app.settle_s = 0
    async with app.run_test(size=(200, 60)) as pilot:
        await replay(app, pilot, messages)
        view = app.query_one(TrafficView)
        assert "checks" not in str(view.panes["v1"].query_one(".detail", Static).render())  # none yet
        await replay(app, pilot, [stats])
        detail = view.panes["v1"].query_one(".detail", Static)
        [line] = [line for line in str(detail.render()).splitlines() if line.startswith("checks")]
        # The latest first, as many as the pane's width takes, and how many more.
        assert line == "checks    ⚠ vm2 sends from vm1's MAC · duplicate IP 10.0.0.1: vm1, vm2 · +2 more"
        assert len(line) <= detail.content_size.width < len(line) + len(" · rogue DHCP server on vm2")
        assert "checks" not in str(view.panes["v2"].query_one(".detail", Static).render())
        live = app.query_one(TopologyCanvas).live
        assert live["vm1"].startswith("⚠ in ") and live["vm2"].startswith("⚠ in ")
        assert not live["vm3"].startswith("⚠")

        stats["vlans"]["1"]["checks"] = []  # a lab whose findings went (the topology explains them now)
        await replay(app, pilot, [stats])
        assert "checks" not in str(view.panes["v1"].query_one(".detail", Static).render())
        assert not app.query_one(TopologyCanvas).live["vm2"].startswith("⚠")


def test_the_line_fits_its_width_with_a_count_of_the_rest():
    parts = ["vm2 sends from vm1's MAC", "duplicate IP 10.0.0.1: vm1, vm2", "rogue DHCP server on vm2"]
    assert fit(parts, 0) == " · ".join(parts)
    assert fit(parts, 70) == "vm2 sends from vm1's MAC · duplicate IP 10.0.0.1: vm1, vm2 · +1 more"
    assert fit(parts, 40) == "vm2 sends from vm1's MAC · +2 more"
    assert fit(parts, 20) == "vm2 sends… · +2 more"  # the first, cut short: never just a count
    for width in range(1, 90):
        assert len(fit(parts, width)) <= max(width, len("… · +2 more"))
    text = checks_line(FINDINGS, 60)
    assert text is not None and len(text.plain) <= 60 + len("checks    ")
    assert any(span.style == STYLE for span in text.spans)
    assert checks_line([], 60) is None and checks_line(None, 60) is None


def test_a_kind_the_app_does_not_know_shows_its_message_printable():
    [line] = checks_line([dict(check("future-kind", ["vm1"], ["vm1"]), message="odd\x1b[2J")], 0).plain.splitlines()
    assert line == "checks    ⚠ odd\\x1b[2J"
