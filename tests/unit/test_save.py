"""Saving is atomic: a failed save leaves the old file as it was, with no
temporary file beside it."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from qnet_tui.model.yamlio import SaveError, load_file, load_text

GOOD = "version: 1\nname: x\nnodes:\n  h: {kind: hub, vlan: 1}\n"


def edited(path):
    doc = load_file(path)
    doc.topology.nodes["h"].attrs["vlan"] = 2
    return doc


def test_save_writes_and_keeps_mode(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(GOOD)
    path.chmod(0o640)
    edited(path).save()
    assert "vlan: 2" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["lab.yaml"]


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_failed_write_leaves_old_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "lab.yaml"
    path.write_text(GOOD)
    doc = edited(path)

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FailingFile(fd))
    else:
        monkeypatch.setattr(os, failing, fail)
    with pytest.raises(SaveError, match=r"No space left on device.*unchanged"):
        doc.save()
    monkeypatch.undo()
    assert path.read_text() == GOOD
    assert os.listdir(tmp_path) == ["lab.yaml"]


class _FailingFile:
    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        os.write(self.fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_unrepresentable_value_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(GOOD)
    doc = load_file(path)
    doc.topology.nodes["h"].attrs["vlan"] = object()
    with pytest.raises(Exception):  # noqa: B017 - whatever the dumper raises
        doc.save()
    assert path.read_text() == GOOD
    assert os.listdir(tmp_path) == ["lab.yaml"]


def test_missing_folder_is_a_clear_error(tmp_path):
    doc = load_text(GOOD)
    with pytest.raises(SaveError, match=r"cannot save .*No such file or directory"):
        doc.save(tmp_path / "nope" / "lab.yaml")


def test_save_through_symlink_replaces_target(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text(GOOD)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    edited(link).save()
    assert link.is_symlink() and "vlan: 2" in real.read_text()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs of our own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_loses_nothing(small_disk):
    path = small_disk / "lab.yaml"
    path.write_text(GOOD)
    (small_disk / "filler").write_bytes(b"x" * (64 * 1024 - 4096 * 2))
    doc = edited(path)
    doc.topology.description = "x" * 200_000  # more than the disk has left
    with pytest.raises(SaveError, match="No space left on device"):
        doc.save()
    assert path.read_text() == GOOD
    assert sorted(os.listdir(small_disk)) == ["filler", "lab.yaml"]


def test_read_only_folder_loses_nothing_and_says_why(small_disk):
    path = small_disk / "lab.yaml"
    path.write_text(GOOD)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    doc = edited(path)
    with pytest.raises(SaveError, match="Read-only file system"):
        doc.save()
    assert path.read_text() == GOOD
