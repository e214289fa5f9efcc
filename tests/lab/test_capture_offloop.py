"""Slow capture requests never stall the hubs: a ring's save is written, and
a filter compiled, in a thread while the worker goes on forwarding; the
reply comes when that is done. Here the worker's write and compile wait
for the test's word (a slow disk, a slow name server), so a worker that did
them on its loop could not forward the pings meanwhile."""

from __future__ import annotations

import json
import select
import signal
import socket
import time

from qnet_tui import protocol
from tests.unit.test_capture import read_pcapng

from .conftest import wait_for
from .test_forwarding import ping
from .test_kernelhub import TWO_HUBS  # the worker forwards hub2 (b1, b2)

GATED = """
import itertools, os, time
from qnet_tui.lab import worker

def gated(real, gate):
    calls = itertools.count(1)
    def wait_then(*args):
        word = f"{{gate}}-{{next(calls)}}"
        deadline = time.monotonic() + 20
        while not os.path.exists(word) and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(*args)
    return wait_then

worker.write_new = gated(worker.write_new, {write!r})
worker.compile_filter = gated(worker.compile_filter, {compile!r})
"""
FILE_SIZE_LIMIT = """
import resource
resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))
"""


class Asker:
    """A control client that can tell what it heard so far without waiting."""

    def __init__(self, lab: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(protocol.control_path(lab)))
        self.lines = protocol.LineBuffer()
        self.heard: list[dict] = []

    def send(self, message: protocol.ClientMessage) -> None:
        self.sock.sendall(protocol.encode(message))

    def _read(self, timeout: float) -> bool:
        if not select.select([self.sock], [], [], timeout)[0]:
            return False
        data = self.sock.recv(1 << 16)
        assert data, "the worker closed the connection"
        self.heard += (json.loads(line) for line in self.lines.feed(data))
        return True

    def kinds_so_far(self) -> set[str]:
        while self._read(0):
            pass
        return {m["type"] for m in self.heard}

    def next(self, kind: str, within: float = 15.0) -> dict:
        deadline = time.monotonic() + within
        while True:
            for msg in self.heard:
                if msg["type"] == kind:
                    self.heard.remove(msg)
                    return msg
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} within {within} s; heard {sorted(self.kinds_so_far())}"
            self._read(left)

    def close(self) -> None:
        self.sock.close()


def gated_lab(make_lab, tmp_path):
    write, compile = tmp_path / "write", tmp_path / "compile"
    return make_lab("", text=TWO_HUBS, prelude=GATED.format(write=str(write), compile=str(compile)))


def is_icmp(frame: bytes) -> bool:
    return frame[12:14] == b"\x08\x00" and frame[23] == 1


def test_a_filter_compiles_and_a_ring_is_written_while_the_hub_forwards(make_lab, tmp_path):
    lab = gated_lab(make_lab, tmp_path)
    assert ping(lab, "b1", "10.8.2.2").returncode == 0  # ARP caches filled: what follows is ICMP
    client = Asker(lab.name)
    client.send(protocol.CaptureStream("hub2", "icmp", 30.0))
    assert ping(lab, "b1", "10.8.2.2").returncode == 0  # while the filter compiles
    assert not {"capturing", "error"} & client.kinds_so_far()
    (tmp_path / "compile-1").touch()
    assert client.next("capturing")["ring"] == 30

    assert ping(lab, "b1", "10.8.2.2").returncode == 0  # three requests, three replies kept
    out = tmp_path / "last.pcapng"
    client.send(protocol.CaptureSave("hub2", str(out)))
    wait_for(out.exists, what="the file, made when asked")
    assert ping(lab, "b1", "10.8.2.2").returncode == 0  # while it is written
    assert not {"capture_saved", "error"} & client.kinds_so_far()
    assert out.stat().st_size == 0
    (tmp_path / "write-1").touch()
    saved = client.next("capture_saved")
    packets = read_pcapng(out)[1]  # whole: every block's framing checked
    assert saved["frames"] == len(packets) == 6 and all(is_icmp(p.data) for p in packets)
    assert saved["bytes"] == out.stat().st_size and saved["path"] == str(out)

    # A refusal still comes at once: the file exists.
    client.send(protocol.CaptureSave("hub2", str(out)))
    assert client.next("error")["message"] == f"capture_save: cannot write {out}: File exists"
    client.close()
    assert lab.stop() == 0
    assert f"qnet-tui: info: wrote the last 30 s of hub2 to {out}: 6 frames" in lab.errors


def test_a_lab_that_stops_waits_for_a_save_and_still_replies(make_lab, tmp_path):
    lab = gated_lab(make_lab, tmp_path)
    client = Asker(lab.name)
    client.send(protocol.CaptureStream("hub2", None, 30.0))  # no filter: answered at once
    client.next("capturing")
    assert ping(lab, "b1", "10.8.2.2").returncode == 0
    out = tmp_path / "last.pcapng"
    client.send(protocol.CaptureSave("hub2", str(out)))
    wait_for(out.exists, what="the file, made when asked")
    lab.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any(f"waiting for writing {out} to finish" in line for line in lab.errors), what="the wait")
    assert lab.proc.poll() is None
    (tmp_path / "write-1").touch()
    saved = client.next("capture_saved")  # before the worker's going closes the connection
    assert lab.proc.wait(30) == 0
    packets = read_pcapng(out)[1]
    assert saved["frames"] == len(packets) >= 6 and saved["bytes"] == out.stat().st_size
    client.close()


def test_a_write_the_disk_refuses_is_refused_when_it_fails_and_leaves_no_file(make_lab, tmp_path):
    lab = make_lab("", text=TWO_HUBS, prelude=FILE_SIZE_LIMIT)  # files of 128 KiB at most
    client = Asker(lab.name)
    client.send(protocol.CaptureStream("hub2", None, 30.0))
    client.next("capturing")
    # ~1.5 MB sent, ten times what the file may hold: enough even if a loaded machine loses some
    assert lab.frames("b1", "send", "eth0", "52:54:00:00:0b:01", "2000").wait(60) == 0
    out = tmp_path / "big.pcapng"
    client.send(protocol.CaptureSave("hub2", str(out)))
    assert client.next("error")["message"] == f"capture_save: cannot write {out}: File too large"
    assert not out.exists()  # what was written is removed
    client.close()
    assert lab.stop() == 0
    assert f"qnet-tui: error: capture_save: cannot write {out}: File too large" in lab.errors


def test_the_latest_capture_of_a_hub_to_a_file_wins_over_one_still_compiling(make_lab, tmp_path):
    lab = gated_lab(make_lab, tmp_path)
    client = Asker(lab.name)
    first, second = tmp_path / "first.pcapng", tmp_path / "second.pcapng"
    client.send(protocol.Capture("hub2", str(first), "icmp"))
    client.send(protocol.Capture("hub2", str(second)))  # no filter: at once
    wait_for(second.exists, what="the second capture")
    (tmp_path / "compile-1").touch()
    replaced = f"qnet-tui: info: capture of hub2 to {first}: replaced by a later one while compiling"
    wait_for(lambda: replaced in lab.errors, what="the first, dropped")
    assert not first.exists()
    assert lab.vlan("2", after=time.time())["capture"]["path"] == str(second)
    assert "error" not in client.kinds_so_far()
    client.close()
    assert lab.stop() == 0
