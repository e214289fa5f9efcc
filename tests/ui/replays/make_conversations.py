"""Writes conversations.jsonl: two-vlans.jsonl (a real worker's stream on
two-vlans.yaml while vm1 pinged vm2) with conversation tables composed here
added to each statistics message, and the samples of a TCP connection
(built with scapy, one data frame cut to its first 256 bytes as the worker
cuts them) after the recorded ones. Run from the repository's root:

    .venv/bin/python tests/ui/replays/make_conversations.py
"""

from __future__ import annotations

import json
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

HERE = Path(__file__).parent
M1, M2, M3, M4 = "52:54:00:00:01:01", "52:54:00:00:01:02", "52:54:00:00:02:03", "52:54:00:00:02:04"
KEPT = 256  # bytes of a frame a sample keeps


def row(a, b, a_node, b_node, frames, nbytes, fps, bps, first, last, proto=None, a_port=None, b_port=None):
    return {
        "a": a,
        "b": b,
        "a_node": a_node,
        "b_node": b_node,
        "proto": proto,
        "a_port": a_port,
        "b_port": b_port,
        "frames": frames,
        "bytes": nbytes,
        "fps": fps,
        "bps": bps,
        "first": first,
        "last": last,
    }


def rest(count, frames, nbytes, fps, bps):
    return {"count": count, "frames": frames, "bytes": nbytes, "fps": fps, "bps": bps}


def vlan1(i: int, t: float, start: float) -> dict:
    n = i + 1
    return {
        "pairs": [
            row(M1, M2, "vm1", "vm2", 140 * n, 70_000 * n, 70.0, 280_000.0, start, t - 0.1),
            row(M1, "ff:ff:ff:ff:ff:ff", "vm1", None, 2, 84, 0.0, 0.0, start + 1, start + 1),
            row(M2, "33:33:00:00:00:16", "vm2", None, 3 * n, 330 * n, 1.5, 1320.0, start, t - 2),
        ],
        "flows": [
            row(
                "10.0.0.1",
                "10.0.0.2",
                "vm1",
                "vm2",
                40 * n,
                60_000 * n,
                20.0,
                240_000.0,
                start + 2,
                t - 0.1,
                "tcp",
                40000,
                5201,
            ),
            row("10.0.0.1", "10.0.0.2", "vm1", "vm2", 100 * n, 9_800 * n, 50.0, 39_200.0, start, t - 0.2, "icmp"),
            row("fe80::5054:ff:fe00:102", "ff02::16", "vm2", None, 3 * n, 330 * n, 1.5, 1320.0, start, t - 2, "icmpv6"),
            row("10.0.0.1", "255.255.255.255", "vm1", None, 1, 342, 0.0, 0.0, start + 1, start + 1, "udp", 68, 67),
        ],
        "others": {"pairs": rest(0, 0, 0, 0.0, 0.0), "flows": rest(3, 12, 1500, 0.5, 400.0)},
    }


def vlan2(i: int, t: float, start: float) -> dict:
    n = i + 1
    return {
        "pairs": [row(M3, M4, "vm3", "vm4", 6 * n, 600 * n, 2.0, 1600.0, start, t - 0.5)],
        "flows": [
            row("fd00::3", "fd00::4", "vm3", "vm4", 6 * n, 600 * n, 2.0, 1600.0, start, t - 0.5, "icmpv6"),
        ],
        "others": {"pairs": rest(2, 8, 792, 1.0, 640.0), "flows": rest(0, 0, 0, 0.0, 0.0)},
    }


def tcp_samples(t: float) -> list[dict]:
    """vm1 opens a TCP connection to vm2's port 5201 and sends a full-size segment."""
    a = Ether(src=M1, dst=M2) / IP(src="10.0.0.1", dst="10.0.0.2", id=1)
    b = Ether(src=M2, dst=M1) / IP(src="10.0.0.2", dst="10.0.0.1", id=2)
    frames = [
        ("vm1", a / TCP(sport=40000, dport=5201, flags="S", seq=1000)),
        ("vm2", b / TCP(sport=5201, dport=40000, flags="SA", seq=5000, ack=1001)),
        ("vm1", a / TCP(sport=40000, dport=5201, flags="A", seq=1001, ack=5001)),
        ("vm1", a / TCP(sport=40000, dport=5201, flags="PA", seq=1001, ack=5001) / (b"iperf3 " * 209)[:1460]),
    ]
    out = []
    for k, (port, packet) in enumerate(frames):
        wire = bytes(packet)
        out.append(
            {
                "time": round(t + k * 0.001, 6),
                "hub": "hub1",
                "vlan": 1,
                "port": port,
                "length": len(wire),
                "summary": packet.summary(),
                "hex": wire[:KEPT].hex(),
            }
        )
    return out


def main() -> None:
    messages = [json.loads(line) for line in (HERE / "two-vlans.jsonl").read_text().splitlines()]
    stats = [m for m in messages if m["type"] == "stats"]
    start = stats[0]["time"] - 5.0
    out = []
    for m in messages:
        if m["type"] == "stats":
            i, t = stats.index(m), m["time"]
            m["vlans"]["1"]["conversations"] = vlan1(i, t, start)
            m["vlans"]["2"]["conversations"] = vlan2(i, t, start)
        out.append(m)
    out.append({"type": "samples", "samples": tcp_samples(stats[-1]["time"] + 0.1)})
    (HERE / "conversations.jsonl").write_text("".join(json.dumps(m, separators=(",", ":")) + "\n" for m in out))


if __name__ == "__main__":
    main()
