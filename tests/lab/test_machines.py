"""A lab across two machines: two network namespaces stand for them, joined by
a veth underlay, and a real OpenSSH server runs in the second. The controller
(`qnet-tui run FILE`, started in the first) starts the second's share over
ssh, stitches the hub between them over VXLAN, merges their statistics, and
stops both; killed, it leaves the second to stop itself when its lease runs out."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qnet_tui import protocol
from qnet_tui.lab import netns
from tests.lab.conftest import lab_namespaces, underlay, wait_for

ROOT = Path(__file__).parents[2]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
if not os.path.exists(SSHD) or not shutil.which("ssh"):
    pytest.skip("needs OpenSSH (Debian's openssh-server and openssh-client)", allow_module_level=True)

A_ADDR, B_ADDR = "10.77.0.1", "10.77.0.2"
SSH_PORT = 2222


class Machines:
    def __init__(self, a: str, b: str, folder: Path) -> None:
        self.a, self.b, self.folder = a, b, folder
        self.ssh_command = f"ssh -F {folder / 'ssh_config'}"
        self.command = f"env PYTHONPATH={ROOT} {sys.executable} -m qnet_tui"

    def enter_a(self) -> None:
        """For a process that runs on machine a: its ssh reaches b over the underlay."""
        netns.enter(self.a)


def _keys(folder: Path) -> None:
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    (folder / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress {B_ADDR}\nHostKey {folder / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "AllowStreamLocalForwarding yes\nPrintMotd no\nLogLevel ERROR\n"
    )
    (folder / "ssh_config").write_text(
        f"Host *\n  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n  Port {SSH_PORT}\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    folder = tmp_path_factory.mktemp("machines")
    a, b = f"qm{uuid.uuid4().hex[:6]}a", f"qm{uuid.uuid4().hex[:6]}b"
    netns.create(a)
    netns.create(b)
    sshd = None
    try:
        underlay(a, b, A_ADDR, B_ADDR)
        _keys(folder)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        sshd = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
            stderr=subprocess.PIPE,
            preexec_fn=lambda: netns.enter(b),
        )
        machines = Machines(a, b, folder)
        probe = [*machines.ssh_command.split(), f"root@{B_ADDR}", "true"]
        wait_for(
            lambda: (
                sshd.poll() is not None
                or subprocess.run(probe, preexec_fn=lambda: netns.enter(a), capture_output=True).returncode == 0
            ),
            15,
            "sshd to take logins",
        )
        assert sshd.poll() is None, sshd.stderr.read()
        yield machines
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(10)
        netns.remove(b)
        netns.remove(a)


def topology(m: Machines, **extra: str) -> str:
    """vm1 on the controller's machine (a), vm2 on b, one hub between them; vm3 on b alone in VLAN 20."""
    host = "\n".join(f"    {k}: {v}" for k, v in extra.items())
    return f"""version: 1
name: x
hosts:
  b:
    ssh: root@{B_ADDR}
    command: {m.command}
{host}
nodes:
  hub10: {{kind: hub, vlan: 10}}
  hub20: {{kind: hub, vlan: 20}}
  vm1: {{kind: guest_nic, mac: "52:54:00:77:00:01", ipv4: 10.0.10.1/24}}
  vm2: {{kind: guest_nic, mac: "52:54:00:77:00:02", ipv4: 10.0.10.2/24, host: b}}
  vm3: {{kind: guest_nic, mac: "52:54:00:77:00:03", ipv4: 10.0.20.3/24, host: b}}
links:
  - [vm1, hub10]
  - [vm2, hub10]
  - [vm3, hub20]
"""


@pytest.fixture
def ssh_env(machines: Machines, monkeypatch: pytest.MonkeyPatch) -> Machines:
    monkeypatch.setenv("QNET_SSH_COMMAND", machines.ssh_command)
    return machines


def _in(ns: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    enter = lambda: netns.enter(ns)  # noqa: E731
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, preexec_fn=enter)


def _share_gone(name: str) -> bool:
    return not lab_namespaces(f"{name}@b") and not lab_namespaces(name)


def test_a_guest_pings_a_guest_on_another_machine_through_a_stitched_hub(make_lab, ssh_env: Machines) -> None:
    lab = make_lab("", text=topology(ssh_env), inside=ssh_env.a)
    # vm2 runs on b, in the share's namespaces: lab x@b.
    assert lab_namespaces(f"{lab.name}@b"), "\n".join(lab.errors)
    ping = lab.exec("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.10.2")
    assert ping.returncode == 0, ping.stdout + ping.stderr + "\n".join(lab.errors) + json.dumps(lab.stats[-1])
    seen = time.time()

    def both() -> dict | None:
        vlan = lab.vlan("10", seen)
        return vlan if vlan["ports"].get("vm2", {}).get("rx_frames", 0) >= 3 else None

    vlan = wait_for(both, 10, "VLAN 10 with both machines' ports")
    # One pane for the VLAN: both machines' ports, each machine's remote port, frames counted once.
    assert {"vm1", "vm2", "vxlan:b", "vxlan:controller"} <= set(vlan["ports"])
    ports = vlan["ports"]
    assert vlan["frames"] == ports["vm1"]["rx_frames"] + ports["vm2"]["rx_frames"]
    assert ports["vxlan:b"]["rx_frames"] == ports["vm2"]["rx_frames"]
    assert lab.latest(seen)["machines"]["b"]["state"] == "running"
    # exec of a node on b runs there, over ssh, in b's share: vm2 pings vm1 back.
    there = lab.exec("vm2", "ping", "-c", "1", "-W", "2", "10.0.10.1", preexec_fn=ssh_env.enter_a)
    assert there.returncode == 0 and "1 received" in there.stdout, there.stdout + there.stderr
    assert "20" in lab.latest(seen)["vlans"]  # b's own VLAN shows too
    apply = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "apply", str(lab.file)], capture_output=True, text=True, timeout=30
    )
    assert apply.returncode == 1 and "a lab across machines takes no changes while it runs yet" in apply.stderr
    assert lab.stop(signal.SIGINT) == 0
    wait_for(lambda: _share_gone(lab.name), 30, "both machines clean")
    assert any("starting host b's share over ssh" in line for line in lab.errors), "\n".join(lab.errors)


def test_tcp_crosses_the_stitch_in_super_frames(make_lab, ssh_env: Machines) -> None:
    """The guests' TCP goes between the workers as 64 KiB super-frames, in
    chunks, not as the wire frames they stand for (lab/vxlan.py)."""
    lab = make_lab("", text=topology(ssh_env), inside=ssh_env.a)
    server = lab.spawn("vm1", "iperf3", "-s", "-1")
    try:
        wait_for(lambda: ":5201" in lab.exec("vm1", "ss", "-ltn").stdout, 10, "iperf3 to listen")
        # From b (over ssh) to this machine; an MSS that keeps each wire frame within
        # the 1500-byte underlay's 1464, as a guest MTU of 1450 would.
        client = lab.exec("vm2", "iperf3", "-c", "10.0.10.1", "-t", "2", "-M", "1400", "-J", preexec_fn=ssh_env.enter_a)
        assert client.returncode == 0, client.stdout[-2000:] + client.stderr
        received = json.loads(client.stdout)["end"]["sum_received"]["bytes"]
        assert received > 10_000_000, received
    finally:
        server.kill()
        server.wait(10)
    seen = time.time()

    def counted() -> dict | None:
        """A line with both machines' counts of the whole run (b's come a tick later)."""
        vlan = lab.vlan("10", seen)
        ports = vlan["ports"]
        there, here = ports.get("vxlan:controller", {}), ports.get("vxlan:b", {})
        return vlan if there.get("tx_superframes") and ports["vm2"]["rx_frames"] >= here["rx_frames"] else None

    vlan = wait_for(counted, 10, "both machines' remote ports")
    ports = vlan["ports"]
    here, there = ports["vxlan:b"], ports["vxlan:controller"]
    # b's worker sent super-frames and this one put them together: far fewer than the wire frames.
    assert here["rx_superframes"] > 0 and there["tx_superframes"] > 0
    assert here["rx_frames"] > 5 * here["rx_superframes"], (here, there)
    assert here["drop_reasons"]["lost"] == 0 and there["drop_reasons"]["mtu"] == 0, (here, there)
    # Each wire frame counted once, on the machine it entered by.
    assert vlan["frames"] == ports["vm1"]["rx_frames"] + ports["vm2"]["rx_frames"]
    assert lab.stop(signal.SIGINT) == 0


def test_a_killed_controller_leaves_both_machines_clean_after_the_lease(make_lab, ssh_env: Machines) -> None:
    lab = make_lab("", "--lease", "3", text=topology(ssh_env), inside=ssh_env.a)
    assert lab_namespaces(f"{lab.name}@b")
    lab.proc.kill()
    # This machine's watchdog cleans its share at once; b's share stops when its lease runs out.
    wait_for(lambda: not lab_namespaces(lab.name), 15, "the controller's share to be removed")
    wait_for(lambda: not lab_namespaces(f"{lab.name}@b"), 20, "b's share to stop itself")
    pattern = f"--host b .*--origin .*{lab.name}"
    wait_for(lambda: _in(ssh_env.b, "pgrep", "-f", "--", pattern).returncode == 1, 10, "b's share to exit")


def test_an_unreachable_machine_fails_the_start_and_leaves_nothing(make_lab, ssh_env: Machines) -> None:
    text = topology(ssh_env).replace(f"ssh: root@{B_ADDR}", "ssh: ssh://root@10.77.0.2:1")
    lab = make_lab("", text=text, inside=ssh_env.a, wait=False)
    assert lab.proc.wait(30) == 1
    wait_for(lambda: any("host b" in line for line in lab.errors), 5, "the error")
    said = "\n".join(lab.errors)
    assert "host b: the share ended before it ran" in said and "Connection refused" in said, said
    assert "Traceback" not in said
    assert _share_gone(lab.name)


def test_a_share_without_ssh_is_started_by_hand_with_the_controllers_address(
    make_lab, machines: Machines, tmp_path: Path
) -> None:
    text = topology(machines).replace(f"    ssh: root@{B_ADDR}\n", f"    address: {B_ADDR}\n")
    lab = make_lab("", text=text, inside=machines.a)
    assert any("host b has no ssh" in line for line in lab.errors)
    share = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--host", "b", "--controller", A_ADDR],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: netns.enter(machines.b),
    )
    try:
        wait_for(lambda: lab_namespaces(f"{lab.name}@b"), 20, "b's share")
        ping = wait_for(
            lambda: (p := lab.exec("vm1", "ping", "-c", "1", "-W", "1", "10.0.10.2")).returncode == 0 and p,
            20,
            "vm2 to answer",
        )
        assert "1 received" in ping.stdout
    finally:
        share.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            share.wait(30)
    assert share.returncode == 0, share.stderr.read()
    assert not lab_namespaces(f"{lab.name}@b")


def test_a_share_that_dies_is_said_and_the_rest_of_the_lab_runs_on(make_lab, ssh_env: Machines) -> None:
    lab = make_lab("", "--lease", "3", text=topology(ssh_env), inside=ssh_env.a)
    share = json.loads(protocol.state_path(f"{lab.name}@b").read_text())  # b's worker, as its state file says
    os.kill(share["pid"], signal.SIGKILL)
    # b's watchdog removes what its share made; the controller says so and keeps its own part.
    wait_for(lambda: not lab_namespaces(f"{lab.name}@b"), 15, "b's watchdog to clean up")
    wait_for(lambda: any("host b: its share is gone" in line for line in lab.errors), 10, "the controller to say so")
    seen = time.time()
    assert lab.latest(seen)["machines"]["b"] == {"state": "gone", "address": B_ADDR, "reason": "its connection ended"}
    assert "vm1" in lab.latest(seen)["vlans"]["10"]["ports"] and lab.proc.poll() is None
    assert lab.stop(signal.SIGINT) == 0


def test_a_capture_of_a_hub_on_another_machine_comes_over_ssh(make_lab, ssh_env: Machines, tmp_path: Path) -> None:
    lab = make_lab("", text=topology(ssh_env), inside=ssh_env.a)
    out = tmp_path / "hub20.pcapng"
    capture = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "capture", str(lab.file), "vm3", "-w", str(out)],
        stdin=subprocess.DEVNULL,  # as from a script: the capture there must not take that for its end
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ssh_env.enter_a,
    )
    try:
        assert "hub20 (ports vm3)" in capture.stderr.readline()  # said by the capture on b, through ssh
        # ARP for nobody: frames on hub20 (exec on b, over ssh as well)
        lab.exec("vm3", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.20.99", preexec_fn=ssh_env.enter_a)
    finally:
        capture.send_signal(signal.SIGINT)  # this machine's ssh goes; the capture there sees it and ends
        capture.wait(15)
    read = subprocess.run(["tshark", "-r", str(out), "-Y", "arp"], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0 and "Who has 10.0.20.99" in read.stdout, read.stdout + read.stderr
    pattern = f"capture --host b .*{lab.name}@b"
    wait_for(lambda: _in(ssh_env.b, "pgrep", "-f", "--", pattern).returncode == 1, 10, "the capture on b to end")
