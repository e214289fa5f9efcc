"""The one atomic file write, as the topology's save and the lab's state file use it."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest

from qnet_tui import protocol
from qnet_tui.lab import runstate
from qnet_tui.model.atomic import WriteFailed, atomic_write


def test_a_new_file_gets_the_umask_mode_and_an_old_one_keeps_its_own(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "new", b"one")
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o640
    (tmp_path / "new").chmod(0o604)
    atomic_write(tmp_path / "new", b"two")
    assert (tmp_path / "new").read_bytes() == b"two"
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o604
    assert os.listdir(tmp_path) == ["new"]


def test_a_link_is_replaced_itself_not_what_it_points_to(tmp_path):
    # The state file of a root-owned lab folder is never written through a link.
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "state.json").symlink_to(target)
    atomic_write(tmp_path / "state.json", b"{}")
    assert not (tmp_path / "state.json").is_symlink()
    assert target.read_bytes() == b"keep"


def test_a_missing_folder_is_named_and_a_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    with pytest.raises(WriteFailed, match=f"No such file or directory \\(in folder {tmp_path}/nope\\)"):
        atomic_write(tmp_path / "nope" / "x", b"")

    def fail(*args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    (tmp_path / "x").write_bytes(b"old")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(WriteFailed, match="Input/output error"):
        atomic_write(tmp_path / "x", b"new")
    monkeypatch.undo()
    assert (tmp_path / "x").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x"]


def test_the_state_file_goes_through_it(tmp_path, monkeypatch):
    monkeypatch.setenv("QNET_RUNTIME_DIR", str(tmp_path))
    protocol.lab_dir("lab").mkdir()
    runstate.write_state("lab", {"pid": 1, "namespaces": ["qnet-lab-x"]})
    assert runstate.read_state("lab") == {"pid": 1, "namespaces": ["qnet-lab-x"]}
    assert os.listdir(protocol.lab_dir("lab")) == ["state.json"]
    calls = []
    monkeypatch.setattr(runstate, "atomic_write", lambda path, data: calls.append((path, data)))
    runstate.write_state("lab", {"pid": 2})
    assert calls == [(protocol.state_path("lab"), b'{"pid": 2}')]


def test_wait_for_lock_retries_until_the_holder_lets_go_or_it_gives_up(tmp_path):
    path = tmp_path / "lock"
    path.touch()
    holder = os.open(path, os.O_RDWR)
    waiter = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        asked = []
        assert not runstate.wait_for_lock(waiter, lambda: asked.append(1) or len(asked) >= 3)
        assert len(asked) == 3  # asked after each failed try, and stopped when told
        assert not runstate.wait_for_lock(waiter, lambda: False, wait_s=0)
        tries = []

        def give_up() -> bool:
            tries.append(1)
            if len(tries) == 2:
                fcntl.flock(holder, fcntl.LOCK_UN)
            return False

        assert runstate.wait_for_lock(waiter, give_up)
        assert len(tries) == 2  # let go during the second wait: the third try took it
    finally:
        os.close(holder)
        os.close(waiter)
