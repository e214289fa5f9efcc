"""The app with a real worker: run, watch a ping in its VLAN's pane (and not
in the other's), survive the worker's death, run again, stop, leave nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.traffic import TrafficView

from .conftest import SAMPLES, lab_namespaces

SIZE = (160, 60)


def copy_sample(tmp_path: Path, name: str) -> tuple[Path, str]:
    lab = f"t{uuid.uuid4().hex[:8]}"
    text = (SAMPLES / name).read_text()
    path = tmp_path / name
    path.write_text("\n".join(f"name: {lab}" if line.startswith("name: ") else line for line in text.splitlines()))
    return path, lab


async def until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def exec_in(path: Path, node: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qnet_tui", "exec", str(path), node, "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
    )


def frames(app: QnetApp, pane: str, protocol: str) -> int:
    view = app.query_one(TrafficView)
    p = view.panes.get(pane)
    return p.last[protocol] if p is not None and p.last else 0


async def test_run_watch_fail_restart_stop(tmp_path, runtime):
    path, lab = copy_sample(tmp_path, "two-vlans.yaml")
    app = QnetApp(load_file(path))
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running", what="the lab to run")
        assert len(lab_namespaces(lab)) == 5 and app.lab.has_class("-shown")
        result = await asyncio.to_thread(exec_in, path, "vm1", "ping", "-c", "4", "-i", "0.2", "10.0.0.2")
        assert result.returncode == 0, result.stdout + result.stderr
        await until(pilot, lambda: frames(app, "v1", "ipv4") >= 8, what="the ping in VLAN 1's pane")
        assert frames(app, "v2", "ipv4") == 0

        os.kill(app.lab.client.pid, signal.SIGKILL)  # the worker dies
        await until(pilot, lambda: app.lab.state == "failed", what="the failure to show")
        assert "killed by signal SIGKILL" in app.sub_title
        assert any("Press r to start it again" in n.message for n in app._notifications)
        await until(pilot, lambda: not lab_namespaces(lab), what="the watchdog's cleanup")

        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running", what="the restart")
        await pilot.press("s")
        await until(pilot, lambda: app.lab.state == "stopped" and app.lab.client is None, what="the stop")
        assert lab_namespaces(lab) == []


async def test_quit_stops_the_lab(tmp_path, runtime):
    path, lab = copy_sample(tmp_path, "seed-path.yaml")
    app = QnetApp(load_file(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running", what="the lab to run")
        worker = app.lab.client.proc
        await pilot.press("q")
        await until(pilot, lambda: worker.poll() is not None, what="the worker to tear the lab down and exit")
    assert lab_namespaces(lab) == []


async def test_run_refuses_an_invalid_topology(tmp_path, runtime):
    path, lab = copy_sample(tmp_path, "seed-path.yaml")
    path.write_text(path.read_text().replace("vlan: 0", "vlan: 0\n    colour: red"))
    app = QnetApp(load_file(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert app.lab.client is None
        assert any("unknown key 'colour'" in n.message for n in app._notifications)
    assert lab_namespaces(lab) == []


async def test_demo_traffic_and_capture(tmp_path, runtime):
    from scapy.layers.inet import ICMP
    from scapy.utils import rdpcap

    from qnet_tui.ui.canvas import TopologyCanvas
    from qnet_tui.ui.dialogs import DemoTraffic, PathPrompt

    path, lab = copy_sample(tmp_path, "seed-path.yaml")
    app = QnetApp(load_file(path))
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running" and app.query_one(TrafficView).panes, what="running")
        await until(pilot, lambda: app.query_one(TrafficView).panes["v0"].hub == "hub0", what="the first stats")
        canvas = app.query_one(TopologyCanvas)
        canvas.select("hub0")
        await pilot.press("w")
        assert isinstance(app.screen, PathPrompt)
        pcap = tmp_path / "vlan0.pcap"
        app.screen.query_one("#path").value = str(pcap)
        app.screen.query_one("#filter").value = "icmp"  # a capture filter: ARP and the rest stay out
        await pilot.click("#ok")
        await until(pilot, lambda: app.query_one(TrafficView).panes["v0"].capturing == str(pcap), what="capturing")

        canvas.select("vm1")
        await pilot.pause()
        await pilot.press("g")
        assert isinstance(app.screen, DemoTraffic)
        assert app.screen.query_one("#target").value == "10.0.0.12"  # the other guest of the VLAN
        await pilot.click("#send")
        await until(pilot, lambda: any("0% packet loss" in n.message for n in app._notifications), what="the ping")

        canvas.select("hub0")
        await pilot.press("w")  # stop the capture
        await until(pilot, lambda: app.query_one(TrafficView).panes["v0"].capturing is None, what="capture stopped")
        await pilot.press("s")
        await until(pilot, lambda: app.lab.client is None, what="the stop")
    packets = rdpcap(str(pcap))
    echoes = [p for p in packets if ICMP in p]
    assert len(echoes) >= 6  # three requests and three replies, as Wireshark would read them
    assert len(echoes) == len(packets)  # the filter kept ICMP alone
    assert lab_namespaces(lab) == []


async def test_keep_the_last_30_s_of_a_vlan_and_save_them(tmp_path, runtime):
    from qnet_tui.ui.canvas import TopologyCanvas
    from qnet_tui.ui.dialogs import PathPrompt
    from tests.unit.test_capture import read_pcapng

    path, lab = copy_sample(tmp_path, "two-vlans.yaml")
    app = QnetApp(load_file(path))
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running" and app.query_one(TrafficView).panes, what="running")
        await until(pilot, lambda: app.query_one(TrafficView).panes["v1"].hub == "hub1", what="the first stats")
        app.query_one(TopologyCanvas).select("vm2")  # a node on hub1: its VLAN
        await pilot.press("W")
        pane = app.query_one(TrafficView).panes["v1"]
        await until(pilot, lambda: "last 30 s" in str(pane.border_subtitle), what="the pane to say it keeps them")
        result = await asyncio.to_thread(exec_in, path, "vm1", "ping", "-c", "3", "-i", "0.2", "10.0.0.2")
        assert result.returncode == 0, result.stdout + result.stderr
        await pilot.press("W")
        assert isinstance(app.screen, PathPrompt)
        assert "last30s" in app.screen.query_one("#path").value  # a path offered
        saved = tmp_path / "last.pcapng"
        app.screen.query_one("#path").value = str(saved)
        await pilot.click("#ok")
        await until(pilot, lambda: any(str(saved) in n.message for n in app._notifications), what="the save")
        assert "last 30 s" in str(pane.border_subtitle)  # the ring goes on
        await pilot.press("s")
        await until(pilot, lambda: app.lab.client is None, what="the stop")
        assert not app.lab.rings
    packets = read_pcapng(saved)[1]
    echoes = [p for p in packets if p.data[12:14] == b"\x08\x00" and p.data[23] == 1]
    assert len(echoes) >= 6 and {p.interface for p in echoes} == {"vm1", "vm2"}
    assert lab_namespaces(lab) == []


async def test_r_on_a_running_lab_shows_the_edits_and_applies_them(tmp_path, runtime):
    from qnet_tui.model.kinds import Kind
    from qnet_tui.ui.dialogs import ApplyChanges

    path, lab = copy_sample(tmp_path, "two-vlans.yaml")
    app = QnetApp(load_file(path))
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running", what="the lab to run")
        worker = app.lab.client.pid
        await pilot.press("r")  # nothing edited: nothing to apply
        await until(pilot, lambda: any("runs the topology as it is" in n.message for n in app._notifications))

        app.editor.add_node(Kind.GUEST_NIC, "vm5", {"mac": "52:54:00:00:02:05", "ipv4": "10.0.0.5/24"})
        app.editor.connect("hub2", "vm5")
        app.editor.set_attr("vm1", "ipv4", "10.0.0.11/24")
        app.editor.set_attr("hub2", "vlan", 7)
        app.refresh_title()
        assert "edited since: r applies the edits" in app.sub_title
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ApplyChanges), what="the changes to show")
        shown = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "+ guest_nic vm5" in shown and "+ link hub2 - vm5" in shown
        assert "~ vm1: ipv4 10.0.0.1/24 -> 10.0.0.11/24" in shown and "~ hub2: vlan 2 -> 7" in shown
        await pilot.press("enter")  # Apply, the button marked
        await until(pilot, lambda: any(n.title == "Applied" for n in app._notifications), what="the apply")
        assert app.lab.client.pid == worker  # the same lab, changed, not restarted
        assert "edited since" not in app.sub_title
        panes = app.query_one(TrafficView).panes
        await until(pilot, lambda: set(panes) == {"v1", "v7"}, what="VLAN 2's pane to become VLAN 7's")
        assert panes["v7"].border_title == "VLAN 7 (hub2, kernel)" and len(app.query("VlanPane")) == 2
        assert sorted(lab_namespaces(lab)) == sorted([f"qnet-{lab}"] + [f"qnet-{lab}.vm{i}" for i in (1, 2, 3, 4, 5)])
        lab_file = app.lab.client.file  # the worker's copy names the new node too
        result = await asyncio.to_thread(exec_in, lab_file, "vm5", "ping", "-c", "2", "-i", "0.2", "10.0.0.3")
        assert result.returncode == 0, result.stdout + result.stderr
        result = await asyncio.to_thread(exec_in, lab_file, "vm2", "ping", "-c", "2", "-i", "0.2", "10.0.0.11")
        assert result.returncode == 0, result.stdout + result.stderr
        await pilot.press("s")
        await until(pilot, lambda: app.lab.client is None, what="the stop")
    assert lab_namespaces(lab) == []


async def test_an_impairment_edited_in_the_inspector_reaches_the_running_lab(tmp_path, runtime):
    import re

    from qnet_tui.ui.inspector import ImpairInput

    def rtt_min(result: subprocess.CompletedProcess) -> float:
        assert result.returncode == 0, result.stdout + result.stderr
        m = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/", result.stdout)
        assert m, result.stdout
        return float(m[1])

    path, lab = copy_sample(tmp_path, "two-vlans.yaml")
    app = QnetApp(load_file(path))
    app.settle_s = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: app.lab.state == "running", what="the lab to run")
        ping = ("ping", "-c", "3", "-i", "0.2", "-W", "3", "10.0.0.2")
        assert rtt_min(await asyncio.to_thread(exec_in, path, "vm1", *ping)) < 30  # ARP caches filled too

        def drawn(way: tuple[str, str]) -> str:
            """What the canvas draws of a direction: the running lab's impairment."""
            return app.canvas.impairments.get(way, "none")

        app.canvas.select("vm2")
        await until(pilot, lambda: len(app.inspector.query(ImpairInput)) == 2, what="the impair fields")
        field = next(f for f in app.inspector.query(ImpairInput) if f.way == ("hub1", "vm2"))
        field.focus()
        field.value = "delay=100ms"
        await pilot.press("enter")
        await until(pilot, lambda: drawn(("hub1", "vm2")) == "delay=100ms", what="the reply")
        await until(pilot, lambda: app.canvas.lab_impair_complete, what="the statistics' impairments")
        assert drawn(("hub1", "vm2")) == "delay=100ms" and drawn(("vm2", "hub1")) == "none"
        assert any("hub1 → vm2: delay=100ms" in n.message for n in app._notifications)
        assert app.lab.state == "running" and "restart" not in app.sub_title
        assert rtt_min(await asyncio.to_thread(exec_in, path, "vm1", *ping)) >= 95  # one way, on the reply

        field.value = "none"
        await pilot.press("enter")
        await until(pilot, lambda: drawn(("hub1", "vm2")) == "none", what="the reset")
        assert rtt_min(await asyncio.to_thread(exec_in, path, "vm1", *ping)) < 30
        await pilot.press("escape")  # out of the field, back to the canvas's keys
        await pilot.press("s")
        await until(pilot, lambda: app.lab.client is None, what="the stop")
        assert lab_namespaces(lab) == []
