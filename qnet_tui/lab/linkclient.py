"""`qnet-tui link FILE A B down|up [--direction A-B|B-A]`: take a link of a
running lab down or up, through its control socket."""

from __future__ import annotations

import os
import select
import socket
import sys
import time

from qnet_tui import protocol
from qnet_tui.lab.runstate import is_running
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.validate import did_you_mean
from qnet_tui.model.yamlio import load_file

REPLY_TIMEOUT_S = 10.0


class LinkCommandError(Exception):
    pass


def _fail(message: str) -> int:
    print(f"qnet-tui link: {printable(message)}", file=sys.stderr)
    return 1


def direction_of(text: str | None, a: str, b: str) -> str:
    """both, a-b or b-a, from what a person typed: those words, or A-B / B-A
    spelt with the nodes' names (with - or ->)."""
    if text is None:
        return "both"
    if text.lower() in protocol.Link.DIRECTIONS:
        return text.lower()
    for sep in ("->", "-"):
        if text == f"{a}{sep}{b}":
            return "a-b"
        if text == f"{b}{sep}{a}":
            return "b-a"
    raise LinkCommandError(f"--direction is {text!r}; give {a}-{b}, {b}-{a} or both")


def request(lab: str, message: protocol.Link, timeout: float = REPLY_TIMEOUT_S) -> protocol.LinkState:
    """Send the link message; the worker's link_state, or LinkCommandError with its refusal."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(str(protocol.control_path(lab)))
            sock.sendall(protocol.encode(message))
        except OSError as exc:
            raise LinkCommandError(f"cannot reach lab {lab}: {exc.strerror}") from None
        lines, deadline = protocol.LineBuffer(), time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                data = sock.recv(65536)
            except OSError as exc:
                raise LinkCommandError(f"lab {lab}: {exc.strerror}") from None
            if not data:
                raise LinkCommandError(f"lab {lab} stopped before it answered")
            for line in lines.feed(data):
                reply = protocol.decode(line, protocol.WORKER)
                if isinstance(reply, protocol.Error):
                    raise LinkCommandError(reply.message)
                if isinstance(reply, protocol.LinkState):
                    return reply
        raise LinkCommandError(f"lab {lab} did not answer within {timeout:g} s")


def link_command(file: str, a: str, b: str, state: str, direction: str | None) -> int:
    doc = load_file(file)
    if doc.problems and not doc.editable:
        return _fail(f"{file}: {doc.problems[0].text}")
    t, lab = doc.topology, str(doc.topology.name)
    for end in (a, b):
        if end not in t.nodes:
            return _fail(f"{file} has no node '{end}'{did_you_mean(end, t.nodes)}")
    if b not in t.neighbours(a):
        return _fail(f"{file} has no link {a} - {b}; {a} links to {', '.join(t.neighbours(a)) or 'nothing'}")
    try:
        way = direction_of(direction, a, b)
    except LinkCommandError as exc:
        return _fail(str(exc))
    if os.geteuid() != 0:
        return _fail("needs root: the lab's control socket is root's; run it with sudo")
    if not is_running(lab):
        return _fail(f"lab {lab} is not running; start it with: qnet-tui run {file}")
    try:
        reply = request(lab, protocol.Link(a, b, state == "up", way))
    except LinkCommandError as exc:
        return _fail(str(exc))
    print(reply.message)
    return 0
