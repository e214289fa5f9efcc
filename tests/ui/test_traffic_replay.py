"""The traffic panes fed by a recorded control-socket stream (from a real
worker on two-vlans.yaml while vm1 pinged vm2), through the real protocol
code: no root, no lab."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input, Static

from qnet_tui import protocol
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.framelog import FrameLog, Line
from qnet_tui.ui.traffic import TrafficView
from tests.ui.heard import hear

HERE = Path(__file__).parent
REPLAY = HERE / "replays" / "two-vlans.jsonl"
SAMPLE = HERE.parents[1] / "sample_topologies" / "two-vlans.yaml"


def recorded() -> list[dict]:
    lines = protocol.LineBuffer().feed(REPLAY.read_bytes())
    return [json.loads(line) for line in lines]


async def replay(app: QnetApp, pilot, messages: list[dict]) -> None:
    app.lab.add_class("-shown")
    for message in messages:
        hear(app, message)
        await pilot.pause()


async def test_panes_show_the_recorded_stream():
    messages = recorded()
    assert [m["type"] for m in messages][:2] == ["hello", "state"]
    app = QnetApp(load_file(SAMPLE))
    app.settle_s = 0
    async with app.run_test(size=(160, 60)) as pilot:
        await replay(app, pilot, messages)
        last = [m for m in messages if m["type"] == "stats"][-1]
        view = app.query_one(TrafficView)
        assert set(view.panes) == {"v1", "v2"}
        pane1 = view.panes["v1"]
        rates = str(pane1.query_one(".rates", Static).render())
        assert f"total {last['vlans']['1']['frames']} frames" in rates
        detail = str(pane1.query_one(".detail", Static).render())
        assert f"icmp {last['vlans']['1']['protocols']['icmp']}" in detail
        assert (
            "vm1 13 (52:54:00:00:01:01)" in detail or "(52:54:00:00:01:01)" in detail
        )  # talkers: named by node, with the MAC they sent from
        # The ping (IPv4) stayed in VLAN 1; VLAN 2 saw only its own guests' IPv6 chatter.
        assert last["vlans"]["1"]["protocols"]["ipv4"] > 0 and last["vlans"]["2"]["protocols"]["ipv4"] == 0
        assert "ipv4" not in str(view.panes["v2"].query_one(".detail", Static).render())
        logged = [line.head + line.rest for line in pane1.query_one(FrameLog).lines]
        assert any("ICMP" in line or "IPv6" in line or "ARP" in line for line in logged)
        assert app.lab.state == "running" and "[lab running]" in app.sub_title


async def test_filter_and_pause_keep_the_log_quiet():
    messages = recorded()
    samples = [m for m in messages if m["type"] == "samples"]
    app = QnetApp(load_file(SAMPLE))
    app.settle_s = 0
    async with app.run_test(size=(160, 60)) as pilot:
        await replay(app, pilot, [m for m in messages if m["type"] != "samples"])
        view = app.query_one(TrafficView)
        log = view.panes["v1"].query_one(FrameLog)
        await pilot.press("p")
        await replay(app, pilot, samples)
        assert not log.lines
        await pilot.press("p")
        view.query_one("#filter").value = "no-such-thing"
        await replay(app, pilot, samples)
        assert not log.lines
        view.query_one("#filter").value = "icmp"  # a filter applies to the lines already kept too
        await pilot.pause()
        assert log.lines and all("ICMP" in line.rest for line in log.lines)
        view.query_one("#filter").value = ""
        await replay(app, pilot, samples)
        assert len(log.lines) > 0


async def test_a_flood_of_stats_is_coalesced():
    stats = [m for m in recorded() if m["type"] == "stats"]
    app = QnetApp(load_file(SAMPLE))
    async with app.run_test(size=(160, 60)) as pilot:
        # The panes exist before the flood, so the flood updates them rather than creating them.
        hear(app, stats[0])
        await pilot.pause()
        assert stats[0]["vlans"]["1"]["frames"] != stats[-1]["vlans"]["1"]["frames"]
        shown: list[int] = []
        original = TrafficView.show

        def counting(view, snapshot):
            shown.append(snapshot.vlans["1"]["frames"])
            original(view, snapshot)

        TrafficView.show = counting
        try:
            for _ in range(200):  # a burst far faster than the app handles them
                for m in stats:
                    hear(app, m)
            await pilot.pause()
        finally:
            TrafficView.show = original
        assert len(shown) < 200 * len(stats) / 10  # older snapshots were replaced, not queued
        assert shown[-1] == stats[-1]["vlans"]["1"]["frames"]  # and the newest was shown
        # ... and the pane on screen says so (the counting wrapper above must not hide the drawing).
        rates = str(app.query_one(TrafficView).panes["v1"].query_one(".rates", Static).render())
        assert f"total {stats[-1]['vlans']['1']['frames']} frames" in rates


async def test_frame_log_follows_the_newest_until_scrolled_back():
    from textual.app import App

    class One(App):
        def compose(self):
            yield FrameLog(50)

    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one(FrameLog)

        def write(first: int, n: int) -> None:
            log.write_frames(
                Line(f"{'vm1':>8} ", f"frame {i}", f"vm1 frame {i}", "", 0) for i in range(first, first + n)
            )

        def screen() -> str:
            return "\n".join(log.render_line(y).text for y in range(log.size.height))

        write(0, 30)
        await pilot.pause()
        assert "frame 29" in screen() and log.is_vertical_scroll_end
        write(30, 40)  # more than it keeps: the oldest go
        await pilot.pause()
        assert len(log.lines) == 50 and log.lines[0][1] == "frame 20"
        assert "frame 69" in screen()
        log.scroll_to(y=10, animate=False)  # the user reads back: new lines must not move what they see
        await pilot.pause()
        assert screen().startswith("     vm1 frame 30 ")
        write(70, 5)
        await pilot.pause()
        assert log.lines[0][1] == "frame 25" and screen().startswith("     vm1 frame 30 ")
        log.scroll_end(animate=False)  # back at the end: following again
        await pilot.pause()
        write(75, 5)
        await pilot.pause()
        assert "frame 79" in screen()
        log.set_filter("frame 3")  # fewer lines than the old position: the newest matches show
        await pilot.pause()
        assert "frame 39 " in screen() and "frame 79" not in screen()
        write(80, 5)
        log.write_frames([Line(f"{'vm1':>8} ", "frame 3x", "vm1 frame 3x", "", 0)])
        await pilot.pause()
        assert "frame 3x" in screen()  # and it still follows
        log.set_filter("frame 38")  # one line: shown, not scrolled out of sight
        await pilot.pause()
        assert "frame 38 " in screen()


async def test_enter_or_escape_in_the_filter_gives_the_keys_back():
    app = QnetApp(load_file(SAMPLE))
    app.settle_s = 0
    async with app.run_test(size=(160, 60)) as pilot:
        for leave in ("enter", "escape"):
            await pilot.press("slash")
            assert app.focused is app.query_one("#filter")
            await pilot.press("a", "r", "p", leave)
            assert app.query_one("#filter", Input).value.endswith("arp")  # the filter stays
            assert app.focused is app.canvas  # and s, q, r... are the editor's keys again


DASHED = """\
version: 1
name: dashed
nodes:
  br-0: {kind: bridge}
  tap-a: {kind: tap}
  vm-a: {kind: guest_nic, mac: '52:54:00:00:0a:01'}
  hub-1: {kind: hub, vlan: 1}
  vm-b: {kind: guest_nic, mac: '52:54:00:00:0b:01'}
  vm-c: {kind: guest_nic, mac: '52:54:00:00:0c:01'}
links: [[br-0, tap-a], [tap-a, vm-a], [hub-1, vm-b], [hub-1, vm-c]]
"""


def dashed_stats() -> dict:
    """A statistics message as the worker makes it for DASHED: the pair's hub
    is named by its ports joined with '-' ("vm-a-tap-a")."""
    from qnet_tui.lab.ports import Hub, Port

    pair, vlan = Hub("vm-a-tap-a", None), Hub("hub-1", 1)
    for hub, ports in ((pair, ("vm-a", "tap-a")), (vlan, ("vm-b", "vm-c"))):
        for name in ports:
            hub.attach(Port(name))
    pair.ports[1].drop_loop_in = 7
    pair.cut(pair.ports[1], 0.0)
    rated = [dict(h.stats(), fps=0.0, bps=0.0) for h in (pair, vlan)]
    snapshot = {"time": 1795617934.0, "lab": "dashed", "vlans": {"1": dict(rated[1], vlan=1)}, "peers": {}}
    snapshot["peers"]["vm-a-tap-a"] = rated[0]
    return json.loads(protocol.encode(protocol.Stats(**snapshot)))


class SentToWorker:
    """Stands in for the lab client: keeps what the app sends."""

    file = None

    def __init__(self) -> None:
        self.sent: list[protocol.ClientMessage] = []

    def send(self, message: protocol.ClientMessage) -> bool:
        self.sent.append(message)
        return True

    def stop(self) -> None:
        self.sent.append(protocol.Stop())


async def test_capture_finds_the_pane_of_nodes_whose_ids_hold_dashes(tmp_path):
    from qnet_tui.model.yamlio import load_text
    from qnet_tui.ui.canvas import TopologyCanvas
    from qnet_tui.ui.dialogs import PathPrompt

    app = QnetApp(load_text(DASHED, tmp_path / "dashed.yaml"))
    app.settle_s = 0
    async with app.run_test(size=(160, 60)) as pilot:
        lab = app.lab.client = SentToWorker()
        hello = {"type": "hello", "lab": "dashed", "file": None, "pid": 1, "protocol": protocol.PROTOCOL_VERSION}
        await replay(app, pilot, [hello, {"type": "state", "state": "running", "reason": None}, dashed_stats()])
        await pilot.pause()
        view = app.query_one(TrafficView)
        assert set(view.panes) == {"v1", "pvm-a-tap-a"}
        for node, hub in (("vm-a", "vm-a-tap-a"), ("tap-a", "vm-a-tap-a"), ("vm-b", "hub-1"), ("hub-1", "hub-1")):
            app.query_one(TopologyCanvas).select(node)
            await pilot.press("w")
            assert isinstance(app.screen, PathPrompt), f"no capture offered for {node}"
            pcap = tmp_path / f"{node}.pcap"
            app.screen.query_one("#path").value = str(pcap)
            await pilot.click("#ok")
            await pilot.pause()
            assert lab.sent[-1] == protocol.Capture(hub, str(pcap))
        app.query_one(TopologyCanvas).select("br-0")  # forwards in no hub of the worker's
        await pilot.press("w")
        assert not isinstance(app.screen, PathPrompt) and len(lab.sent) == 4
        # The pane says which port a loop cut, and what it dropped.
        detail = str(view.panes["pvm-a-tap-a"].query_one(".detail", Static).render())
        assert "tap-a (cut: loop): loop 7" in detail
        assert app.query_one(TopologyCanvas).live["tap-a"] == "cut: loop"  # and its box's border
        app.lab.client = None
