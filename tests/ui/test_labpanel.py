"""The lab panel and the app's workers: what the worker says arrives typed,
a bad line is a notice and no crash, a flood is held back by the client,
a failing worker is a notice, and saving leaves the event loop free."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import ClassVar

from qnet_tui import protocol
from qnet_tui.model.yamlio import Document, load_file
from qnet_tui.protocol import LabState
from qnet_tui.ui import files
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.labclient import LabClient
from tests.ui.heard import decoded
from tests.ui.test_traffic_replay import recorded

SAMPLES = Path(__file__).parents[2] / "sample_topologies"


class StartsNothing:
    """A lab client that starts nothing; `started` lists those asked to start."""

    started: ClassVar[list[object]] = []

    def __init__(self, *args, **kwargs) -> None:
        self.file = None

    def start(self) -> None:
        self.started.append(self)

    def stop(self) -> None:
        pass


def notes(app: QnetApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_malformed_worker_line_is_one_notice_and_the_panes_go_on():
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.hear(decoded({"type": "state", "state": "running"}))
        for line in (b'{"type": "stats", "time": 1}', b"[]", b'{"type": "state", "state": "??"}'):
            app.lab.hear(protocol.decode(line, protocol.WORKER))
        stats = next(m for m in recorded() if m["type"] == "stats")
        app.lab.hear(decoded(stats))
        await pilot.pause()
        warned = [n for n in notes(app) if "could not be read" in n]
        assert len(warned) == 1 and "stats has no 'lab'" in warned[0]
        assert app.lab.malformed == 3 and app.lab.state is LabState.RUNNING
        assert set(app.lab.traffic.panes) == {"v1", "v2"}


async def test_the_client_holds_back_a_flood_the_app_cannot_take():
    """Statistics and samples arrive far faster than the app handles them:
    the client's backlog keeps what is queued small and counts what it skipped;
    once the app catches up, what comes is taken again."""
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    stats = decoded(next(m for m in recorded() if m["type"] == "stats"))
    samples = decoded(next(m for m in recorded() if m["type"] == "samples"))
    async with app.run_test(size=(160, 45)) as pilot:
        client = app.lab.client = LabClient("", "twovlans", on_message=lambda m, s: None, on_exit=lambda c, r: None)
        handled = []
        original = app.lab.traffic.log_samples
        app.lab.traffic.log_samples = lambda s: (handled.append(s), original(s))
        for _ in range(500):  # as the client's thread does, without yielding to the app
            for msg in (stats, samples):
                seq = client.backlog.admit(type(msg))
                if seq is not None:
                    app.lab.hear(msg, seq, client)
        for _ in range(100):  # until the app has handled what was let through
            if client.backlog.posted == client.backlog.handled:
                break
            await pilot.pause(0.05)
        skipped = client.backlog.skipped
        assert skipped[protocol.Stats] >= 490 and skipped[protocol.Samples] >= 490, skipped
        assert len(handled) <= 4  # the samples let through, no more
        posted, done = client.backlog.posted, client.backlog.handled
        assert posted == done, (posted, done)  # every one let through was handled: room again
        assert client.backlog.admit(protocol.Samples) is not None
        app.lab.client = None


async def test_a_failing_worker_is_a_notice_and_the_app_goes_on(tmp_path, monkeypatch):
    async def broken(app, start):
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(files, "open_file", broken)
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert any("the disk caught fire" in n for n in notes(app)), notes(app)
        await pilot.press("q")
    assert app.return_code == 0  # quit normally: the failure did not take the app down


async def test_saving_runs_off_the_event_loop_and_edits_wait_for_it(tmp_path, monkeypatch):
    path = tmp_path / "two.yaml"
    shutil.copy(SAMPLES / "two-vlans.yaml", path)
    writing, release = threading.Event(), threading.Event()
    real_save = Document.save

    def slow_save(self, target=None):
        writing.set()
        assert release.wait(30), "the test never let the save finish"
        return real_save(self, target)

    monkeypatch.setattr(Document, "save", slow_save)
    app = QnetApp(load_file(path))
    async with app.run_test(size=(160, 45)) as pilot:
        app.canvas.select("vm1")
        await pilot.press("d")  # an edit to save
        await pilot.pause()
        assert app.editor.changed
        nodes = len(app.document.topology.nodes)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert writing.wait(10)
        await pilot.press("d")  # the loop still answers keys while the file is written
        await pilot.pause()
        assert "A moment: saving" in notes(app) and len(app.document.topology.nodes) == nodes
        release.set()
        await pilot.wait_for_scheduled_animations()
        for _ in range(100):
            if not app.editor.changed:
                break
            await pilot.pause(0.05)
        assert not app.editor.changed and f"Saved {path}" in notes(app)
    assert len(json.loads(json.dumps(load_file(path).topology.nodes and list(load_file(path).topology.nodes)))) == nodes


def test_every_worker_of_the_ui_reports_its_failure_instead_of_ending_the_app():
    """Textual ends the app on a worker's exception unless told otherwise; the
    app's on_worker_state_changed turns it into a notice (test above)."""
    ui = Path(__file__).parents[2] / "qnet_tui" / "ui"
    workers = [
        (path.name, line.strip())
        for path in ui.glob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith("@work")
    ]
    assert len(workers) >= 7
    assert [w for w in workers if "exit_on_error=False" not in w[1]] == []


async def test_a_worker_that_cannot_start_is_a_notice_and_leaves_no_file(tmp_path, monkeypatch):
    import errno
    import tempfile

    def no_python(self, name):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "python3")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(LabClient, "_spawn", no_python)
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("r")
        for _ in range(100):
            if any("cannot start the worker" in n for n in notes(app)):
                break
            await pilot.pause(0.05)
        assert any("cannot start the worker: [Errno 2] No such file or directory: 'python3'" in n for n in notes(app))
        assert app.lab.client is None and app.lab.state is None and "[lab" not in app.sub_title
        assert list(tmp_path.iterdir()) == []  # the topology's temporary copy is gone
        assert not app.busy  # and edits are possible again


async def test_demo_traffic_notices_name_what_was_sent_not_the_interpreter(tmp_path):
    """ARP, DHCP and UDP are sent by a Python module inside the guest: the
    notice is titled by what it sent, as ping's is by ping."""
    import sys

    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        for cmd, title in (
            ([sys.executable, "-m", "qnet_tui.lab.demo", "dhcp"], "vm1: DHCP discover"),
            ([sys.executable, "-m", "qnet_tui.lab.demo", "udp", "10.0.0.2", "5"], "vm1: UDP burst"),
            (["ping", "-c", "1", "10.0.0.2"], "vm1: ping"),
        ):
            # No lab runs at that file: exec fails, and the notice still says what it tried.
            await app.lab.send_traffic(tmp_path / "no-lab.json", "vm1", cmd).wait()
            await pilot.pause()
            assert app._notifications and list(app._notifications)[-1].title == title


def test_the_client_leaves_another_process_lab_of_the_same_name_alone(tmp_path, monkeypatch):
    """`qnet-tui run lab.yaml` in a terminal and r in the app on the same lab:
    the app's worker cannot start, and its client, finding the other lab's
    control socket, must neither show that lab as its own nor stop it; it
    says why its worker failed."""
    import socket
    import subprocess
    import sys

    from qnet_tui.ui import labclient

    path = tmp_path / "control.sock"
    monkeypatch.setattr(protocol, "control_path", lambda lab: path)
    # Our worker: up a moment, then refused, as a second run of a lab is.
    script = (
        "import sys, time; time.sleep(0.5)\n"
        "print('qnet-tui: error: lab seed is already running', file=sys.stderr); sys.exit(1)"
    )
    real_popen = subprocess.Popen
    monkeypatch.setattr(
        labclient.subprocess, "Popen", lambda argv, **kw: real_popen([sys.executable, "-c", script], **kw)
    )

    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # the other lab's worker
    other.bind(str(path))
    other.listen(8)
    peers: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                peer, _ = other.accept()
            except OSError:
                return
            peers.append(peer)
            hello = protocol.Hello("seed", None, os.getpid(), protocol.PROTOCOL_VERSION)
            with contextlib.suppress(OSError):  # the client may hang up at once
                peer.sendall(protocol.encode(hello) + protocol.encode(protocol.State(LabState.RUNNING)))

    threading.Thread(target=serve, daemon=True).start()
    heard: list[object] = []
    exited = threading.Event()
    result: list[tuple[int, str]] = []
    client = LabClient("", "seed", on_message=lambda m, s: heard.append(m),
                       on_exit=lambda c, r: (result.append((c, r)), exited.set()))  # fmt: skip
    try:
        client.start()
        for _ in range(100):  # until the client has met the other lab at least once
            if peers:
                break
            time.sleep(0.02)
        time.sleep(0.1)  # the other lab's hello read
        assert not client.send(protocol.Stop())  # s now would be for our worker, never the other lab
        assert exited.wait(10), "the client followed the other lab instead of its own worker"
    finally:
        other.close()
        for peer in peers:
            peer.close()
    assert result == [(1, "lab seed is already running")]
    assert heard == []  # nothing of the other lab shown as ours


async def test_g_offers_a_ping_target_in_the_same_broadcast_domain():
    """Another guest of the VLAN first; with none, the outside host behind the
    tap's bridge (direct-peer.yaml); nothing when there is no address to offer."""
    from types import SimpleNamespace

    from textual.widgets import Input

    from qnet_tui.ui.dialogs import DemoTraffic

    for sample, node, offered in (
        ("seed-path.yaml", "vm1", "10.0.0.12"),
        ("two-vlans.yaml", "vm3", "10.0.0.4"),  # its own VLAN's, not vm1's
        ("direct-peer.yaml", "vm1", "192.168.77.1"),
        ("qemu-socket.yaml", "vm1", ""),
    ):
        app = QnetApp(load_file(SAMPLES / sample))
        async with app.run_test(size=(160, 45)) as pilot:
            # A lab that runs, as far as g can tell.
            app.lab.client = SimpleNamespace(file=Path("lab.yaml"), stop=lambda: None)
            app.lab.state = LabState.RUNNING
            app.canvas.select(node)
            await pilot.press("g")
            await pilot.pause()
            assert isinstance(app.screen, DemoTraffic), sample
            assert app.screen.query_one("#target", Input).value == offered, sample
            await pilot.press("escape")
            app.lab.client = None


async def test_r_right_after_s_starts_the_lab_again_once_the_old_one_is_gone(monkeypatch):
    """The worker says "stopped" before it has exited: r then waits for the
    exit instead of answering "Lab seed is stopped; stop it first"."""
    from qnet_tui.ui import labpanel
    from qnet_tui.ui.labpanel import LabExited

    started = StartsNothing.started = []
    monkeypatch.setattr(labpanel, "LabClient", StartsNothing)
    app = QnetApp(load_file(SAMPLES / "seed-path.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert len(started) == 1
        old = started[0]
        for state in ("running", "stopped"):  # s: the worker says stopped, then tears down and exits
            app.lab.hear(decoded({"type": "state", "state": state}), client=old)
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert len(started) == 1 and not [n for n in notes(app) if "stop it first" in n]  # waiting
        app.lab.post_message(LabExited(old, 0, ""))
        await pilot.pause(0.2)
        assert len(started) == 2 and app.lab.client is started[1]
        assert not [n for n in notes(app) if "stop it first" in n]
        app.lab.client = None


async def test_another_topology_waits_until_the_lab_of_this_one_is_stopped(monkeypatch):
    """Open or import while a lab runs would put another topology on screen
    over the lab's panes, and g and w would pick its nodes in the wrong lab."""
    from qnet_tui.ui import labpanel
    from qnet_tui.ui.dialogs import ImportQemu, PathPrompt
    from qnet_tui.ui.labpanel import LabExited

    monkeypatch.setattr(labpanel, "LabClient", StartsNothing)
    app = QnetApp(load_file(SAMPLES / "seed-path.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        app.lab.hear(decoded({"type": "state", "state": "running"}))
        await pilot.pause()
        for action in ("open", "import_qemu"):
            await app.run_action(action)
            await pilot.pause()
            assert not isinstance(app.screen, (PathPrompt, ImportQemu)), action
            assert "stop it first (s)" in notes(app)[-1]
        app.lab.post_message(LabExited(app.lab.client, 0, ""))  # stopped and gone
        await pilot.pause()
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PathPrompt)


async def test_replies_the_app_does_not_show_are_let_pass():
    """link_state comes to the client that asked; the app's `l` asks, and
    must take the reply without a message class of its own (impaired, the
    inspector's, is shown: tests/ui/test_impair.py)."""
    app = QnetApp(load_file(SAMPLES / "two-vlans.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.hear(decoded({"type": "link_state", "a": "hub1", "b": "vm2", "a_b": False, "b_a": False,
                              "message": "hub1 - vm2: down both ways"}))  # fmt: skip
        await pilot.pause()
        assert app.is_running and notes(app) == []
