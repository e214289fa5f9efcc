"""The installed `qnet-tui`, driven in tmux as a person would: add a guest NIC,
connect it to the hub, save, quit; then read the file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from qnet_tui.model.yamlio import load_file

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
QNET = Path(sys.executable).with_name("qnet-tui")

pytestmark = pytest.mark.skipif(not shutil.which("tmux") or not QNET.exists(), reason="needs tmux and qnet-tui")


class Tmux:
    def __init__(self, command: str) -> None:
        self.name = f"qnet-e2e-{uuid.uuid4().hex[:8]}"
        # A server of its own: another tmux server running here would size the window by its own rules.
        self.tmux = ["tmux", "-L", self.name]
        # COLUMNS and LINES (set by pytest) would override the window's size.
        command = f"unset COLUMNS LINES; {command}"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "45", command], check=True)

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run([*self.tmux, "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def screen(self) -> str:
        return subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        ).stdout

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_add_connect_save_quit(tmp_path):
    lab = tmp_path / "lab.yaml"
    shutil.copy(SAMPLES / "seed-path.yaml", lab)
    tmux = Tmux(f"{QNET} {lab}; sleep 5")
    try:
        tmux.wait_for("hubs (VLANs)")
        tmux.keys("Right", "Right", "Right", "Right", "Down")  # eth0 -> br0 -> tap0 -> hub0 -> vm1, vm2
        tmux.wait_for("guest NIC vm2")
        tmux.keys("a")
        tmux.wait_for("Add a node")
        tmux.keys("Tab", "Enter")  # the id field, filled with vm3; enter adds
        tmux.wait_for("guest NIC vm3")
        tmux.keys("c")
        tmux.wait_for("connect vm3")
        tmux.keys("Left")
        tmux.wait_for("connect vm3 → hub0")
        tmux.keys("Enter")
        tmux.wait_for("links: tap0, vm1, vm2, vm3")  # the hub, now selected, lists the new link
        tmux.keys("C-s")
        tmux.wait_for("lab.yaml — lab seed")  # the unsaved-changes marker is gone
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while "hubs (VLANs)" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "hubs (VLANs)" not in tmux.screen()
    finally:
        tmux.kill()
    doc = load_file(lab)
    assert not [d for d in doc.diagnostics() if d.is_error]
    assert doc.topology.nodes["vm3"].attrs["mac"].startswith("52:54:00:")
    assert ("vm3", "hub0") in doc.topology.links
    text = lab.read_text()
    original = (SAMPLES / "seed-path.yaml").read_text()
    for line in original.splitlines():
        if line.lstrip().startswith("#"):
            assert line in text
    result = subprocess.run([str(QNET), "validate", str(lab)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"), reason="a lab needs root")
def test_run_ping_watch_stop_quit(tmp_path, monkeypatch):
    monkeypatch.setenv("QNET_RUNTIME_DIR", str(tmp_path / "run"))
    lab = tmp_path / "lab.yaml"
    name = f"e{uuid.uuid4().hex[:8]}"
    lab.write_text((SAMPLES / "seed-path.yaml").read_text().replace("name: seed", f"name: {name}"))
    tmux = Tmux(f"QNET_RUNTIME_DIR={tmp_path / 'run'} {QNET} {lab}; sleep 5")
    try:
        tmux.wait_for("hubs (VLANs)")
        tmux.keys("r")
        tmux.wait_for("[lab running]")
        tmux.wait_for("VLAN 0 (hub0)")
        tmux.keys("Right", "Right", "Right", "Right")  # eth0 -> br0 -> tap0 -> hub0 -> vm1
        tmux.wait_for("guest NIC vm1")
        tmux.keys("g")
        tmux.wait_for("Send traffic from vm1")
        tmux.keys("Enter")  # ping the other guest, offered as the target
        screen = tmux.wait_for("0% packet loss")
        deadline = time.monotonic() + 10
        icmp = 0
        while icmp < 6 and time.monotonic() < deadline:  # read the pane's counter off the screen
            found = re.search(r"icmp (\d+)", tmux.screen())
            icmp = int(found.group(1)) if found else 0
            time.sleep(0.2)
        assert icmp >= 6, screen
        tmux.keys("s")
        tmux.wait_for("[lab stopped]")
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while "hubs (VLANs)" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        tmux.kill()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"qnet-{name}" not in left
