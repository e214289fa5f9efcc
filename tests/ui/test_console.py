"""A VM guest's console in the app: what the guest prints is shown as a
dumb terminal shows it, every key goes to the guest, ctrl+] leaves."""

from __future__ import annotations

from qnet_tui import protocol
from qnet_tui.model.yamlio import load_text
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.canvas import TopologyCanvas
from qnet_tui.ui.console import ConsoleScreen, Terminal
from tests.ui.heard import hear
from tests.ui.test_traffic_replay import SentToWorker

LAB = """\
version: 1
name: vms
nodes:
  hub0: {kind: hub, vlan: 0}
  r1: {kind: guest, vm: true}
  r1e0: {kind: guest_nic, guest: r1, mac: '52:54:00:00:09:01', ipv4: 10.9.0.1/24}
  ns2: {kind: guest_nic, mac: '52:54:00:00:09:02', ipv4: 10.9.0.2/24}
links: [[hub0, r1e0], [hub0, ns2]]
"""


def test_the_terminal_keeps_lines_as_a_serial_console_prints_them():
    t = Terminal()
    t.feed("boot\r\nr1:/# ecg\b \bho hi\r\n\x1b[1;32mhi\x1b[0m\r\nr1:/# \x1b[")
    t.feed("0mready")
    assert list(t.lines) == ["boot", "r1:/# echo hi", "hi", "r1:/# ready"]


def console_output(guest: str, data: bytes) -> dict:
    return {"type": "console_output", "guest": guest, "data": protocol.ConsoleOutput.of(guest, data).data}


async def test_the_console_screen_shows_the_guest_and_sends_every_key(tmp_path):
    app = QnetApp(load_text(LAB, tmp_path / "vms.yaml"))
    app.settle_s = 0
    async with app.run_test(size=(120, 30)) as pilot:
        worker = app.lab.client = SentToWorker()
        hear(app, {"type": "state", "state": "running"})
        await pilot.pause()
        app.query_one(TopologyCanvas).select("r1e0")  # a NIC opens its guest's console
        await pilot.press("v")
        assert isinstance(app.screen, ConsoleScreen) and worker.sent == [protocol.Console("r1", True)]
        hear(app, console_output("r1", b"qnet-guest: ready r1\r\nr1:/# "))
        await pilot.pause()
        assert list(app.screen.terminal.lines)[-2:] == ["qnet-guest: ready r1", "r1:/# "]
        await pilot.press("l", "s", "enter", "ctrl+c", "up", "q")  # q too: no key of the app's here
        typed = b"".join(protocol.unbase64(m.data) for m in worker.sent if isinstance(m, protocol.ConsoleInput))
        assert typed == b"ls\r\x03\x1b[Aq"
        await pilot.press("ctrl+right_square_bracket")
        assert not isinstance(app.screen, ConsoleScreen)
        assert worker.sent[-1] == protocol.Console("r1", False)
        app.query_one(TopologyCanvas).select("ns2")
        await pilot.press("v")  # not a VM: no console, and it says why
        assert not isinstance(app.screen, ConsoleScreen)
        assert "Select a VM guest" in [n.message for n in app._notifications][-1]
        await pilot.press("V")
        app.query_one(TopologyCanvas).select("r1")
        await pilot.press("V")
        assert worker.sent[-1] == protocol.VmControl("r1")
        app.lab.client = None


async def test_a_vm_guests_state_is_on_its_box(tmp_path):
    app = QnetApp(load_text(LAB, tmp_path / "vms.yaml"))
    async with app.run_test(size=(120, 30)) as pilot:
        stats = {"type": "stats", "time": 1.0, "lab": "vms", "vlans": {}, "peers": {},
                 "vms": {"r1": {"state": "crashed", "reason": "QEMU killed by signal 9", "accel": "tcg",
                                "links": {"r1e0": True}}}}  # fmt: skip
        hear(app, stats)
        await pilot.pause()
        assert app.query_one(TopologyCanvas).live["r1"] == "VM crashed"
        stats["vms"]["r1"]["state"] = "running"
        hear(app, stats)
        await pilot.pause()
        assert app.query_one(TopologyCanvas).live["r1"] == "VM up · TCG"


async def test_a_vm_nic_connecting_is_no_peer_news(tmp_path, monkeypatch):
    from qnet_tui.ui import labpanel
    from tests.ui.test_labpanel import StartsNothing

    monkeypatch.setattr(labpanel, "LabClient", StartsNothing)
    text = LAB.replace("links:", "  q0: {kind: socket, transport: stream, mode: listen, address: q0.sock}\nlinks:")
    app = QnetApp(load_text(text.replace("[hub0, ns2]]", "[hub0, ns2], [hub0, q0]]"), tmp_path / "vms.yaml"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        port = {"kind": "stream", "connected": True, "rx_frames": 0, "rx_bytes": 0, "tx_frames": 0, "tx_bytes": 0,
                "drops": 0, "drop_reasons": {}, "looped": False}  # fmt: skip
        hub = {"hub": "hub0", "forwarding": "worker", "capture": None,
               "frames": 0, "bytes": 0, "drops": 0, "protocols": {},
               "ports": {"r1e0": port, "q0": port}, "fps": 0.0, "bps": 0.0}  # fmt: skip
        hear(app, {"type": "stats", "time": 1.0, "lab": "vms", "vlans": {"0": hub}, "peers": {}})
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert "q0: a peer connected" in said and not [n for n in said if n.startswith("r1e0")]
        app.lab.client = None
