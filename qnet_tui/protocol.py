"""What the worker and its clients (the TUI, `qnet-tui exec`, tests) share:
where a running lab keeps its files, and the messages on its control socket.

The control socket speaks JSON, one object per line, each with a "type":

worker -> client
  hello    {"lab", "file", "pid", "protocol"}        first, on connect
  state    {"state": starting|running|stopping|stopped|failed, "reason"}
  stats    {"time", "vlans": {VLAN: {...}}, "peers": {NAME: {...}}}   every tick
  samples  {"samples": [{"time", "hub", "vlan", "port", "length", "summary", "hex"}]}
  log      {"level": info|warning|error, "message"}
  error    {"message"}                               the client's last message was refused, and why
client -> worker
  stop     {}                                        stop the lab and exit
  capture  {"hub", "path"}                           start a pcap capture of a hub (VLAN or peer pair);
                                                     path None stops it. The path must not exist yet.

A malformed or refused client message gets an `error` reply and the lab goes
on; a line over MAX_CLIENT_LINE bytes also ends that client's connection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE = 4 * 1024 * 1024  # a stats line of a large lab is well under this
MAX_CLIENT_LINE = 64 * 1024  # a client's messages are a few hundred bytes

WORKER_TYPES = frozenset({"hello", "state", "stats", "samples", "log", "error"})
CLIENT_TYPES = frozenset({"stop", "capture"})
STATES = ("starting", "running", "stopping", "stopped", "failed")


class ProtocolError(Exception):
    pass


ROOT_RUNTIME = Path("/run/qnet-tui")


def runtime_root() -> Path:
    """Where running labs keep their lock, state and control socket."""
    override = os.environ.get("QNET_RUNTIME_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return ROOT_RUNTIME
    return Path(os.environ.get("XDG_RUNTIME_DIR", f"/tmp/qnet-tui-{os.geteuid()}")) / "qnet-tui"


def lab_dir(lab: str) -> Path:
    return runtime_root() / lab


def control_path(lab: str) -> Path:
    return lab_dir(lab) / "control.sock"


def state_path(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def lock_path(lab: str) -> Path:
    return lab_dir(lab) / "lock"


def encode(kind: str, **fields: Any) -> bytes:
    if kind not in WORKER_TYPES | CLIENT_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}")
    return json.dumps({"type": kind, **fields}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from None
    except RecursionError:  # "[[[[..." nested past the interpreter's limit
        raise ProtocolError("not a JSON message: nested too deeply") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message is a JSON object, not {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        shown = json.dumps(kind)[:40] if isinstance(kind, (str, int, float, bool, type(None))) else type(kind).__name__
        raise ProtocolError(f"unknown message type {shown}; known: {', '.join(sorted(allowed))}")
    return msg


class LineBuffer:
    """Splits a byte stream into lines, refusing a line longer than `limit`."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        *lines, rest = self.buf.split(b"\n")
        if len(rest) > self.limit:
            raise ProtocolError(f"message longer than {self.limit} bytes")
        self.buf = bytearray(rest)
        return [bytes(x) for x in lines if x]
