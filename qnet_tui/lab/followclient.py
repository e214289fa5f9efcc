"""`qnet-tui follow FILE NODE PROTO A B [--raw a|b]`: a TCP or UDP
conversation's payload, both ways, in order, while the lab runs (the
worker reassembles it: lab/follow.py), as the app's follow screen shows it.

Text by default: each time the direction changes, a line says who sends
(`==> a1 10.8.1.1:41000`), then what it sent, bytes that are no text as
dots. `--raw a` (or `b`) writes only what that side sent, byte for byte
(to a file, or `| hexdump -C`). Runs until Ctrl-C, the lab stops, or the
reader goes."""

from __future__ import annotations

import ipaddress
import select
import signal
import sys
from typing import BinaryIO

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, Session, check_running, read_topology
from qnet_tui.lab.conversations import end_name, node_names
from qnet_tui.lab.elsewhere import end_when_reader_goes
from qnet_tui.model.diagnostics import printable
from qnet_tui.segments import payload_text


class FollowError(Exception):
    pass


def _say(message: str) -> None:
    print(f"qnet-tui follow: {printable(message)}", file=sys.stderr, flush=True)


def end(text: str) -> tuple[str, int]:
    """ADDRESS:PORT, an IPv6 address in brackets ([fd00::1]:80), as (address, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        raise FollowError(f"{text!r} is no ADDRESS:PORT (10.0.0.1:80, [fd00::1]:80)") from None
    if not sep or not 0 <= number <= 0xFFFF:
        raise FollowError(f"{text!r} is no ADDRESS:PORT (10.0.0.1:80, [fd00::1]:80)")
    return address, number


class Writer:
    """Where the payload goes: text with a line per change of direction, or one side raw."""

    def __init__(self, out: BinaryIO, names: tuple[str, str], raw: int | None) -> None:
        self.out, self.names, self.raw = out, names, raw
        self.way: int | None = None

    def chunk(self, way: int, data: bytes) -> None:
        if self.raw is not None:
            if way == self.raw:
                self.out.write(data)
            return
        if way != self.way:
            start = "\n" if self.way is not None else ""
            self.out.write(f"{start}==> {self.names[way]}\n".encode())
            self.way = way
        self.out.write(payload_text(data).encode())


def follow_command(file: str, node: str, proto: str, a: str, b: str, raw: str | None, host: str | None = None) -> int:
    try:
        t = read_topology(file, node, host=host)
        (a_addr, a_port), (b_addr, b_port) = end(a), end(b)
        check_running(file, str(t.name))
        # Ctrl-C and SIGTERM end it, even when started in the background of a shell (which
        # ignores SIGINT there); set before the "following" line, which says Ctrl-C works.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupted)
        if host is not None:
            end_when_reader_goes()  # run for another machine: its ssh going ends it
        session = Session(str(t.name))
        try:
            session.start(protocol.Follow(node, proto, a_addr, a_port, b_addr, b_port))
            session.wait(protocol.Followed)
            _say(f"following {proto} {a} <> {b} on {node}'s hub; Ctrl-C stops")
            names = node_names(t.nodes.values())  # each end by its node, as the app names them
            ends = (_named(names, a_addr, a), _named(names, b_addr, b))
            return _relay(session, ends, None if raw is None else "ab".index(raw))
        finally:
            session.close()
    except (AskError, FollowError) as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0


def _named(names: dict[str, str], address: str, text: str) -> str:
    name = end_name(names, address)
    return f"{name} {text}" if name else text


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _relay(session: Session, names: tuple[str, str], raw: int | None) -> int:
    writer = Writer(sys.stdout.buffer, (f"{names[0]} (a)", f"{names[1]} (b)"), raw)
    try:
        while not session.gone:
            if not select.select([session.sock], [], [], 1.0)[0]:
                continue
            for msg in session.read():
                if isinstance(msg, protocol.Followed):
                    for chunk in msg.chunks:
                        data = protocol.unbase64(chunk["data"]) or b""
                        writer.chunk(1 if chunk["way"] == 1 else 0, data)
                    sys.stdout.buffer.flush()
                elif isinstance(msg, protocol.CaptureEnded):
                    _say(f"no longer followed: {msg.reason}")
                    return 0
        _say("the lab stopped")
        return 0
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0  # the reader went
