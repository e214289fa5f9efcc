"""The editor, driven with Pilot: every action, its refusals, undo/redo,
files and prompts."""

from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path

import pytest
import yaml
from rich.color import Color as RichColor
from textual.color import Color
from textual.widgets import Input, OptionList

from qnet_tui.model.kinds import Kind
from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.dialogs import AddNode, Confirm, Help, PathPrompt, UnsavedChanges
from qnet_tui.ui.inspector import Inspector

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
DATA = Path(__file__).parents[1] / "unit" / "data"
THEMES = Path(__file__).parents[2] / "themes"
SIZE = (160, 45)


@pytest.fixture
def seed(tmp_path) -> Path:
    path = tmp_path / "seed.yaml"
    shutil.copy(SAMPLES / "seed-path.yaml", path)
    return path


def app_for(path: Path) -> QnetApp:
    app = QnetApp(load_file(path))
    app.settle_s = 0  # the inspector and diagnostics follow at once: tests read them right away
    return app


def notes(app: QnetApp) -> list[str]:
    return [n.message for n in app._notifications]


async def open_via_dialog(pilot, path: Path) -> None:
    """ctrl+o, the path typed, OK."""
    await pilot.press("ctrl+o")
    assert isinstance(pilot.app.screen, PathPrompt)
    pilot.app.screen.query_one("#path", Input).value = str(path)
    await pilot.click("#ok")
    await pilot.pause()


async def select(pilot, node: str) -> None:
    pilot.app.query_one(TopologyCanvas).select(node)
    await pilot.pause()


async def test_opens_sample_with_every_node(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        canvas = app.query_one(TopologyCanvas)
        assert set(canvas.layout_.boxes) == set(app.document.topology.nodes)
        assert canvas.selected == "eth0"  # the first node, left to right
        assert "valid" in str(app.query_one("#diagnostics", OptionList).get_option_at_index(0).prompt)
        assert app.sub_title == "seed.yaml — lab seed"
        await pilot.press("q")
    assert app.return_code == 0


async def test_selection_by_keys_and_mouse(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        canvas = app.query_one(TopologyCanvas)
        await pilot.press("right", "right", "right")
        assert canvas.selected == "hub0"
        await pilot.press("right")
        assert canvas.selected in ("vm1", "vm2")
        await pilot.press("down")
        assert canvas.selected == "vm2"
        await pilot.press("tab")
        assert canvas.selected == "eth0"  # wraps around
        await pilot.pause()
        assert app.query_one(Inspector).node == "eth0"
        box = canvas.layout_.boxes["br0"]
        await pilot.click(TopologyCanvas, offset=(box.x + 3, box.y + 2))
        assert canvas.selected == "br0"


async def test_add_node_with_form_and_link(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hub0")
        await pilot.press("a")
        assert isinstance(app.screen, AddNode)
        assert app.screen.query_one("#node-id", Input).value == "vm3"
        await pilot.click("#add")
        await pilot.pause()
        t = app.document.topology
        assert t.nodes["vm3"].kind is Kind.GUEST_NIC
        assert t.nodes["vm3"].attrs["mac"].startswith("52:54:00:")
        assert ("vm3", "hub0") in t.links
        assert app.query_one(TopologyCanvas).selected == "vm3"
        assert app.sub_title.startswith("seed.yaml ●")


async def test_add_form_validates_id(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        form = app.screen
        form.query_one("#node-id", Input).value = "vm1"
        await pilot.pause()
        assert "id is taken" in str(form.query_one("#id-error").render())
        await pilot.click("#add")
        await pilot.pause()
        assert isinstance(app.screen, AddNode)  # refused, still open
        await pilot.press("escape")
        assert not isinstance(app.screen, AddNode)
        assert len(app.document.topology.nodes) == 6


async def test_connect_and_refusal(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.add_node(Kind.GUEST_NIC, "vm3", {"mac": "52:54:00:00:00:33"})
        app.refresh_all()
        await select(pilot, "vm3")
        await pilot.press("c")
        assert "connect vm3" in app.sub_title
        await select(pilot, "vm1")
        await pilot.press("enter")
        await pilot.pause()
        assert any("a guest NIC cannot connect to a guest NIC" in n for n in notes(app))
        assert not any("vm3" in link for link in app.document.topology.links)
        await select(pilot, "vm3")
        await pilot.press("c")
        await select(pilot, "hub0")
        await pilot.press("enter")
        await pilot.pause()
        assert ("vm3", "hub0") in app.document.topology.links
        await pilot.press("c", "escape")
        assert "connect" not in app.sub_title


async def test_disconnect_delete_duplicate_undo_redo(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        t = app.document.topology
        original_links = list(t.links)
        await select(pilot, "vm2")
        await pilot.press("x")  # one link: removed at once
        await pilot.pause()
        assert ("hub0", "vm2") not in t.links
        await pilot.press("d")
        await pilot.pause()
        assert "vm3" in t.nodes and t.nodes["vm3"].attrs["mac"] != t.nodes["vm2"].attrs["mac"]
        await select(pilot, "hub0")
        await pilot.press("delete")
        assert isinstance(app.screen, Confirm)
        await pilot.click("#no")
        await pilot.pause()
        assert "hub0" in t.nodes
        await pilot.press("delete")
        await pilot.click("#yes")
        await pilot.pause()
        assert "hub0" not in t.nodes and not any("hub0" in link for link in t.links)
        assert app.canvas.selected == "tap0"  # a neighbour of the deleted node: the selection stays where it was
        for _ in range(3):
            await pilot.press("ctrl+z")
        await pilot.pause()
        assert t.links == original_links and set(t.nodes) == {"eth0", "br0", "tap0", "hub0", "vm1", "vm2"}
        assert not app.editor.changed and app.sub_title == "seed.yaml — lab seed"
        await pilot.press("ctrl+y")
        assert ("hub0", "vm2") not in t.links
        assert notes(app)[-2:] == [
            "Undone: disconnect vm2 and hub0 (ctrl+y redoes it)",
            "Redone: disconnect vm2 and hub0",
        ]


async def test_disconnect_chooses_among_several_links(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hub0")
        await pilot.press("x")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        assert options.option_count == 3
        options.highlighted = 2
        await pilot.press("enter")
        await pilot.pause()
        assert ("hub0", "vm2") not in app.document.topology.links


async def test_inspector_validates_inline_and_applies(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hub0")
        await pilot.pause()
        field = app.query_one("#field-vlan", Input)
        field.focus()
        field.value = "5000"
        await pilot.pause()
        assert "vlan must be from 0 to 4095, not 5000" in str(app.query_one("#problem-vlan").render())
        await pilot.press("enter")
        assert app.document.topology.nodes["hub0"].attrs["vlan"] == 0  # not applied
        field.value = "7"
        await pilot.press("enter")
        await pilot.pause()
        assert app.document.topology.nodes["hub0"].attrs["vlan"] == 7
        assert "VLAN 7" in app.query_one(TopologyCanvas).layout_.boxes["hub0"].lines


async def test_inspector_rename(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "vm2")
        await pilot.pause()
        rename = app.query_one("#rename", Input)
        rename.focus()
        rename.value = "web"
        await pilot.press("enter")
        await pilot.pause()
        t = app.document.topology
        assert "web" in t.nodes and "vm2" not in t.nodes and ("hub0", "web") in t.links
        assert app.query_one(TopologyCanvas).selected == "web"


async def test_save_keeps_comments(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hub0")
        await pilot.press("d")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.editor.changed and "●" not in app.sub_title
    text = seed.read_text()
    assert "hub1:" in text and "# QEMU's -netdev hubport,hubid=0" in text
    assert load_file(seed).diagnostics()[0].message == "hub1: not connected to anything"


async def test_save_as(seed, tmp_path):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, PathPrompt)
        target = tmp_path / "copy.yaml"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.click("#ok")
        await pilot.pause()
        assert target.read_text() == seed.read_text()
        assert app.document.path == target and app.sub_title.startswith("copy.yaml")


async def test_quit_with_unsaved_changes_asks(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "vm1")
        await pilot.press("d", "q")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedChanges)
        await pilot.click("#cancel")
        await pilot.pause()
        assert app.is_running and "vm3" in app.document.topology.nodes
        await pilot.press("q")
        await pilot.pause()
        await pilot.click("#discard")
        await pilot.pause()
    assert app.return_code == 0
    assert "vm3" not in seed.read_text()


async def test_quit_and_save(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "vm1")
        await pilot.press("d", "q")
        await pilot.pause()
        await pilot.click("#save")
        await pilot.pause()
    assert "vm3:" in seed.read_text()


async def test_open_another_file_and_a_broken_one(seed, tmp_path):
    other = tmp_path / "two.yaml"
    shutil.copy(SAMPLES / "two-vlans.yaml", other)
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\nnodes: [oops\n")
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await open_via_dialog(pilot, broken)
        assert any("YAML syntax" in n for n in notes(app))
        assert app.document.path == seed  # nothing lost
        await open_via_dialog(pilot, other)
        assert app.document.path == other and "hub2" in app.query_one(TopologyCanvas).layout_.boxes


async def test_load_error_opens_read_only(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nnodes:\n  h: {kind: hub, vlan: 1}\n  h: {kind: tap}\n")
    original = bad.read_text()
    app = app_for(bad)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one("#diagnostics", OptionList)
        shown = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert any("error 5:3 duplicate key 'h'" in line for line in shown)
        assert "read-only" in app.sub_title
        await pilot.press("a")
        await pilot.pause()
        assert any("read-only" in n for n in notes(app))
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("f2")  # refused at once, not after a path was chosen
        await pilot.pause()
        assert not isinstance(app.screen, PathPrompt)
    assert bad.read_text() == original


async def test_diagnostic_selects_its_node(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.add_node(Kind.TAP, "tap9")
        app.refresh_all()
        await select(pilot, "eth0")
        panel = app.query_one("#diagnostics", OptionList)
        panel.focus()
        panel.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TopologyCanvas).selected == "tap9"


async def test_help_and_palette(seed):
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, Help)
        texts = " ".join(str(w.render()) for w in app.screen.query("Label"))
        for word in ("Add a node", "Undo", "Save", "Connect"):
            assert word in texts
        for word in ("Send traffic", "pcapng capture", "traffic panes", "Pause", "Filter"):  # not in the footer
            assert word in texts
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Add", "Connect", "Disconnect", "Delete", "Duplicate", "Undo", "Redo", "Save", "Save as", "Open"):
            assert title in titles
        # The footer's names, each once: no second Quit or Keys from Textual.
        for title in ("Run", "Stop", "Send traffic", "Capture", "Traffic", "Pause log", "Filter", "Keys", "Quit"):
            assert titles.count(title) == 1, title
        keys = next(c for c in app.get_system_commands(app.screen) if c.title == "Keys")
        app.call_later(keys.callback)  # as the palette runs it
        await pilot.pause()
        assert isinstance(app.screen, Help)  # the keys of this app, as ? shows them


async def test_themes_switch_and_broken_theme_is_reported(seed):
    app = QnetApp(load_file(seed), theme_errors=["themes/bad.yaml: colour 'nope' cannot be parsed"])
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "qnet-dark"
        assert {"qnet-light", "qnet-high-contrast"} <= set(app.available_themes)
        assert any("bad.yaml" in n for n in notes(app))
        canvas = app.query_one(TopologyCanvas)
        assert canvas._style("node-hub").color == theme_colour("qnet-dark", "node-hub")
        app.theme = "qnet-light"
        await pilot.pause()
        # The canvas drops the colours it cached: the hub box takes the new theme's colour.
        assert canvas._style("node-hub").color == theme_colour("qnet-light", "node-hub")


def theme_colour(theme: str, variable: str) -> RichColor:
    data = yaml.safe_load((THEMES / f"{theme}.yaml").read_text())
    return Color.parse(data["variables"][variable]).rich_color


async def test_import_qemu_from_the_palette(seed):
    from qnet_tui.ui.dialogs import ImportQemu

    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        assert "Import QEMU" in [c.title for c in app.get_system_commands(app.screen)]
        await app.run_action("import_qemu")
        await pilot.pause()
        assert isinstance(app.screen, ImportQemu)
        app.screen.query_one("#args", Input).value = "-net nic,vlan=3,model=e1000 -net tap,vlan=3,ifname=tap3 -net user"
        await pilot.press("enter")
        await pilot.pause()
        t = app.document.topology
        assert {n.id for n in t.nodes.values()} == {"hub3", "vm1", "tap3"}
        assert app.document.path is None and "new topology" in app.sub_title
        assert any("user-mode networking" in n for n in notes(app))
        await app.run_action("import_qemu")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedChanges)  # the first import is in no file yet
        await pilot.press("left", "enter")  # discard it
        await pilot.pause()
        stream = "-netdev stream,id=q0,server=off,addr.type=unix,addr.path=/tmp/q0.sock -device e1000,netdev=q0"
        app.screen.query_one("#args", Input).value = stream
        await pilot.press("enter")
        await pilot.pause()
        assert app.document.topology.nodes["q0"].attrs["external"] is True
        assert any("q0: unix path /tmp/q0.sock is outside the lab's folder" in n for n in notes(app))


async def test_an_import_is_unsaved_until_saved(seed, tmp_path):
    """An imported topology is in no file: the title marks it, and quitting asks."""
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await app.run_action("import_qemu")
        await pilot.pause()
        app.screen.query_one("#args", Input).value = "-net nic,vlan=1 -net nic,vlan=1"
        await pilot.press("enter")
        await pilot.pause()
        assert app.sub_title.startswith("new topology ●")
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedChanges)
        await pilot.press("enter")  # save: where to?
        await pilot.pause()
        assert isinstance(app.screen, PathPrompt)
        app.screen.query_one(Input).value = str(tmp_path / "imported.yaml")
        await pilot.press("enter")
        await pilot.pause()
    assert set(load_file(tmp_path / "imported.yaml").topology.nodes) == {"hub1", "vm1", "vm2"}


async def test_running_a_real_interface_needs_allow_host(tmp_path):
    path = tmp_path / "wan.yaml"
    path.write_text(
        "version: 1\nname: wan\nnodes:\n  wan: {kind: host_nic, interface: enp9s0}\n  br0: {kind: bridge}\n"
        "links: [[wan, br0]]\n"
    )
    app = app_for(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert app.lab.client is None  # nothing started: the interface stays this machine's
        assert any("start qnet-tui with --allow-host" in n and "enp9s0" in n for n in notes(app))


@pytest.mark.parametrize("full_gc_s", [0.2, 3600.0], ids=["periodic", "after-edit"])
async def test_the_app_answers_after_its_collections(seed, full_gc_s):
    """The app collects garbage on timers; one once took the app down with it
    (a builtin as a Textual interval callback), five minutes after start. With
    the periodic collection an hour away, only the one a second after an edit runs."""
    full: list[float] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    app = app_for(seed)
    app.full_gc_s = full_gc_s
    gc.callbacks.append(count)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, "hub0")
            await pilot.press("d")
            assert "hub1" in app.document.topology.nodes
            edited, wanted = time.monotonic(), 3 if full_gc_s < 1 else 1
            while sum(t > edited for t in full) < wanted:
                assert time.monotonic() - edited < 15, f"{len(full)} full collection(s), {wanted} wanted"
                await pilot.pause(0.05)
            await pilot.press("ctrl+z")
            await pilot.pause()
            assert "hub1" not in app.document.topology.nodes
    finally:
        gc.callbacks.remove(count)


async def test_a_refused_edit_is_marked_not_fatal(tmp_path):
    path = tmp_path / "two.yaml"
    shutil.copy(SAMPLES / "two-vlans.yaml", path)
    app = app_for(path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "hub1")
        field = app.query_one("#field-vlan", Input)
        field.focus()
        field.value = "2"  # hub2's VLAN
        await pilot.press("enter")
        await pilot.pause()
        assert app.document.topology.nodes["hub1"].attrs["vlan"] == 1  # refused
        assert "2" in str(app.query_one("#problem-vlan").render())


async def test_problem_list_is_bounded_and_says_how_many_more(tmp_path):
    path = tmp_path / "many.yaml"
    hub = "  hub0: {kind: hub, vlan: 7000}\n"  # an error, after 150 warnings
    path.write_text("version: 1\nname: many\nnodes:\n" + "".join(f"  t{i}: {{kind: tap}}\n" for i in range(150)) + hub)
    app = app_for(path)
    async with app.run_test(size=SIZE):
        panel = app.query_one("#diagnostics", OptionList)
        shown = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert len(shown) == 101
        assert shown[-1] == "and 52 more not shown (1 error(s), 151 warning(s) in all)"
        assert sum(line.startswith("error ") for line in shown) == 1  # the error is kept
        assert panel.get_option_at_index(100).disabled


async def test_an_inspector_field_shows_its_value_while_it_has_the_focus(seed):
    """A field is one line: a focus border (Textual's default for inputs,
    switches and lists) would leave no room for the value being edited."""
    from textual.widgets import Select, Switch

    for path, node, field, kind in (
        (seed, "vm1", "ipv4", Input),
        (seed, "br0", "stp", Switch),
        (SAMPLES / "qemu-socket.yaml", "vm9", "transport", Select),
    ):
        app = app_for(path)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, node)
            widget = app.inspector.query_one(f"#field-{field}", kind)
            widget.focus()
            await pilot.pause()
            assert widget.has_focus, field
            assert widget.region.height == 1, field
            shown = widget.query_one("SelectCurrent") if kind is Select else widget
            assert shown.content_region.height == 1, f"{field}: no line left for the value"


async def test_e_edits_the_selected_node_and_escape_goes_back_to_the_canvas(seed):
    """By keys alone: into the inspector, a field changed, and out again,
    where q is the app's key once more (in a field it is a letter)."""
    app = QnetApp(load_file(seed))  # the inspector follows the selection after its pause, as in use
    async with app.run_test(size=SIZE) as pilot:
        app.canvas.select("vm1")
        await pilot.press("e")  # at once: before the inspector's pause is over
        await pilot.pause(0.3)
        assert app.focused is app.inspector.query_one("#rename", Input)
        await pilot.press("tab", "tab", "tab", "tab")  # id, model, mac, guest, ipv4
        ipv4 = app.inspector.query_one("#field-ipv4", Input)
        assert app.focused is ipv4
        ipv4.value = "10.0.0.21/24"
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is app.canvas
        assert app.document.topology.nodes["vm1"].attrs["ipv4"] == "10.0.0.21/24"  # leaving applied it
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedChanges)


async def test_export_from_the_palette_writes_next_to_the_file_and_never_over_one(seed):
    app = app_for(seed)
    out = seed.with_name("seed.clab.yml")
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Export as containerlab", "Export as Mermaid", "Export as Graphviz"} <= set(titles)
        await app.run_action("export_clab")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert out.read_text().startswith("# containerlab topology exported by qnet-tui from seed.yaml.")
        assert f"Wrote {out}" in notes(app)
        assert any("tap0: no containerlab equivalent (a TAP device)" in n for n in notes(app))
        out.write_text("mine\n")
        await app.run_action("export_clab")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert out.read_text() == "mine\n"
        assert any(f"{out} exists" in n for n in notes(app))


def test_a_missing_containerlab_file_is_not_made_anew(tmp_path, capsys, monkeypatch):
    from qnet_tui.ui.app import run_app

    monkeypatch.setattr(QnetApp, "run", lambda self: None)  # were it opened as a new topology
    assert run_app(str(tmp_path / "new.clab.yml")) == 1
    assert "new.clab.yml: cannot read: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "new.clab.yml").exists()


async def test_opening_a_containerlab_file_imports_it_and_a_broken_project_changes_nothing(seed, tmp_path):
    """ctrl+o on a .clab.yml or .gns3 imports it as a new document, offered to be
    saved beside it; one that cannot be read says why and the open file stays."""
    clab = tmp_path / "branch.clab.yml"
    shutil.copy(DATA / "lab.clab.yml", clab)
    broken = tmp_path / "broken.gns3"
    broken.write_text('{"topology": ')
    app = app_for(seed)
    async with app.run_test(size=SIZE) as pilot:
        await open_via_dialog(pilot, broken)
        assert any(n.startswith("broken.gns3:") and "JSON" in n for n in notes(app)), notes(app)
        assert app.document.path == seed
        await open_via_dialog(pilot, clab)
        assert app.document.path is None and app.sub_title.startswith("new topology ●")
        assert {"client1", "client2"} <= set(app.document.topology.nodes)
        assert any("ctrl+s offers branch.yaml" in n for n in notes(app)), notes(app)
        assert any("image" in n for n in notes(app))  # what was left out is told
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PathPrompt)
        assert app.screen.query_one("#path", Input).value == str(tmp_path / "branch.yaml")
        await pilot.press("enter")
        await pilot.pause()
    saved = tmp_path / "branch.yaml"
    assert saved.read_text().startswith("# Imported from branch.clab.yml by qnet-tui import.")
    assert set(load_file(saved).topology.nodes) == set(app.document.topology.nodes)
