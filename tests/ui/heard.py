"""Worker messages for UI tests: a dict as the worker would send it, through
the protocol's own decoding, into the app's lab panel."""

from __future__ import annotations

import json

from qnet_tui import protocol


def decoded(message: dict) -> protocol.WorkerMessage:
    msg = protocol.decode(json.dumps(message).encode(), protocol.WORKER)
    assert not isinstance(msg, protocol.Malformed), msg.reason
    return msg


def hear(app, message: dict) -> None:
    app.lab.hear(decoded(message))
