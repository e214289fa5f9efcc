"""What the command-line verbs on a running lab (link, impair, apply,
console, exec) share: the lab a file names, with the nodes asked for, found
running; and one question to its worker over the control socket (send a
client message, wait for the reply of the expected kind, or the refusal)."""

from __future__ import annotations

import os
import select
import socket
import time
from typing import TypeVar

from qnet_tui import protocol
from qnet_tui.lab.runstate import is_running
from qnet_tui.model.topology import Topology
from qnet_tui.model.validate import did_you_mean
from qnet_tui.model.yamlio import load_file

REPLY_S = 10.0  # the worker answers at once; past this it is stuck
Reply = TypeVar("Reply", bound=protocol.Message)


class AskError(Exception):
    """The lab cannot be reached, refused, or did not answer; the text says which."""


def read_topology(file: str, *nodes: str) -> Topology:
    """The topology of file, which has every one of nodes; AskError says
    what is wrong (the file's first error, placed; a node it has not)."""
    doc = load_file(file)
    errors = [d for d in doc.problems if d.is_error]
    if errors:
        raise AskError(f"{file}: {errors[0].text}")
    t = doc.topology
    for node in nodes:
        if node not in t.nodes:
            raise AskError(f"{file} has no node '{node}'{did_you_mean(node, t.nodes)}")
    return t


def check_running(file: str, lab: str, why_root: str = "the lab's control socket is root's") -> None:
    """AskError unless this process may reach lab (root) and it runs."""
    if os.geteuid() != 0:
        raise AskError(f"needs root: {why_root}; run it with sudo")
    if not is_running(lab):
        raise AskError(f"lab {lab} is not running; start it with: qnet-tui run {file}")


def ask(lab: str, message: protocol.ClientMessage, reply: type[Reply], timeout: float = REPLY_S) -> Reply:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(str(protocol.control_path(lab)))
            sock.sendall(protocol.encode(message))
        except OSError as exc:
            raise AskError(f"cannot reach lab {lab}: {exc.strerror or exc}") from None
        lines, deadline = protocol.LineBuffer(), time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            try:
                data = sock.recv(1 << 16)
            except OSError as exc:
                raise AskError(f"lab {lab}: {exc.strerror}") from None
            if not data:
                raise AskError(f"lab {lab} stopped before it answered")
            for line in lines.feed(data):
                msg = protocol.decode(line, protocol.WORKER)
                if isinstance(msg, protocol.Error):
                    raise AskError(msg.message)
                if isinstance(msg, reply):
                    return msg
    raise AskError(f"lab {lab} did not answer within {timeout:g} s")
