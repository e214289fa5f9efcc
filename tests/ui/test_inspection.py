"""Conversations, a frame in full, and the BPF display filter, in the
traffic panes, fed replays/conversations.jsonl through the real protocol
code. That file is replays/two-vlans.jsonl (a real worker's stream on
two-vlans.yaml while vm1 pinged vm2) with conversation tables composed by
replays/make_conversations.py added to its statistics, and a TCP connection's
frames (scapy-built, one of 1514 bytes cut to 256 as the worker cuts it)
after its real samples."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input, Static, Tree

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.conversations import ConversationTable
from qnet_tui.ui.framedetail import DECODING, FrameDetail
from qnet_tui.ui.framelog import FrameLog, Line
from qnet_tui.ui.traffic import TrafficView
from tests.ui.heard import hear

HERE = Path(__file__).parent
REPLAY = HERE / "replays" / "conversations.jsonl"
SAMPLE = HERE.parents[1] / "sample_topologies" / "two-vlans.yaml"
DEADLINE_S = 15.0  # scapy's first import and libpcap's compile are in threads


def recorded() -> list[dict]:
    return [json.loads(line) for line in REPLAY.read_text().splitlines()]


async def until(pilot, condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def replayed(pilot, messages: list[dict] | None = None) -> TrafficView:
    app = pilot.app
    app.lab.add_class("-shown")
    for message in recorded() if messages is None else messages:
        hear(app, message)
        await pilot.pause()
    return app.query_one(TrafficView)


def make_app() -> QnetApp:
    app = QnetApp(load_file(SAMPLE))
    app.settle_s = 0
    return app


def column(table: ConversationTable, name: str) -> list[str]:
    i = [c.id for c in table.columns].index(name)
    return [row[i] for row in table.cells]


async def test_the_conversation_table_names_nodes_sorts_and_keeps_its_cursor():
    app = make_app()
    async with app.run_test(size=(160, 60)) as pilot:
        view = await replayed(pilot)
        app.query_one(TopologyCanvas).select("hub1")
        await pilot.press("o")
        pane = view.panes["v1"]
        table = pane.query_one(ConversationTable)
        assert pane.showing_conversations and table.display and not pane.query_one(FrameLog).display
        assert not view.panes["v2"].showing_conversations  # only the selected node's pane
        # MAC pairs, the biggest first, named by node; broadcast said so.
        assert column(table, "a")[:3] == ["vm1 52:54:00:00:01:01", "vm2 52:54:00:00:01:02", "vm1 52:54:00:00:01:01"]
        assert column(table, "b")[:3] == ["vm2 52:54:00:00:01:02", "33:33:00:00:00:16", "broadcast"]
        assert len(table.cells) == 3  # VLAN 1 has no other pairs: no "others" row
        await pilot.press("f")  # the keys to the pane: to its table now
        assert app.focused is table
        await pilot.press("m")  # IP flows
        assert column(table, "proto") == ["tcp", "icmp", "icmpv6", "udp", ""]
        assert column(table, "a")[0] == "vm1 10.0.0.1:40000" and column(table, "b")[0] == "vm2 10.0.0.2:5201"
        assert column(table, "b")[3] == "broadcast"  # 255.255.255.255
        assert column(table, "a")[-1] == "others (3)" and column(table, "frames")[-1] == "12"
        await pilot.press("less_than_sign")  # the previous column: frames, the most first
        assert table.sort == "frames" and column(table, "proto")[:2] == ["icmp", "tcp"]
        await pilot.press("minus")  # the other way
        assert column(table, "proto")[:2] == ["udp", "icmpv6"] and column(table, "a")[-1] == "others (3)"
        # A click on a header sorts by it (names: A to Z).
        await pilot.click(table, offset=(1, 1))  # proto is the first column
        assert table.sort == "proto"
        assert column(table, "proto")[:4] == ["icmp", "icmpv6", "tcp", "udp"]
        # Rates instead of totals: frames/s and bit/s, the sort follows to its counterpart.
        await pilot.press("greater_than_sign", "greater_than_sign", "greater_than_sign")
        assert table.sort == "frames"
        await pilot.press("u")
        headers = table._headers()
        assert table.sort == "fps" and "frames/s ▼" in headers and "bit/s" in headers and "bytes" not in headers
        assert column(table, "fps")[:2] == ["50.0", "20.0"] and column(table, "bps")[1] == "240.0 kbit/s"
        # The cursor stays on its row when the next table puts it elsewhere.
        await pilot.press("home", "down", "down", "down")
        assert table.shown_rows[table.cursor]["proto"] == "udp"
        last = copy.deepcopy([m for m in recorded() if m["type"] == "stats"][-1])
        udp = next(r for r in last["vlans"]["1"]["conversations"]["flows"] if r["proto"] == "udp")
        udp["fps"] = 900.0
        hear(app, last)
        await pilot.pause()
        assert table.shown_rows[0]["proto"] == "udp" and table.cursor == 0 and table.sort == "fps"
        await pilot.press("o")  # back to the frame log, focus with it
        assert not pane.showing_conversations and app.focused is pane.query_one(FrameLog)
        await pilot.press("escape")
        assert app.focused is app.canvas


async def test_the_bpf_filter_applies_to_the_log_and_the_table():
    app = make_app()
    async with app.run_test(size=(160, 60)) as pilot:
        view = await replayed(pilot)
        pane = view.panes["v1"]
        log, table = pane.query_one(FrameLog), pane.query_one(ConversationTable)
        everything = len(log.lines)
        table.action_flows()
        await pilot.press("b")
        assert app.focused is view.query_one("#bpf")
        await pilot.press(*"tcp port 5201", "enter")
        await until(pilot, lambda: pane.bpf is not None, "the filter to compile")
        assert app.focused is app.canvas and pane.border_title == "VLAN 1 (hub1) · bpf: tcp port 5201"
        assert len(log.lines) == 4 and all("TCP" in line.rest for line in log.lines)
        # Hidden rows are made into text once the table is on screen.
        pane.toggle_conversations()
        await pilot.pause()
        assert column(table, "proto") == ["tcp"]  # no "others": the filter cannot tell what they are
        assert not view.panes["v2"].query_one(FrameLog).lines  # no TCP in VLAN 2
        # A bad filter: libpcap's words under the input, and the filter applied stays.
        await pilot.press("b", "ctrl+u", *"tcp port", "enter")
        error = view.query_one("#bpf-error", Static)
        await until(pilot, lambda: "syntax error" in str(error.render()), "libpcap's message")
        assert "'tcp port'" in str(error.render()) and pane.bpf.text == "tcp port 5201"
        assert len(log.lines) == 4
        # The length on the wire, not the 256 bytes kept; pairs by their MACs.
        await pilot.press("ctrl+u", *"greater 1000", "enter")
        await until(pilot, lambda: pane.bpf.text == "greater 1000", "the length filter")
        assert not error.has_class("-shown")
        assert [line.length for line in log.lines] == [1514]
        await pilot.press("b", "ctrl+u", *"ether host 52:54:00:00:01:02", "enter")
        await until(pilot, lambda: pane.bpf.text.startswith("ether"), "the MAC filter")
        assert not table.cells  # an IP flow carries no MACs
        table.action_flows()
        assert column(table, "b") == ["vm2 52:54:00:00:01:02", "33:33:00:00:00:16"]
        await pilot.press("b", "ctrl+u", *"ether broadcast or host 10.0.0.2", "enter")
        await until(pilot, lambda: pane.bpf.text.startswith("ether broadcast"), "the broadcast filter")
        assert column(table, "b") == ["broadcast"]  # a pair has no type: "host" never holds for it
        table.action_flows()
        assert column(table, "proto") == ["tcp", "icmp"]  # both ways: 10.0.0.2 is the B of both
        # Cleared: everything is back.
        await pilot.press("b", "ctrl+u", "enter")
        await until(pilot, lambda: pane.bpf is None, "the filter to clear")
        assert len(log.lines) == everything and pane.border_title == "VLAN 1 (hub1)"
        assert len(table.cells) == 5 and table.cells[-1][1] == "others (3)"
        assert view.query_one("#bpf", Input).value == ""


async def test_enter_on_a_frame_shows_its_layers_and_bytes():
    app = make_app()
    async with app.run_test(size=(160, 60)) as pilot:
        view = await replayed(pilot)
        log = view.panes["v1"].query_one(FrameLog)
        app.query_one(TopologyCanvas).select("vm1")
        await pilot.press("f", "up")  # the cursor starts at the newest line on screen
        picked = log.picked
        assert app.focused is log and picked is not None and picked.length == 1514
        # While a line is picked, new ones do not move it away.
        more = [m for m in recorded() if m["type"] == "samples"][-1]
        await replayed(pilot, [more])
        assert log.picked is picked and not log.is_vertical_scroll_end
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, FrameDetail)
        tree = screen.query_one(Tree)
        await until(pilot, lambda: str(tree.root.children[0].label) != DECODING, "scapy")
        layers = {str(n.label): [str(leaf.label) for leaf in n.children] for n in tree.root.children}
        assert list(layers) == ["Ethernet", "IP", "TCP", "Raw"]
        assert "src: 10.0.0.1" in layers["IP"] and "proto: tcp" in layers["IP"]
        assert "flags: PA" in layers["TCP"] and "dport: 5201" in layers["TCP"]
        assert str(screen.query_one("#kept", Static).render()) == "256 of 1514 bytes kept"
        rows = str(screen.query_one("#hex", Static).render()).splitlines()
        assert rows[0] == "0000  52 54 00 00 01 02 52 54  00 00 01 01 08 00 45 00  RT....RT......E."
        assert len(rows) == 16 and rows[-1].startswith("00f0  ")
        await pilot.press("escape")
        assert not isinstance(app.screen, FrameDetail) and app.focused is log
        # An ICMP echo request of the real recording, whole.
        for _ in range(len(log.lines)):
            if "echo-request" in log.picked.rest:
                break
            await pilot.press("up")
        await pilot.press("enter")
        tree = app.screen.query_one(Tree)
        await until(pilot, lambda: str(tree.root.children[0].label) != DECODING, "scapy")
        layers = {str(n.label): [str(leaf.label) for leaf in n.children] for n in tree.root.children}
        assert "type: echo-request" in layers["ICMP"] and "dst: 10.0.0.2" in layers["IP"]
        assert not any(f.startswith("ts_ori") for f in layers["ICMP"])  # fields an echo request has not
        assert str(app.screen.query_one("#kept", Static).render()) == "98 bytes"
        await pilot.press("escape", "escape")  # the detail, then the log: following again, keys to the canvas
        assert log.picked is None and app.focused is app.canvas


async def test_a_frame_scapy_cannot_decode_shows_its_bytes_and_why():
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        app.push_screen(FrameDetail(Line("     vm1 ", "    3 B  ?", "", "010203", 3), "VLAN 1 (hub1)"))
        await pilot.pause()
        why = app.screen.query_one("#why", Static)
        await until(pilot, lambda: why.has_class("-shown"), "the reason")
        assert "scapy cannot decode it" in str(why.render())
        assert str(app.screen.query_one("#hex", Static).render()) == "0000  01 02 03" + " " * 40 + "  ..."


def marked_text(screen: FrameDetail) -> list[str]:
    """The hex view's characters drawn marked (hex pairs and ASCII, row by row)."""
    text = screen.query_one("#hex", Static).content
    return [text.plain[span.start : span.end] for span in text.spans]


async def test_the_bytes_of_the_layer_or_field_under_the_cursor_are_marked_in_view():
    from scapy.all import IP, UDP, Ether, Padding, Raw

    # 600 bytes (38 rows of hex) in a view of fewer rows: the IP packet, then padding from byte 442.
    packet = (
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2", len=428) / UDP(sport=40000, dport=9, len=408) / Raw(b"q" * 400)
    )
    frame = bytes(packet / Padding(b"p" * 158))
    app = make_app()
    async with app.run_test(size=(120, 24)) as pilot:
        app.push_screen(FrameDetail(Line("     vm1 ", "  600 B  ?", "", frame.hex(), len(frame)), "VLAN 1 (hub1)"))
        await pilot.pause()
        screen = app.screen
        tree = screen.query_one(Tree)
        await until(pilot, lambda: str(tree.root.children[0].label) != DECODING, "scapy")
        await until(pilot, lambda: screen.marked is not None, "the first layer marked")
        assert screen.marked == (0, 14)  # the cursor starts on Ethernet: its 14 bytes
        assert marked_text(screen) == [frame[:14].hex(" ")[:23] + "  " + frame[8:14].hex(" "), "." * 14]
        while not str(tree.cursor_node.label).startswith("frag:"):  # down the tree to IP's flags and fragment
            await pilot.press("down")
        # 13 bits of the 7th and 8th byte: both bytes, hex and ASCII.
        assert screen.marked == (20, 22) and marked_text(screen) == ["00 00", ".."]
        await pilot.press("down", "down", "down", "down", "down")
        assert str(tree.cursor_node.label) == "dst: 10.0.0.2"
        assert marked_text(screen) == ["0a 00", "..", "00 02", ".."]  # bytes 30 to 33: across rows 1 and 2
        scroll = screen.query_one("#hex-scroll")
        assert scroll.scroll_y == 0 and scroll.max_scroll_y > 0
        await pilot.press("shift+left", "shift+down", "shift+down", "shift+down")  # IP, UDP, Raw, Padding
        assert str(tree.cursor_node.label) == "Padding" and screen.marked == (442, 600)  # rows 27 to 37
        assert marked_text(screen)[:2] == ["70 70 70 70 70 70", "pppppp"]
        await until(pilot, lambda: scroll.scroll_y > 0, "the hex view to scroll")
        rows = scroll.scrollable_content_region.height
        assert scroll.scroll_y <= 442 // 16 < scroll.scroll_y + rows  # its first row in view
        await pilot.press("shift+up", "shift+up", "shift+up", "shift+up")  # back to Ethernet, at the top
        assert screen.marked == (0, 14)
        await until(pilot, lambda: scroll.scroll_y == 0, "the hex view back at its top")


class Sent:
    """The lab's client as far as following needs it: what the app sends."""

    def __init__(self) -> None:
        self.messages: list = []

    def send(self, message) -> bool:
        self.messages.append(message)
        return True

    def stop(self) -> None:
        pass


async def test_enter_on_a_flow_follows_it_and_escape_stops():
    import base64

    from qnet_tui import protocol
    from qnet_tui.ui.follow import FollowScreen

    app = make_app()
    async with app.run_test(size=(160, 60)) as pilot:
        view = await replayed(pilot)
        sent = app.lab.client = Sent()
        app.query_one(TopologyCanvas).select("hub1")
        await pilot.press("o", "m")  # the table, its keys, the IP flows
        table = view.panes["v1"].query_one(ConversationTable)
        while table.shown_rows[table.cursor]["proto"] != "tcp":
            await pilot.press("down")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, FollowScreen)
        assert sent.messages == [protocol.Follow("hub1", "tcp", "10.0.0.1", 40000, "10.0.0.2", 5201)]
        title = str(screen.query_one("#title", Static).render())
        assert "vm1 10.0.0.1:40000 ⇄ vm2 10.0.0.2:5201" in title

        def chunk(way: int, data: bytes) -> dict:
            return {"way": way, "data": base64.b64encode(data).decode()}

        followed = {"type": "followed", "hub": "hub1", "frames": 4, "full": [False, False]}
        hear(app, followed | {"chunks": [chunk(0, b"GET / HTTP/1.0\r\nHost: "), chunk(1, b"\x00\x01binary")]})
        hear(app, followed | {"chunks": [chunk(0, b"vm2\r\n\r\n")], "frames": 6})
        hear(app, followed | {"hub": "hub2", "chunks": [chunk(0, b"not this one")]})
        await pilot.pause()
        assert screen.text.split("\n") == ["GET / HTTP/1.0", "Host: ", "..binary", "vm2", ""]
        status = str(screen.query_one("#status", Static).render())
        assert "6 frames" in status and "vm1 sent 29 B" in status and "vm2 sent 8 B" in status
        await pilot.press("escape")
        assert not isinstance(app.screen, FollowScreen)
        assert sent.messages[-1] == protocol.Follow("hub1")  # stop


async def test_a_tcp_frame_in_full_follows_its_conversation():
    from qnet_tui import protocol
    from qnet_tui.ui.follow import FollowScreen

    app = make_app()
    async with app.run_test(size=(160, 60)) as pilot:
        view = await replayed(pilot)
        sent = app.lab.client = Sent()
        log = view.panes["v1"].query_one(FrameLog)
        app.query_one(TopologyCanvas).select("vm1")
        await pilot.press("f", "up", "enter")  # the TCP frame of 1514 bytes
        assert isinstance(app.screen, FrameDetail) and log.picked.length == 1514
        await pilot.press("F")
        assert isinstance(app.screen, FollowScreen)
        assert sent.messages == [protocol.Follow("hub1", "tcp", "10.0.0.1", 40000, "10.0.0.2", 5201)]
        title = str(app.screen.query_one("#title", Static).render())
        assert "vm1 10.0.0.1:40000 ⇄ vm2 10.0.0.2:5201" in title  # named as the worker's table names them
        await pilot.press("escape")
        # An ICMP frame is no conversation to follow: said so, nothing sent.
        for _ in range(len(log.lines)):
            if "echo-request" in log.picked.rest:
                break
            await pilot.press("up")
        await pilot.press("enter", "F")
        assert isinstance(app.screen, FrameDetail) and len(sent.messages) == 2
