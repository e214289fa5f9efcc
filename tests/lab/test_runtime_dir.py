"""The runtime folder: a full or read-only one is named in a clear refusal
and nothing is left half-written; a link in its place is refused; a stopped
lab leaves no folder behind; arguments that would spin are refused; and what
needs root says so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qnet_tui import protocol

from .conftest import SAMPLES, lab_namespaces, wait_for, watchdog_of

ROOT = Path(__file__).parents[2]


def _sample(tmp_path: Path, name: str, sample: str = "direct-peer.yaml") -> Path:
    file = tmp_path / f"{name}.yaml"
    text = (SAMPLES / sample).read_text()
    file.write_text("\n".join(f"name: {name}" if x.startswith("name:") else x for x in text.splitlines()) + "\n")
    return file


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("mount"), reason="needs util-linux")
@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("full", "cannot write the lab's state file {run}/{lab}/state.json: No space left on device"),
        ("read-only", "cannot make the runtime folder {run}: Read-only file system"),
    ],
)
def test_a_full_or_read_only_runtime_folder_is_named(tmp_path, how, expected):
    """The runtime folder on a tmpfs of its own, in a private mount namespace
    (nothing of the machine's is mounted over): full, or read-only."""
    lab = f"rt{os.getpid() % 10000}{how[0]}"
    file = _sample(tmp_path, lab)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run = mnt / "run"
    prepare = {
        "full": f"mount -t tmpfs -o size=64k tmpfs {mnt} && (dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null; true)",
        "read-only": f"mount -t tmpfs -o ro,size=64k tmpfs {mnt}",
    }[how]
    script = (
        f"{prepare} && QNET_RUNTIME_DIR={run} {sys.executable} -m qnet_tui run {file} --duration 5; "
        f"echo exit=$?; find {mnt} -name '*.tmp'"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert "exit=1" in result.stdout, result.stdout + result.stderr
    assert expected.format(run=run, lab=lab) in result.stderr, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert ".tmp" not in result.stdout  # no half-written state file
    assert lab_namespaces(lab) == []


def test_a_link_in_place_of_the_lab_folder_is_refused(tmp_path, runtime):
    lab = f"ln{os.getpid() % 10000}"
    file = _sample(tmp_path, lab)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    runtime.mkdir(mode=0o700)
    (runtime / lab).symlink_to(elsewhere)
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(file), "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert f"{runtime / lab} is a symbolic link, not a folder; the lab will not use it" in result.stderr
    assert os.listdir(elsewhere) == [] and elsewhere.stat().st_mode & 0o777 == 0o755  # untouched
    assert lab_namespaces(lab) == []


def test_a_stopped_lab_leaves_no_folder(make_lab):
    lab = make_lab("direct-peer.yaml")
    folder = protocol.lab_dir(lab.name)
    assert (folder / "lock").exists()
    assert lab.stop() == 0
    assert not folder.exists()


def test_the_watchdog_removes_the_folder_of_a_killed_lab(make_lab):
    lab = make_lab("direct-peer.yaml")
    lab.proc.kill()
    lab.proc.wait(10)
    wait_for(lambda: not protocol.lab_dir(lab.name).exists(), 15, "the watchdog to remove the lab's folder")
    assert lab_namespaces(lab.name) == []


def test_a_state_file_half_replaced_by_a_killed_run_is_removed_by_the_next(make_lab):
    """Killed between writing the new state file and renaming it over the old:
    the temporary file stays, and would keep the lab's folder forever."""
    lab = make_lab("direct-peer.yaml")
    os.kill(watchdog_of(lab.proc.pid), signal.SIGKILL)
    lab.proc.kill()
    lab.proc.wait(10)
    stale = protocol.lab_dir(lab.name) / ".state.json.k1ll3d.tmp"
    stale.write_text('{"pid": 1, "namespaces": []')  # cut short
    elsewhere = protocol.lab_dir(lab.name) / "notes.txt"  # not ours: stays, and so does the folder
    elsewhere.write_text("someone's\n")
    again = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(lab.file), "--duration", "0.3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert not stale.exists() and elsewhere.read_text() == "someone's\n"
    elsewhere.unlink()


def test_a_lab_runs_again_after_its_folder_went(make_lab):
    """Stop removes the lock; the next run makes a fresh one, and a second run
    beside it is still refused (the lock is the one on disk)."""
    first = make_lab("direct-peer.yaml")
    assert first.stop() == 0
    again = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "run", str(first.file), "--duration", "30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: protocol.control_path(first.name).exists(), 30, "the second run")
        third = subprocess.run(
            [sys.executable, "-m", "qnet_tui", "run", str(first.file)], capture_output=True, text=True, timeout=30
        )
        assert third.returncode == 1 and f"lab {first.name} is already running" in third.stderr
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    assert again.returncode == 0
    assert not protocol.lab_dir(first.name).exists()


@pytest.mark.parametrize("option", ["--interval", "--duration"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_seconds_that_would_spin_or_never_end_are_refused(tmp_path, runtime, option, value):
    file = _sample(tmp_path, "spin")
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "run", str(file), f"{option}={value}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"argument {option}: '{value}'" in result.stderr and "Traceback" not in result.stderr
    assert not runtime.exists()


def _as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command as user nobody. Python starts as root and drops its rights
    once the modules are loaded (its own files may be root's alone)."""
    env = {k: v for k, v in os.environ.items() if k != "QNET_RUNTIME_DIR"}
    script = (
        "import os, shlex, sys\n"
        "import qnet_tui.cli, qnet_tui.lab.exec, qnet_tui.model.qemu, qnet_tui.model.edit, qnet_tui.model.yamlio\n"
        "import qnet_tui.model.diagnostics, qnet_tui.protocol\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "sys.exit(qnet_tui.cli.main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def test_exec_and_qemu_args_say_they_need_root(make_lab, tmp_path):
    lab = make_lab("qemu-socket.yaml")
    shared = Path(os.environ.get("TMPDIR", "/tmp")) / f"qnet-nobody-{os.getpid()}"
    shared.mkdir(mode=0o755)
    try:
        file = shared / "lab.yaml"
        file.write_text(lab.file.read_text())
        file.chmod(0o644)
        exec_ = _as_nobody("exec", str(file), "vm1", "--", "true", cwd=ROOT)
        assert exec_.returncode == 1
        assert "qnet-tui exec: needs root: it enters the lab's network namespaces" in exec_.stderr
        args = _as_nobody("qemu-args", str(file), cwd=ROOT)
        assert args.returncode == 1 and args.stdout == ""
        assert "qnet-tui qemu-args: needs root: a lab's sockets are in /run/qnet-tui" in args.stderr
    finally:
        shutil.rmtree(shared)
    assert watchdog_of(lab.proc.pid)  # the lab ran on, untouched
    assert lab.stop() == 0
