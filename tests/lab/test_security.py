"""What a root tool must promise: the machine's own network is untouched,
hostile names never reach the kernel or a shell, only the owner may use a
lab's control socket, and hostile frames do not stop the forwarding."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qnet_tui import protocol
from qnet_tui.lab import netns

from .conftest import SAMPLES, lab_namespaces, network_state, wait_for

ROOT = Path(__file__).parents[2]


def one_machine(sample: Path) -> bool:
    """A sample this machine runs alone: not one across machines (tests/lab/test_machines.py runs those)."""
    return "\nhosts:" not in sample.read_text()


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml") if one_machine(p)))
def test_root_namespace_is_unchanged_by_every_sample(make_lab, sample):
    before = network_state()
    lab = make_lab(sample)
    assert lab_namespaces(lab.name)
    assert network_state() == before  # while it runs
    assert lab.stop() == 0
    assert network_state() == before  # and after


HOSTILE_IDS = ["../etc", "vm 1", "vm\\n1", "vm;reboot", "a" * 16, "lo", "$(id)", "vm/1"]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_hostile_names_never_reach_the_kernel(make_lab, bad):
    text = (
        "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
        f'  "{bad}": {{kind: guest_nic, mac: \'52:54:00:00:00:01\'}}\nlinks: [[hub0, "{bad}"]]\n'
    )
    lab = make_lab("", wait=False, text=text)
    assert lab.proc.wait(30) == 1
    assert any("nothing was started" in line for line in lab.errors), lab.errors
    # Not a namespace of this lab, nor one named with the hostile text (other
    # labs, of tests running at the same time, may come and go meanwhile).
    made = [n for n in netns.existing() if netns.belongs_to(n, lab.name) or bad in n]
    assert made == []


@pytest.mark.parametrize("bad", ["../x", "a b", "lab;x", "a" * 33, ".hidden", "x/../../etc"])
def test_hostile_lab_names_are_refused(tmp_path, runtime, bad):
    file = tmp_path / "lab.yaml"
    file.write_text(f'version: 1\nname: "{bad}"\nnodes:\n  hub0: {{kind: hub, vlan: 0}}\n')
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(file)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "lab name" in result.stderr
    assert not runtime.exists()  # not even a folder was made for it


def test_no_shell_anywhere():
    """User text never meets a shell: no shell=True, os.system or os.popen in the product."""
    for path in (ROOT / "qnet_tui").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"shell\s*=\s*True", r"os\.system\(", r"os\.popen\("):
            assert not re.search(pattern, text), f"{path}: {pattern}"


def test_control_socket_refuses_other_users(make_lab):
    lab = make_lab("direct-peer.yaml")
    path = protocol.control_path(lab.name)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    probe = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied'); sys.exit(0)\n"
        "s.settimeout(3)\nprint('closed' if s.recv(100) == b'' else 'served')\n"
    )

    def as_nobody() -> str:
        return subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    assert as_nobody() == "denied"  # the file system says no first
    # Give the stranger a way in (a world-writable link to the socket in /tmp):
    # SO_PEERCRED still turns it away.
    path.chmod(0o666)
    link = Path("/tmp") / f"qnet-test-{os.getpid()}.sock"
    os.link(path, link)
    try:
        path = link
        assert as_nobody() == "closed"
    finally:
        link.unlink()
        protocol.control_path(lab.name).chmod(0o600)
    path = protocol.control_path(lab.name)
    with socket.socket(socket.AF_UNIX) as owner:  # while its owner is served
        owner.connect(str(path))
        assert b'"type":"hello"' in owner.recv(4096)


def test_hostile_frames_do_not_stop_forwarding(make_lab):
    lab = make_lab("two-vlans.yaml")
    fuzz = (
        "import os, random, socket, sys\n"
        "random.seed(int(sys.argv[1]))\n"
        "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))\n"
        "for i in range(3000):\n"
        "    n = random.choice([1, 6, 13, 14, 15, 42, 60, 64, 1000, 1514, random.randint(1, 1514)])\n"
        "    frame = os.urandom(n)\n"
        "    if i % 3 == 0 and n >= 14:  # a well-formed header over random bytes\n"
        "        kinds = [b'\\x08\\x00', b'\\x86\\xdd', b'\\x08\\x06', b'\\x81\\x00']\n"
        "        frame = b'\\xff' * 6 + bytes.fromhex('525400000101') + random.choice(kinds) + frame[14:]\n"
        "    try:\n        s.send(frame)\n    except OSError:\n        pass\n"
        "print('done')\n"
    )
    result = lab.exec("vm1", sys.executable, "-c", fuzz, str(random.randrange(1 << 30)))
    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    # The worker has taken the flood (its counters say so) and is still there.
    wait_for(lambda: lab.vlan("1", after=time.time())["frames"] > 1000, 20, "the fuzzed frames to be counted")
    assert lab.proc.poll() is None  # alive
    ping = lab.exec("vm1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.0.2")
    assert ping.returncode == 0, ping.stdout  # and still forwarding
    vlan = wait_for(lambda: lab.vlan("1", after=time.time()), 10, "stats")
    assert vlan["frames"] > 1000
