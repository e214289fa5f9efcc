"""A VM guest's serial console from outside the worker, through the lab's
control socket: `qnet-tui console FILE GUEST` (the terminal attached to it
until Ctrl-]) and `qnet-tui exec` on a VM guest (a command typed into the
console's shell, its output and exit status read back)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import select
import socket
import sys
import termios
import time
import tty

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, check_running, read_topology
from qnet_tui.model import guests
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.kinds import Kind

DETACH = b"\x1d"  # Ctrl-], as telnet and virsh console


class ConsoleError(Exception):
    pass


class ConsoleClient:
    def __init__(self, lab: str, guest: str) -> None:
        self.lab, self.guest = lab, guest
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.lines = protocol.LineBuffer()
        self.pending: list[protocol.Message] = []

    def open(self) -> None:
        try:
            self.sock.connect(str(protocol.control_path(self.lab)))
        except OSError as exc:
            raise ConsoleError(f"cannot reach lab {self.lab}: {exc.strerror}") from None
        self.send(protocol.Console(self.guest, True))

    def send(self, message: protocol.ClientMessage) -> None:
        self.sock.sendall(protocol.encode(message))

    def type(self, data: bytes) -> None:
        self.send(protocol.ConsoleInput.of(self.guest, data))

    def read(self, timeout: float) -> bytes | None:
        """Console bytes within timeout (b"" if none came); None when the lab hung up.
        A refusal of the worker (no such VM guest) raises ConsoleError."""
        out = b""
        if not self.pending:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return b""
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self.pending = [protocol.decode(line, protocol.WORKER) for line in self.lines.feed(data)]
        for msg in self.pending:
            if isinstance(msg, protocol.ConsoleOutput) and msg.guest == self.guest:
                out += protocol.unbase64(msg.data) or b""
            elif isinstance(msg, protocol.Error):
                raise ConsoleError(msg.message)
        self.pending = []
        return out

    def close(self) -> None:
        self.sock.close()


def _fail(message: str) -> int:
    print(f"qnet-tui console: {printable(message)}", file=sys.stderr)
    return 1


def attach(file: str, name: str, host: str | None = None) -> int:
    """`qnet-tui console FILE GUEST`: the terminal on a VM guest's console."""
    try:
        t = read_topology(file, name, host=host)
    except AskError as exc:
        return _fail(str(exc))
    lab, node = str(t.name), t.nodes[name]
    machine = guests.machine_of(t, name) if node.kind is Kind.GUEST_NIC else None
    guest = machine.id if machine is not None else name
    if t.nodes[guest].kind is not Kind.GUEST or t.nodes[guest].get("vm") is not True:
        return _fail(f"{guest} is no VM guest (vm: true): it has no console; use qnet-tui exec")
    try:
        check_running(file, lab)
    except AskError as exc:
        return _fail(str(exc))
    client = ConsoleClient(lab, guest)
    try:
        client.open()
        earlier = client.read(0.3)  # the scrollback; or the refusal (no such VM in the running lab)
        if earlier is None:
            return _fail(f"lab {lab} stopped")
        os.write(sys.stdout.fileno(), earlier)
        return attach_terminal(client)
    except ConsoleError as exc:
        return _fail(str(exc))
    finally:
        client.close()


def attach_terminal(client: ConsoleClient) -> int:
    """The terminal on the console until Ctrl-] (or the lab ends)."""
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    print(f"[console of {client.guest}: Ctrl-] leaves]\r", file=sys.stderr)
    try:
        if saved is not None:
            tty.setraw(stdin)
        while True:
            ready, _, _ = select.select([stdin, client.sock], [], [])
            if stdin in ready:
                keys = os.read(stdin, 1024)
                if not keys or DETACH in keys:
                    client.type(keys.split(DETACH)[0])
                    return 0
                client.type(keys)
            if client.sock in ready:
                data = client.read(0)
                if data is None:
                    print("\r\n[the lab has stopped]\r", file=sys.stderr)
                    return 1
                os.write(sys.stdout.fileno(), data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def run_command(client: ConsoleClient, argv: list[str], timeout: float) -> tuple[bytes, int]:
    """Run argv in the guest's console shell; its output and exit status.
    The command is framed by marks with a nonce, so what the console printed
    before (boot messages, another user's typing) is not taken for its output."""
    nonce = secrets.token_hex(6)
    start, end = f"qnet-{nonce}-start", f"qnet-{nonce}-end"
    line = " ".join(_quote(a) for a in argv)
    # The marks are printed, not typed: an echoed command line never matches.
    client.type(f"\x03\recho {_split(start)}; {line}; echo {_split(end)} $?\r".encode())
    found = re.compile(re.escape(start).encode() + rb"\r?\n(.*?)" + re.escape(end).encode() + rb" (\d+)", re.S)
    seen, deadline = b"", time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        data = client.read(min(left, 0.5))
        if data is None:
            raise ConsoleError("the lab stopped while the command ran")
        seen += data
        if match := found.search(seen):
            return match.group(1).replace(b"\r\n", b"\n"), int(match.group(2))
    with contextlib.suppress(OSError):
        client.type(b"\x03")  # interrupt what still runs
    raise ConsoleError(f"no end of the command within {timeout:g} s")


def _quote(arg: str) -> str:
    if arg and re.fullmatch(r"[A-Za-z0-9_./:=,+@%-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def _split(mark: str) -> str:
    """The mark as the shell prints it but the typed line does not show it:
    'qnet-ab'cd'...' echoes as qnet-abcd..."""
    half = len(mark) // 2
    return f"'{mark[:half]}''{mark[half:]}'"
