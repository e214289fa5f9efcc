"""Dialogs driven by keys alone (arrows move between the buttons, enter
presses the one focused, and that one is marked), and texts shown whole: the
help heading, the inspector's hints, the labels of the traffic dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.app import App
from textual.widgets import Button, Input, Label, Select

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.dialogs import FOCUS_MARK, Confirm, DemoTraffic, Help, UnsavedChanges
from qnet_tui.ui.inspector import Inspector

SAMPLES = Path(__file__).parents[2] / "sample_topologies"


class Host(App[None]):
    """An empty app that opens one dialog and keeps what it dismissed with."""

    def __init__(self, dialog) -> None:
        super().__init__()
        self.dialog = dialog
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


def marked(dialog) -> list[str]:
    return [str(b.label) for b in dialog.query(Button) if str(b.label).startswith(FOCUS_MARK[0])]


@pytest.mark.parametrize(
    ("make", "keys", "result"),
    [
        (lambda: UnsavedChanges("quit"), ["enter"], "save"),  # the default
        (lambda: UnsavedChanges("quit"), ["left", "enter"], "discard"),
        (lambda: UnsavedChanges("quit"), ["left", "left", "enter"], None),  # cancel
        (lambda: UnsavedChanges("quit"), ["left", "left", "left", "right", "enter"], "discard"),  # stops at the end
        (lambda: Confirm("Delete hub0?", yes="Delete"), ["enter"], False),
        (lambda: Confirm("Delete hub0?", yes="Delete"), ["right", "enter"], True),
        (lambda: Confirm("Delete hub0?", yes="Delete"), ["right", "left", "enter"], False),
    ],
)
async def test_arrows_move_between_buttons_and_enter_presses_the_focused_one(make, keys, result):
    app = Host(make())
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
    assert app.results == [result]


async def test_arrows_that_arrive_together_each_move_one_button():
    """A terminal may hand over two keys in one read (tmux does): the second
    left must move on from where the first went, or enter discards
    what the user meant to keep."""
    app = Host(UnsavedChanges("quit"))
    async with app.run_test() as pilot:
        await pilot.pause()
        for key in ("left", "left"):  # queued together, with no wait between them
            event = events.Key(key, None)
            event.set_sender(app)
            app._driver.send_message(event)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [None]  # cancel, not discard


async def test_the_button_enter_presses_is_marked():
    dialog = UnsavedChanges("quit")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert marked(dialog) == ["▸ Save ◂"]
        await pilot.press("left")
        await pilot.pause()
        assert marked(dialog) == ["▸ Discard ◂"]
        assert str(dialog.query_one("#save", Button).label) == "Save"


async def test_arrows_in_an_input_still_move_its_cursor():
    dialog = DemoTraffic("vm1", "10.0.0.2")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        target = dialog.query_one("#target")
        assert app.focused is target
        await pilot.press("end", "left")
        assert app.focused is target and target.cursor_position == len("10.0.0.2") - 1


async def test_demo_traffic_labels_its_fields_and_counts_what_it_sends():
    dialog = DemoTraffic("vm1", "10.0.0.2")
    app = Host(dialog)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        labels = [str(label.render()) for label in dialog.query("#target-row Label, #count-row Label")]
        assert labels == ["address", "how many"]
        count = dialog.query_one("#count", Input)
        assert count.value == "3"  # what a ping sends
        what = dialog.query_one("#what", Select)
        what.value = "udp"
        await pilot.pause()
        assert count.value == "100" and dialog.query_one("#count-row").display
        what.value = "arp"
        await pilot.pause()
        assert not dialog.query_one("#count-row").display  # one request: nothing to count
        what.value = "ping"
        await pilot.pause()
        assert count.value == "3"
        count.value = "5"
        count.focus()
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [["ping", "-c", "5", "-i", "0.2", "-W", "1", "10.0.0.2"]]


async def test_demo_traffic_from_a_vm_offers_what_its_busybox_has():
    dialog = DemoTraffic("r1e1", "10.0.0.2", vm_ifname="eth1")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        what = dialog.query_one("#what", Select)
        assert [value for _, value in what._options if value != Select.NULL] == ["ping", "arp"]
        what.value = "arp"
        await pilot.pause()
        dialog.query_one("#target", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [["arping", "-c", "1", "-I", "eth1", "10.0.0.2"]]


async def test_demo_traffic_refuses_a_count_of_nothing():
    dialog = DemoTraffic("vm1", "10.0.0.2")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        dialog.query_one("#count", Input).value = "0"
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [] and "how many" in [n.message for n in app._notifications][-1]


def fits(widget) -> bool:
    """The widget's text is shown whole: it needs no more lines than it has,
    and no more columns than its container gives it."""
    width = widget.content_size.width
    lines = widget.get_content_height(widget.size, widget.app.size, width)
    return width > 0 and lines <= widget.content_size.height and widget.outer_size.width <= widget.parent.size.width


async def test_help_heading_is_whole_and_says_escape_closes_it():
    app = QnetApp(load_file(SAMPLES / "seed-path.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, Help)
        heading = app.screen.query_one(".question", Label)
        assert "Escape closes" in str(heading.render())
        assert fits(heading)
        await pilot.press("escape")
        assert not isinstance(app.screen, Help)


async def test_inspector_says_what_an_empty_field_wants_in_full():
    app = QnetApp(load_file(SAMPLES / "seed-path.yaml"))
    app.settle_s = 0
    async with app.run_test(size=(160, 45)) as pilot:
        app.query_one(TopologyCanvas).select("eth0")
        await pilot.pause()
        await pilot.pause()
        inspector = app.query_one(Inspector)
        hint = inspector.query_one("#hint-ipv6", Label)
        assert str(hint.render()) == "IPv6 address of the outside host on this uplink"
        assert hint.display and fits(hint)
        assert not inspector.query_one("#hint-ipv4", Label).display  # set: the value says enough
        field = inspector.query_one("#field-ipv6", Input)
        field.focus()
        await pilot.press("f", "d")
        assert not hint.display


async def test_in_an_input_the_button_enter_stands_for_is_marked():
    dialog = DemoTraffic("vm1", "10.0.0.2")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert marked(dialog) == ["▸ Send ◂"]  # enter in the address sends
        dialog.query_one("#what", Select).focus()
        await pilot.pause()
        assert marked(dialog) == []  # enter opens the list: no button stands for it
        dialog.query_one("#cancel", Button).focus()
        await pilot.pause()
        assert marked(dialog) == ["▸ Cancel ◂"]
        assert str(dialog.query_one("#send", Button).label) == "Send"
