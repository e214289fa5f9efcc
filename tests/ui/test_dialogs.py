"""Dialogs driven by keys alone: arrows move between the buttons, enter
presses the one focused, and that one is marked."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Button

from qnet_tui.ui.dialogs import FOCUS_MARK, Confirm, DemoTraffic, UnsavedChanges


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


async def test_the_button_enter_presses_is_marked():
    dialog = UnsavedChanges("quit")
    app = Host(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert marked(dialog) == ["▸ Save ◂"]
        await pilot.press("left")
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
