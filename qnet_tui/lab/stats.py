"""Statistics snapshots of a running lab: cumulative counters from the
forwarding path, rates between two snapshots, and decoded frame samples."""

from __future__ import annotations

import logging
import time
from typing import Any

from qnet_tui.lab.ports import Hub
from qnet_tui.lab.realize import Lab
from qnet_tui.model.values import si


class Stats:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.last: dict[str, tuple[float, int, int]] = {}
        self._decode = None

    def _hub_stats(self, hub: Hub, now: float) -> dict[str, Any]:
        s = hub.stats()
        then, frames, size = self.last.get(hub.name, (now, s["frames"], s["bytes"]))
        elapsed = now - then
        s["fps"] = round((s["frames"] - frames) / elapsed, 1) if elapsed > 0 else 0.0
        s["bps"] = round((s["bytes"] - size) * 8 / elapsed, 1) if elapsed > 0 else 0.0  # bits per second
        self.last[hub.name] = (now, s["frames"], s["bytes"])
        return s

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        vlans = {}
        for hub in self.lab.hubs:
            s = self._hub_stats(hub, now)
            s["vlan"] = hub.vlan
            vlans[str(hub.vlan)] = s
        peers = {hub.name: self._hub_stats(hub, now) for hub in self.lab.pairs}
        return {"time": round(time.time(), 3), "lab": self.lab.name, "vlans": vlans, "peers": peers}

    def samples(self) -> list[dict[str, Any]]:
        """Decoded samples since the last call: a handful per hub per tick, so
        decoding (scapy, slow) stays off the per-frame path and bounded."""
        out = []
        for hub in (*self.lab.hubs, *self.lab.pairs):
            for sample in hub.take_samples():
                out.append(
                    {
                        "time": round(sample.time, 6),
                        "hub": hub.name,
                        "vlan": hub.vlan,
                        "port": sample.port,
                        "length": sample.length,
                        "summary": self.summary(sample.frame),
                        "hex": sample.frame.hex(),
                    }
                )
        return out

    def drop_samples(self) -> None:
        for hub in (*self.lab.hubs, *self.lab.pairs):
            hub.take_samples()

    def summary(self, frame: bytes) -> str:
        if self._decode is None:
            logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
            import scapy.layers.inet
            import scapy.layers.inet6  # noqa: F401 - binds IPv6 under Ether, as inet binds IPv4
            from scapy.layers.l2 import Ether

            self._decode = Ether
        try:
            return self._decode(frame).summary()
        except Exception as exc:  # a malformed frame is shown as such, never fatal
            return f"undecodable frame ({type(exc).__name__})"


def format_table(snapshot: dict[str, Any]) -> str:
    """The human form of a snapshot, one line per VLAN and direct peer."""
    lines = [time.strftime("%H:%M:%S", time.localtime(snapshot["time"]))]
    rows = [(f"VLAN {k}", v) for k, v in snapshot["vlans"].items()] + list(snapshot["peers"].items())
    for label, s in rows:
        protocols = " ".join(f"{k} {v}" for k, v in s["protocols"].items() if v)
        lines.append(
            f"  {label:<18} {s['frames']:>10} frames {si(s['bytes'], 'B'):>9}  "
            f"{si(s['fps'], 'fps'):>10} {si(s['bps'], 'bit/s'):>12}  drops {s['drops']:<6} {protocols}"
        )
    return "\n".join(lines)
