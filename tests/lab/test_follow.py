"""Following a conversation in a real lab: the payload of a TCP connection
(on a hub the kernel forwards) and of UDP datagrams (on one the worker
forwards) comes to the client that asked, in order, both ways."""

from __future__ import annotations

import base64
import select
import signal
import subprocess
import sys
import time

from qnet_tui import protocol

from .conftest import wait_for
from .test_control import Client
from .test_kernelhub import TWO_HUBS

SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.8.1.2", 7000))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
got = b""
while not got.endswith(b"\\r\\n\\r\\n"):
    got += c.recv(4096)
c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n" + bytes(range(256)) * 200)
c.close()
"""
CLIENT = """
import socket
c = socket.socket()
c.bind(("10.8.1.1", 41000))
c.connect(("10.8.1.2", 7000))
c.sendall(b"GET / HTTP/1.0\\r\\n" + b"X: " + b"y" * 3000 + b"\\r\\n\\r\\n")
while c.recv(65536):
    pass
"""
UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.8.2.1", 5000))
for i in range(5):
    s.sendto(b"datagram %d;" % i, ("10.8.2.2", 5353))
"""


def followed(client: Client, hub: str, want: tuple[int, int], within: float = 20.0) -> tuple[bytes, bytes, list]:
    """Both ways' payload once each has at least `want` bytes; and the chunks' ways in order."""
    ways, order = [b"", b""], []
    deadline = time.monotonic() + within
    while (len(ways[0]) < want[0] or len(ways[1]) < want[1]) and time.monotonic() < deadline:
        msg = client.next("followed", within=within)
        assert msg["hub"] == hub
        for chunk in msg["chunks"]:
            ways[chunk["way"]] += base64.b64decode(chunk["data"])
            order.append(chunk["way"])
    return ways[0], ways[1], order


def test_a_tcp_connection_is_followed_both_ways_in_order(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    client = Client(lab.name)
    try:
        client.send(protocol.encode(protocol.Follow("hub1", "tcp", "10.8.1.1", 41000, "10.8.1.2", 7000)))
        assert client.next("followed") == {
            "type": "followed",
            "hub": "hub1",
            "chunks": [],
            "frames": 0,
            "full": [False, False],
        }
        server = lab.spawn("a2", sys.executable, "-c", SERVER)
        assert server.stdout.readline().strip() == "ready"
        done = lab.exec("a1", sys.executable, "-c", CLIENT)
        assert done.returncode == 0, done.stderr
        request = b"GET / HTTP/1.0\r\n" + b"X: " + b"y" * 3000 + b"\r\n\r\n"
        reply = b"HTTP/1.0 200 OK\r\n\r\n" + bytes(range(256)) * 200
        sent, back, order = followed(client, "hub1", (len(request), len(reply)))
        assert (sent, back) == (request, reply)  # whole, in order, nothing twice
        assert order[0] == 0  # the request came first
        server.wait(10)
    finally:
        client.close()


def test_udp_on_a_worker_hub_and_a_bad_request(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    client = Client(lab.name)
    try:
        client.send(
            b'{"type":"follow","hub":"hub2","proto":"icmp","a":"10.8.2.1","a_port":1,"b":"10.8.2.2","b_port":2}\n'
        )
        assert "give tcp or udp" in client.next("error")["message"]
        client.send(protocol.encode(protocol.Follow("hub2", "udp", "10.8.2.2", 5353, "10.8.2.1", 5000)))
        client.next("followed")
        assert lab.exec("b1", sys.executable, "-c", UDP).returncode == 0
        sent, back, _ = followed(client, "hub2", (0, len(b"datagram 0;") * 5))
        assert (sent, back) == (b"", b"".join(b"datagram %d;" % i for i in range(5)))  # b -> a: as the client named it
        stats = lab.latest(after=time.time())
        assert stats["vlans"]["2"]["forwarding"] == "worker"
        # Stopping takes the follower off the hub: nothing captures it any more.
        client.send(protocol.encode(protocol.Follow("hub2")))
        wait_for(lambda: any("follow of hub2 ended (its client went)" in line for line in lab.errors), 10, "the end")
        assert any("following udp 10.8.2.2:5353 <> 10.8.2.1:5000 on hub2" in line for line in lab.errors)
    finally:
        client.close()


def test_the_follow_command_prints_both_ways_and_raw_one(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    command = [sys.executable, "-m", "qnet_tui", "follow", str(lab.file)]
    bad = subprocess.run([*command, "a1", "tcp", "10.8.1.1", "10.8.1.2:7000"], capture_output=True, text=True)
    assert bad.returncode == 1 and "'10.8.1.1' is no ADDRESS:PORT" in bad.stderr
    text = subprocess.Popen(
        [*command, "a1", "tcp", "10.8.1.1:41000", "10.8.1.2:7000"],  # a node: its hub, hub1
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    raw = subprocess.Popen(
        [*command, "hub1", "tcp", "10.8.1.1:41000", "10.8.1.2:7000", "--raw", "b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    for proc in (text, raw):
        assert b"following tcp 10.8.1.1:41000 <> 10.8.1.2:7000" in proc.stderr.readline()
    server = lab.spawn("a2", sys.executable, "-c", SERVER)
    assert server.stdout.readline().strip() == "ready"
    assert lab.exec("a1", sys.executable, "-c", CLIENT).returncode == 0
    server.wait(10)
    reply = b"HTTP/1.0 200 OK\r\n\r\n" + bytes(range(256)) * 200
    out_raw = b""
    while len(out_raw) < len(reply):
        assert select.select([raw.stdout], [], [], 15)[0], len(out_raw)
        out_raw += raw.stdout.read1(1 << 16)
    assert out_raw == reply  # what b sent, byte for byte
    out_text = b""
    while b"==> a2 10.8.1.2:7000 (b)\nHTTP/1.0 200 OK" not in out_text:
        assert select.select([text.stdout], [], [], 15)[0], out_text[-200:]
        out_text += text.stdout.read1(1 << 16)
    assert out_text.startswith(b"==> a1 10.8.1.1:41000 (a)\nGET / HTTP/1.0\nX: yyy")
    for proc in (text, raw):
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)  # what is left in its pipes, and its end
        assert proc.returncode == 0


def test_the_follow_command_stops_on_sigint_even_if_started_ignoring_it(make_lab):
    """A shell's background job starts with SIGINT ignored; Ctrl-C's signal must still end it."""
    lab = make_lab("", text=TWO_HUBS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "follow", str(lab.file), "hub2", "udp", "10.8.2.1:1", "10.8.2.2:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert b"following udp" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
