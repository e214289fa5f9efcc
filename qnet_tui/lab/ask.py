"""What the command-line verbs on a running lab (link, impair, apply, capture, follow,
console, exec) share: the lab a file names, with the nodes asked for, found
running; and one question to its worker over the control socket (send a
client message, wait for the reply of the expected kind, or the refusal)."""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from typing import TypeVar

from qnet_tui import protocol
from qnet_tui.lab.remote import share_name
from qnet_tui.lab.runstate import is_running
from qnet_tui.model.topology import Topology
from qnet_tui.model.validate import did_you_mean
from qnet_tui.model.yamlio import load_file

REPLY_S = 10.0  # the worker answers at once; past this it is stuck
Reply = TypeVar("Reply", bound=protocol.Message)


class AskError(Exception):
    """The lab cannot be reached, refused, or did not answer; the text says which."""


def read_topology(file: str, *nodes: str, host: str | None = None) -> Topology:
    """The topology of file, which has every one of nodes; AskError says
    what is wrong (the file's first error, placed; a node it has not). With
    host, its name is the lab of that host's share (a lab across machines)."""
    doc = load_file(file)
    errors = [d for d in doc.problems if d.is_error]
    if errors:
        raise AskError(f"{file}: {errors[0].text}")
    t = doc.topology
    for node in nodes:
        if node not in t.nodes:
            raise AskError(f"{file} has no node '{node}'{did_you_mean(node, t.nodes)}")
    if host is not None:
        t.name = share_name(str(t.name), host)
    return t


def check_running(file: str, lab: str, why_root: str = "the lab's control socket is root's") -> None:
    """AskError unless this process may reach lab (root) and it runs."""
    if os.geteuid() != 0:
        raise AskError(f"needs root: {why_root}; run it with sudo")
    if not is_running(lab):
        raise AskError(f"lab {lab} is not running; start it with: qnet-tui run {file}")


class Session:
    """A control connection that stays: a question's (ask), or a capture's or
    a follow's, which read what the worker sends for as long as they run."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.lines = protocol.LineBuffer()
        self.ended: protocol.CaptureEnded | None = None
        self.gone = False  # the worker closed the connection

    def start(self, message: protocol.ClientMessage, fd: int | None = None) -> None:
        """Connect and send message (with fd, if any, for the worker to keep)."""
        try:
            self.sock.connect(str(protocol.control_path(self.lab)))
            fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))] if fd is not None else []
            self.sock.sendmsg([protocol.encode(message)], fds)
        except OSError as exc:
            raise AskError(f"cannot reach lab {self.lab}: {exc.strerror or exc}") from None

    def send(self, message: protocol.ClientMessage) -> None:
        try:
            self.sock.sendall(protocol.encode(message))
        except OSError:
            self.gone = True

    def wait(self, kind: type[Reply], timeout: float = REPLY_S) -> Reply:
        """The worker's next message of kind; AskError on a refusal, silence or its going."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            for msg in self.read():
                if isinstance(msg, protocol.Error):
                    raise AskError(msg.message)
                if isinstance(msg, kind):
                    return msg
            if self.gone:
                raise AskError(f"lab {self.lab} stopped")
        raise AskError(f"lab {self.lab} did not answer within {timeout:g} s")

    def read(self) -> list[protocol.Message]:
        """What the worker sent (statistics and logs go by); an end is kept in `ended`."""
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self.gone = True
            return []
        out = []
        for line in self.lines.feed(data):
            msg = protocol.decode(line, protocol.WORKER)
            if isinstance(msg, protocol.CaptureEnded):
                self.ended = msg
            if isinstance(msg, protocol.Message):
                out.append(msg)
        return out

    def close(self) -> None:
        self.sock.close()


def ask(lab: str, message: protocol.ClientMessage, reply: type[Reply], timeout: float = REPLY_S) -> Reply:
    session = Session(lab)
    try:
        session.start(message)
        return session.wait(reply, timeout)
    finally:
        session.close()
