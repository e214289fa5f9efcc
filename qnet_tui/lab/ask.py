"""One question to a running lab's worker over its control socket, for the
command-line verbs (link, impair): send a client message, wait for the reply
of the expected kind, or for the worker's refusal."""

from __future__ import annotations

import select
import socket
import time
from typing import TypeVar

from qnet_tui import protocol

REPLY_S = 10.0  # the worker answers at once; past this it is stuck
Reply = TypeVar("Reply", bound=protocol.Message)


class AskError(Exception):
    """The lab cannot be reached, refused, or did not answer; the text says which."""


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
