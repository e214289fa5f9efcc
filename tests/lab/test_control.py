"""The control socket takes anything a client sends: a malformed or refused
message gets an error reply and the lab goes on; too many clients are told so;
a fault of the worker itself ends the lab as `failed`, with the reason."""

from __future__ import annotations

import json
import os
import random
import resource
import socket
import subprocess
import sys
import time

from qnet_tui import protocol
from qnet_tui.lab.control import MAX_CLIENTS

from .conftest import SAMPLES, lab_namespaces, wait_for

# 20 s in CI; QNET_FUZZ_S=600 for a long hunt.
FUZZ_S = float(os.environ.get("QNET_FUZZ_S", "20"))


class Client:
    def __init__(self, lab_name: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(protocol.control_path(lab_name)))
        self.reader = self.sock.makefile("rb")

    def next(self, kind: str, within: float = 15.0) -> dict:
        """The next message of this type (stats and samples stream in between)."""
        deadline = time.monotonic() + within
        for line in self.reader:
            msg = json.loads(line)
            if msg["type"] == kind:
                return msg
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} message within {within} s")
        raise AssertionError(f"the worker closed the connection before a {kind} message")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def hung_up(self) -> bool:
        """The worker closed this connection (a reset when it left our bytes unread)."""
        try:
            return self.reader.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


MALFORMED = [
    (b'{"type": []}\n', "unknown message type list"),
    (b'{"type": {"a": 1}}\n', "unknown message type dict"),
    (b'{"type": "reboot"}\n', 'unknown message type "reboot"'),
    (b"[1, 2]\n", "a message is a JSON object, not list"),
    (b"\xff\xfe{}\n", "not a JSON message"),
    (b"not json\n", "not a JSON message"),
    (b"[" * 50000 + b"\n", "nested too deeply"),
    (b'{"type": "capture", "hub": "vm1-tap0", "path": "/tmp/a\\u0000b.pcap"}\n', "without NUL bytes"),
    (b'{"type": "capture", "hub": "vm1-tap0", "path": "relative.pcap"}\n', "absolute path"),
    (b'{"type": "capture", "hub": ["x"], "path": null}\n', "capture.hub is a list, not a string"),
    (b'{"type": "capture", "path": null}\n', "capture has no 'hub'"),
    (b'{"type": "capture", "hub": "vm1-tap0", "path": 7}\n', "capture.path is an integer, not a string"),
    (b'{"type": "capture", "hub": "nope", "path": null}\n', 'capture: no hub "nope"'),
]


def test_malformed_messages_get_an_error_reply_and_the_lab_goes_on(make_lab, tmp_path):
    lab = make_lab("direct-peer.yaml")
    client = Client(lab.name)
    assert client.next("state")["state"] == "running"
    for raw, expected in MALFORMED:
        client.send(raw)
        reply = client.next("error")
        assert expected in reply["message"], (raw[:60], reply)
    # The same connection still works: a real capture starts and stops.
    pcap = tmp_path / "peer.pcap"
    client.send(protocol.encode(protocol.Capture("vm1-tap0", str(pcap))))
    wait_for(pcap.exists, 10, "the capture file")
    client.send(protocol.encode(protocol.Capture("vm1-tap0", None)))
    client.close()
    assert lab.proc.poll() is None
    assert lab.stop() == 0
    assert not any("internal error" in line for line in lab.errors), lab.errors


def test_an_over_long_line_is_refused_and_ends_only_that_client(make_lab):
    lab = make_lab("direct-peer.yaml")
    client = Client(lab.name)
    client.send(b"[" * (protocol.MAX_CLIENT_LINE + 1000))  # no newline in sight: the worker stops reading it
    reply = client.next("error")
    assert f"longer than {protocol.MAX_CLIENT_LINE} bytes" in reply["message"]
    assert client.hung_up()  # and hangs up on that client
    client.close()
    other = Client(lab.name)  # while the lab serves everyone else
    assert other.next("state")["state"] == "running"
    other.close()
    assert lab.stop() == 0


def test_too_many_clients_are_told_so(make_lab):
    lab = make_lab("direct-peer.yaml")
    clients = []
    for _ in range(MAX_CLIENTS):  # one at a time: the listen backlog is short
        clients.append(Client(lab.name))
        assert clients[-1].next("hello")["lab"] == lab.name
    extra = Client(lab.name)
    assert "too many control clients" in extra.next("error")["message"]
    assert extra.hung_up()
    extra.close()
    clients.pop().close()
    again = wait_for(lambda: _hello_or_none(lab.name), 10, "a free place for a client")
    assert again["lab"] == lab.name
    for c in clients:
        c.close()
    assert lab.stop() == 0


def _hello_or_none(name: str) -> dict | None:
    c = Client(name)
    try:
        first = json.loads(c.reader.readline())
        return first if first["type"] == "hello" else None
    finally:
        c.close()


def test_running_out_of_file_descriptors_refuses_clients_politely(tmp_path, runtime):
    """Under a low fd limit, accept() fails with EMFILE: the worker turns the
    client away with a reason instead of dying (or spinning on the listener)."""
    name = f"t{os.getpid() % 100000}fd"
    file = tmp_path / "fd.yaml"
    file.write_text((SAMPLES / "direct-peer.yaml").read_text().replace("name: direct", f"name: {name}"))
    limit = 48

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.Popen(
        [sys.executable, "-m", "qnet_tui", "run", str(file), "--json", "--interval", "0.5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=low_limit,
    )
    try:
        wait_for(lambda: protocol.control_path(name).exists(), 30, "the control socket")
        clients, refused = [], []
        for _ in range(limit):
            c = Client(name)
            first = json.loads(c.reader.readline())
            (clients if first["type"] == "hello" else refused).append((c, first))
        assert refused, "the fd limit was never reached"
        assert all("no file descriptors left" in msg["message"] for _, msg in refused)
        assert proc.poll() is None
        for c, _ in clients + refused:
            c.close()
        assert wait_for(lambda: _hello_or_none(name), 10, "a client to be served again")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert lab_namespaces(name) == []


def test_a_fault_of_the_worker_ends_the_lab_as_failed(tmp_path, runtime):
    """An error of the worker's own code (here: its statistics) is a failure
    with the reason, exit 70, and the lab is still taken down whole."""
    name = f"t{os.getpid() % 100000}ie"
    file = tmp_path / "ie.yaml"
    file.write_text((SAMPLES / "seed-path.yaml").read_text().replace("name: seed", f"name: {name}"))
    boom = (
        "import sys\n"
        "from qnet_tui.lab import stats\n"
        "real = stats.Stats.snapshot\n"
        "calls = []\n"
        "def snapshot(self):\n"
        "    calls.append(1)\n"
        "    if len(calls) > 5:\n"
        "        raise RuntimeError('statistics broke')\n"
        "    return real(self)\n"
        "stats.Stats.snapshot = snapshot\n"
        "from qnet_tui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", boom, "run", str(file), "--interval", "0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: protocol.control_path(name).exists() or proc.poll() is not None, 30, "the control socket")
    client = Client(name)
    states = []
    while not states or states[-1]["state"] not in ("stopped", "failed"):
        states.append(client.next("state"))
    client.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 70, err
    assert states[-1] == {
        "type": "state",
        "state": "failed",
        "reason": "internal error: RuntimeError: statistics broke",
    }
    assert "internal error: RuntimeError: statistics broke" in err and "Traceback" in err
    assert lab_namespaces(name) == []
    assert not protocol.lab_dir(name).exists()


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 4 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False, 0, -1, 2**64, 1e308, -0.0])
    if choice == 2:
        return "".join(rng.choice("ab/\\\0\n\u00e9\U0001f600 ") for _ in range(rng.randrange(12)))
    if choice == 3:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if choice == 4:
        return rng.choice(["capture", "stop", "hello", "", "state"])
    if choice in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["type", "hub", "path", "x", ""]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _fuzz_line(rng: random.Random, hubs: list[str], folder: str) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # raw bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64))).replace(b"\n", b"") + b"\n"
    if kind == 1:  # a plausible capture, at a path of the test's own, or to stop one
        path = rng.choice([None, f"{folder}/c{rng.randrange(1 << 30)}.pcap", _random_json(rng)])
        return json.dumps({"type": "capture", "hub": rng.choice([*hubs, _random_json(rng)]), "path": path}).encode()
    msg = _random_json(rng)
    if isinstance(msg, dict) and msg.get("type") == "stop":
        msg["type"] = "stop?"  # the one message that must not be sent here
    if isinstance(msg, dict) and msg.get("type") == "capture":
        msg["path"] = None if rng.random() < 0.5 else f"{folder}/m{rng.randrange(1 << 30)}.pcap"
    return json.dumps(msg).encode() + b"\n"


def test_fuzzing_the_control_socket_never_stops_the_lab(make_lab, tmp_path):
    lab = make_lab("two-vlans.yaml")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    hubs = ["hub1", "hub2"]
    folder = str(tmp_path / "pcaps")
    os.mkdir(folder)
    clients = [Client(lab.name) for _ in range(4)]
    sent = errors = 0
    deadline = time.monotonic() + FUZZ_S
    while time.monotonic() < deadline:
        batch = b"".join(_fuzz_line(rng, hubs, folder) for _ in range(50))
        c = rng.choice(clients)
        c.send(batch)
        sent += 50
        c.sock.setblocking(False)
        try:  # keep the connection drained, counting the error replies
            while data := c.sock.recv(1 << 20):
                errors += data.count(b'"type":"error"')
        except BlockingIOError:
            pass
        finally:
            c.sock.settimeout(10)
        assert lab.proc.poll() is None, f"seed {seed}: the worker died: {lab.errors[-5:]}"
    for c in clients:
        c.close()
    assert sent > 1000 and errors > sent // 10, (seed, sent, errors)
    state = Client(lab.name)
    assert state.next("state")["state"] == "running"
    state.close()
    assert lab.stop() == 0
    assert not any("internal error" in line for line in lab.errors), (seed, lab.errors[-5:])
