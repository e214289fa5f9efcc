"""Wireshark live: `qnet-tui capture` streams pcapng of a running lab's hub,
one interface per port, read back by tshark; on a hub the worker forwards
and on one the kernel forwards; filters, rings, slow readers."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from qnet_tui import protocol
from tests.unit.test_capture import read_pcapng

from .test_forwarding import ping
from .test_kernelhub import TWO_HUBS
from .test_links import link

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (Debian: tshark)")
LOST = "qnet-tui: dropped (link-down) on hub{n} -> {nic}"


def capture(lab, *args: str, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "capture", str(lab.file), *args],
        stdout=kwargs.pop("stdout", subprocess.DEVNULL),
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=False,
        **kwargs,
    )
    first = proc.stderr.readline().decode()  # said once the worker has started the stream (or refused it)
    assert "Ctrl-C stops" in first, first + proc.stderr.read().decode()
    return proc


def tshark(source: str, *fields: str, stdin=None) -> list[list[str]]:
    out = subprocess.run(
        ["tshark", "-r", source, "-T", "fields", *(x for f in fields for x in ("-e", f))],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=stdin,
    )
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


@pytest.mark.parametrize("hub", ["hub1", "hub2"])  # the kernel forwards hub1, the worker hub2
def test_a_stream_has_each_port_an_interface_and_a_pulled_cables_drops(make_lab, tmp_path, hub):
    n = hub[-1]
    a, b = ("a1", "a2") if n == "1" else ("b1", "b2")
    lab = make_lab("", text=TWO_HUBS)
    assert ping(lab, a, f"10.8.{n}.2").returncode == 0  # ARP caches filled: what follows is ICMP
    out = tmp_path / "stream.pcapng"
    proc = capture(lab, hub, "-w", str(out))
    assert ping(lab, a, f"10.8.{n}.2").returncode == 0
    assert link(lab, hub, b, "down", "--direction", f"{hub}-{b}").returncode == 0
    assert ping(lab, a, f"10.8.{n}.2", count=2).returncode != 0
    if hub == "hub1":
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    else:  # the lab stops under it: the file is whole all the same, and the capture says why it ended
        assert lab.stop() == 0
        assert proc.wait(30) == 0
        assert "the lab stops; the stream ended" in proc.stderr.read().decode()
    rows = tshark(str(out), "frame.interface_name", "frame.packet_flags_direction", "icmp.type", "frame.comment")
    requests = [r for r in rows if r[2] == "8" and not r[3]]
    replies = [r for r in rows if r[2] == "0" and not r[3]]
    assert len(requests) >= 5 and {(r[0], r[1]) for r in requests} == {(a, "0x00000001")}  # in by a
    assert len(replies) >= 3 and {(r[0], r[1]) for r in replies} == {(b, "0x00000001")}  # in by b
    lost = [r for r in rows if r[3]]
    assert len(lost) >= 2 and {(r[0], r[1], r[3]) for r in lost} == {
        (b, "0x00000002", LOST.format(n=n, nic=b))  # on b's interface, on its way out
    }
    if hub == "hub1":
        assert lab.stop() == 0


def test_a_filtered_stream_into_tshark_through_a_pipe_and_the_reader_going(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    assert ping(lab, "b1", "10.8.2.2").returncode == 0
    proc = capture(lab, "b2", "--filter", "icmp", stdout=subprocess.PIPE)  # b2's hub: hub2
    reader = subprocess.Popen(
        ["tshark", "-l", "-r", "-", "-c", "6", "-T", "fields", "-e", "frame.interface_name", "-e", "icmp.type"],
        stdin=proc.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # tshark's alone now: its going is the capture's EPIPE
    assert lab.exec("b1", "ping", "-c", "3", "-i", "0.2", "10.8.2.2").returncode == 0
    lab.exec("b1", "arping", "-c", "2", "-w", "2", "10.8.2.2")  # ARP: filtered out
    rows = [line.split("\t") for line in reader.communicate(timeout=30)[0].splitlines()]
    assert rows == [["b1", "8"], ["b2", "0"]] * 3
    deadline = time.monotonic() + 30
    while proc.poll() is None:  # its next write finds no reader
        assert time.monotonic() < deadline, "the capture did not notice its reader went"
        ping(lab, "b1", "10.8.2.2", count=1)
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr.read()
    assert lab.stop() == 0


def test_a_bad_filter_is_refused_with_libpcaps_words(make_lab, tmp_path):
    lab = make_lab("", text=TWO_HUBS)
    run = [sys.executable, "-m", "qnet_tui", "capture", str(lab.file), "hub1", "--filter", "tcp port x"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("qnet-tui capture: bad filter 'tcp port x': "), done.stderr
    assert "port" in done.stderr.split(": ", 2)[2]  # libpcap's own reason
    nowhere = subprocess.run([*run[:5], "nope"], capture_output=True, text=True, timeout=60)
    assert nowhere.returncode == 1 and "has no node 'nope'" in nowhere.stderr
    # The worker checks too: a client that sends a bad filter is refused, and no stream starts.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(protocol.control_path(lab.name)))
        sock.sendall(protocol.encode(protocol.CaptureStream("hub1", "tcp port x")))
        reader = sock.makefile("rb")
        error = next(m for m in map(json.loads, reader) if m["type"] == "error")
        reader.close()
    assert error["message"].startswith("capture: bad filter 'tcp port x': ")
    assert lab.stop() == 0


def test_a_ring_keeps_only_its_window_and_sigusr1_writes_it(make_lab, tmp_path):
    lab = make_lab("", text=TWO_HUBS)
    out = tmp_path / "last.pcapng"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "capture", str(lab.file), "hub1", "--ring", "1.5", "-w", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "kill -USR1" in proc.stderr.readline()
    old, new = "0a0b0c0d", "0e0f1011"
    assert lab.exec("a1", "ping", "-c", "2", "-i", "0.2", "-p", old, "10.8.1.2").returncode == 0
    time.sleep(2.0)  # the old pings age past the ring's 1.5 s
    assert lab.exec("a1", "ping", "-c", "2", "-i", "0.2", "-p", new, "10.8.1.2").returncode == 0
    proc.send_signal(signal.SIGUSR1)
    said = proc.stderr.readline()
    assert said.startswith(f"qnet-tui capture: wrote the last 1.5 s of hub1 to {out}: "), said
    data = [p.data for p in read_pcapng(out)[1]]
    assert sum(bytes.fromhex(new * 4) in d for d in data) == 4  # two requests, two replies
    assert not any(bytes.fromhex(old * 4) in d for d in data)
    assert len(tshark(str(out), "frame.interface_name")) == len(data)  # tshark reads it whole
    proc.send_signal(signal.SIGUSR1)  # again: a new file beside the first
    assert str(tmp_path / "last-2.pcapng") in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert lab.stop() == 0


def test_a_reader_that_does_not_read_stalls_nothing_and_learns_what_it_missed(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    proc = capture(lab, "hub2", stdout=subprocess.PIPE)  # nobody reads it, for now
    sent = lab.frames("b1", "send", "eth0", "52:54:00:00:0b:01", "6000")  # ~4.5 MB: past every pipe's room
    assert sent.wait(60) == 0
    result = ping(lab, "b1", "10.8.2.2")
    assert result.returncode == 0 and " 0% packet loss" in result.stdout  # forwarding never waited
    stream = bytearray()
    deadline = time.monotonic() + 30
    while len(stream) < 300_000:  # the reader wakes: room in the pipes again
        assert time.monotonic() < deadline, len(stream)
        stream += proc.stdout.read1(1 << 20)
    ping(lab, "b1", "10.8.2.2", count=2)  # the next frames after the pipe drained say what was missed
    proc.send_signal(signal.SIGINT)
    stream += proc.stdout.read()
    assert proc.wait(30) == 0
    packets = read_pcapng(bytes(stream))[1]
    said = [c for p in packets for c in p.comments if "missed" in c]
    assert said and "qnet-tui: the reader missed " in said[0], said
    missed = int(said[-1].split("(")[1].split()[0])  # "(M in all)"
    # Every frame sent was written, missed by the reader, or never reached the hub (the tap's queue was full).
    queue = lab.vlan("2", after=time.time())["ports"]["b1"]["drop_reasons"]["guest-queue"]
    assert missed > 0 and len(packets) + missed + queue >= 6000, (len(packets), missed, queue)
    assert lab.stop() == 0


def test_enter_on_a_terminal_writes_the_ring(make_lab, tmp_path):
    lab = make_lab("", text=TWO_HUBS)
    out = tmp_path / "ring.pcapng"
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qnet_tui", "capture", str(lab.file), "hub1", "--ring", "30", "-w", str(out)],
            stdin=slave,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "Enter or kill -USR1" in proc.stderr.readline()
        assert lab.exec("a1", "ping", "-c", "2", "-i", "0.2", "10.8.1.2").returncode == 0
        os.write(master, b"\n")
        assert select.select([proc.stderr], [], [], 15)[0], "nothing said within 15 s of Enter"
        said = proc.stderr.readline()
        assert said.startswith(f"qnet-tui capture: wrote the last 30 s of hub1 to {out}: "), said
        assert len(tshark(str(out), "icmp.type")) >= 4  # the two pings, both ways
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        os.close(master)
        os.close(slave)
    assert lab.stop() == 0
