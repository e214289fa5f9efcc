"""Small-frame load for the forwarding benchmarks: a generator that outruns
every forwarder, and what to read off the kernel while it runs.

iperf3's 64-byte UDP sender tops out near 176k frames/s on a 2-core VM, the
same for every forwarder, so it measures the sender. trafgen (netsniff-ng)
fills an AF_PACKET TX ring instead and offers several times what any hub here
delivers. Its frames are 60 bytes, broadcast (so a bridge floods them exactly
as a hub does), with the local experimental EtherType 0x88b5: br_netfilter is
on in these machines and silently drops frames whose IPv4 header is invalid.

Counted from the guests' interface counters, not from the generator:
offered = sender's tx_packets + tx_dropped (a tap whose reader falls behind
drops at its queue and counts it there), delivered = the receivers' rx_packets.
CPU: the forwarder's process tree (/proc/PID/stat, all threads and children),
the machine's softirq share (/proc/stat; the bridge forwards there, and partly
inside the sender's own send call, which no counter separates), and the
generator's own CPU (its rusage)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from qnet_tui.lab import netns

HZ = os.sysconf("SC_CLK_TCK")
ETHERTYPE = 0x88B5
FRAME_LEN = 60  # the shortest Ethernet frame without its FCS
STOP_AFTER = ["timeout", "-s", "INT", "-k", "5"]
CPUS = os.cpu_count() or 1


def _octets(data: bytes) -> str:
    return ",".join(f"0x{b:02x}" for b in data)


def trafgen_config(src_mac: str, cpu: int = 0, udp: tuple[str, str] | None = None) -> str:
    """One trafgen packet, sent from CPU `cpu` alone: broadcast, src_mac, 0x88b5, a random word and zero fill to
    FRAME_LEN bytes. udp=(source, destination): an IPv4 UDP datagram between them instead (port 40000 to 9,
    trafgen computes the header checksum), so that the forwarder's IP path is measured too."""
    src = _octets(bytes.fromhex(src_mac.replace(":", "")))
    if udp is None:
        fill = FRAME_LEN - 6 - 6 - 2 - 4
        etype = f"0x{ETHERTYPE >> 8:02x},0x{ETHERTYPE & 0xFF:02x}"
        return f"cpu({cpu}): {{ 0xff,0xff,0xff,0xff,0xff,0xff, {src}, {etype}, drnd(4), fill(0x00, {fill}) }}\n"
    payload = FRAME_LEN - 14 - 20 - 8
    addresses = b"".join(bytes(int(x) for x in ip.split(".")) for ip in udp)
    before = bytes([0x45, 0, 0, 20 + 8 + payload, 0, 0, 0x40, 0, 64, 17])  # DF, TTL 64, UDP
    ports = (40000).to_bytes(2, "big") + (9).to_bytes(2, "big") + (8 + payload).to_bytes(2, "big") + bytes(2)
    return (
        f"cpu({cpu}): {{ 0xff,0xff,0xff,0xff,0xff,0xff, {src}, 0x08,0x00, {_octets(before)}, csumip(14, 33), "
        f"{_octets(addresses)}, {_octets(ports)}, drnd(4), fill(0x00, {payload - 4}) }}\n"
    )


_OUTGOING = re.compile(r"^\s*(\d+) packets outgoing", re.M)
_ON_CPU = re.compile(r"^\s*(\d+) sec, (\d+) usec on CPU\d+", re.M)


def parse_trafgen(out: str) -> tuple[int, float]:
    """(frames sent, seconds sending) from trafgen's closing summary; the seconds are the longest of its CPUs."""
    sent = _OUTGOING.search(out)
    spans = [int(s) + int(us) / 1e6 for s, us in _ON_CPU.findall(out)]
    if sent is None or not spans:
        raise ValueError(f"no trafgen summary in: {out[-300:]!r}")
    return int(sent.group(1)), max(spans)


def sending_seconds(out: str, wall: float) -> float:
    """How long trafgen sent: its own figure, or the wall time when it left no summary (now and then a SIGINT
    ends it without one)."""
    try:
        return parse_trafgen(out)[1]
    except ValueError:
        return wall


@dataclass(frozen=True)
class CpuTimes:
    """System-wide /proc/stat 'cpu' line, in ticks: busy (user, nice, system, irq, softirq) and its softirq part."""

    busy: int
    softirq: int


def parse_proc_stat(text: str) -> CpuTimes:
    for line in text.splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in line.split()[1:8])
            return CpuTimes(busy=user + nice + system + irq + softirq, softirq=softirq)
    raise ValueError("no 'cpu' line in /proc/stat")


def proc_stat() -> CpuTimes:
    return parse_proc_stat(Path("/proc/stat").read_text())


def parse_pid_stat(text: str) -> tuple[int, int]:
    """(parent pid, utime + stime ticks) of one /proc/PID/stat; the command may hold spaces and parentheses."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_ticks(pid: int) -> int:
    """CPU ticks of pid and every live descendant (the worker may fork forwarding processes)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)], ticks[int(entry)] = parse_pid_stat(Path(f"/proc/{entry}/stat").read_text())
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(ticks.get(p, 0) for p in tree)


def ticks_of(pids: int | tuple[int, ...]) -> int:
    """CPU ticks of one forwarder's process tree, or of several (a lab across machines: a worker on each)."""
    return sum(tree_ticks(pid) for pid in ((pids,) if isinstance(pids, int) else pids))


def link_stats(ns: str, ifname: str = "eth0") -> dict[str, int]:
    with netns.inside(ns):
        ipr = IPRoute()
    with ipr:
        return dict(ipr.get_links(ifname=ifname)[0].get_attr("IFLA_STATS64"))


def blast(
    pid: int | tuple[int, ...] | None,
    pairs: list[tuple[str, str, str]],
    seconds: float,
    listeners: list[str] = (),
    workdir: Path = Path("/tmp"),
    in_kernel: bool = False,
    udp: tuple[str, str] | None = None,
) -> dict[str, float]:
    """Run one trafgen per (sender ns, sender MAC, receiver ns) at once for `seconds`; count what the receivers got.

    listeners: further receiving namespaces (the other ports of a hub) whose deliveries count in delivered_all.
    pid: the forwarder's process, or processes (None for the kernel's bridge).
    in_kernel: the kernel forwards for that process (qnet-tui's kernel hubs): its cost is the softirq share too.
    udp: (source, destination) IPv4 addresses: the frames are UDP datagrams between them (see trafgen_config).
    """
    configs = []
    for n, (_, mac, _) in enumerate(pairs):
        cfg = workdir / f"qnb-trafgen{n}.cfg"
        cfg.write_text(trafgen_config(mac, n % CPUS, udp))  # each generator a core of its own, while there are cores
        configs.append(cfg)
    receivers = [r for _, _, r in pairs]
    everyone = receivers + [ns for ns in listeners if ns not in receivers]
    before = {ns: link_stats(ns) for ns in {s for s, _, _ in pairs} | set(everyone)}
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    fw0, sys0, t0 = (ticks_of(pid) if pid else 0), proc_stat(), time.monotonic()
    gens = [
        subprocess.Popen(
            # SIGINT: trafgen prints its summary (-k: and SIGKILL if it hangs). -q: the qdisc path, like any
            # sender; -Q: leave IRQ affinity alone; -P: a process per core, of which the config's cpu() sends.
            [*STOP_AFTER, f"{seconds:g}", "trafgen", "-i", str(cfg), "-o", "eth0", "-q", "-Q", "-P", str(CPUS)],
            preexec_fn=lambda ns=ns: netns.enter(ns),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for (ns, _, _), cfg in zip(pairs, configs, strict=True)
    ]
    outs = [g.communicate(timeout=seconds + 30)[0] for g in gens]
    wall = time.monotonic() - t0
    fw1, sys1 = (ticks_of(pid) if pid else 0), proc_stat()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = {ns: link_stats(ns) for ns in before}
    for cfg in configs:
        cfg.unlink(missing_ok=True)

    def delta(ns: str, key: str) -> int:
        return after[ns][key] - before[ns][key]

    span = max(sending_seconds(out, wall) for out in outs)
    delivered = sum(delta(r, "rx_packets") for r in receivers)
    offered = sum(delta(s, "tx_packets") + delta(s, "tx_dropped") for s, _, _ in pairs)
    fw_cpu = (fw1 - fw0) / HZ if pid else float("nan")
    softirq = (sys1.softirq - sys0.softirq) / HZ
    gen_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    # The bridge's forwarding is kernel work: its CPU figure is the softirq share.
    cost = (fw_cpu if pid else 0.0) + (softirq if in_kernel or not pid else 0.0)
    return {
        "delivered_fps": delivered / span,  # to the measured guest(s): one per busy hub
        "delivered_all_fps": sum(delta(ns, "rx_packets") for ns in everyone) / span,
        "offered_fps": offered / span,
        "dropped_at_sender_fps": sum(delta(s, "tx_dropped") for s, _, _ in pairs) / span,
        "cpu_pct": fw_cpu / wall * 100,
        "softirq_pct": softirq / wall * 100,
        "busy_pct": (sys1.busy - sys0.busy) / HZ / wall * 100,
        "gen_cpu_pct": gen_cpu / wall * 100,
        "cpu_s_per_mframe": cost / (delivered / 1e6) if delivered else float("nan"),
    }


def wait_quiet(max_wait: float = 120, busy_below: float = 30) -> float:
    """Wait (up to max_wait s) for a second in which the machine is busy less than busy_below % of one core.

    Other work on a 2-core machine moves these figures more than anything measured; returns the last busy %."""
    deadline = time.monotonic() + max_wait
    while True:
        t0, s0 = time.monotonic(), proc_stat()
        time.sleep(1)
        busy = (proc_stat().busy - s0.busy) / HZ / (time.monotonic() - t0) * 100
        if busy < busy_below or time.monotonic() > deadline:
            return busy


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
