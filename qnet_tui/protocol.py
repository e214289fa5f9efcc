"""What the worker and its clients (the TUI, `qnet-tui exec`, tests) share:
where a running lab keeps its files, and the messages on its control socket.

The control socket speaks JSON, one object per line, each with a "type":

worker -> client
  hello    {"lab", "file", "pid", "protocol"}        first, on connect
  state    {"state": starting|running|stopping|stopped|failed, "reason"}
  stats    {"time", "vlans": {VLAN: {...}}, "peers": {NAME: {...}}}   every tick
  samples  {"samples": [{"time", "hub", "vlan", "port", "length", "summary", "hex"}]}
  log      {"level": info|warning|error, "message"}
client -> worker
  stop     {}                                        stop the lab and exit
  capture  {"hub", "path"}                           start a pcap capture of a hub (VLAN or peer pair);
                                                     path None stops it. The path must not exist yet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE = 4 * 1024 * 1024  # a stats line of a large lab is well under this

WORKER_TYPES = frozenset({"hello", "state", "stats", "samples", "log"})
CLIENT_TYPES = frozenset({"stop", "capture"})
STATES = ("starting", "running", "stopping", "stopped", "failed")


class ProtocolError(Exception):
    pass


def runtime_root() -> Path:
    """Where running labs keep their lock, state and control socket."""
    override = os.environ.get("QNET_RUNTIME_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/qnet-tui")
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
    if not isinstance(msg, dict) or msg.get("type") not in allowed:
        raise ProtocolError(f"unexpected message {str(msg)[:80]}")
    return msg


class LineBuffer:
    """Splits a byte stream into lines, refusing a line longer than MAX_LINE."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        *lines, rest = self.buf.split(b"\n")
        if len(rest) > MAX_LINE:
            raise ProtocolError("message too long")
        self.buf = bytearray(rest)
        return [bytes(x) for x in lines if x]
