"""Ports: the places frames enter and leave the worker (tap fds and sockets),
and the hubs that flood between them.

This is the forwarding path. It is written for per-frame cost: counters are
plain integer attributes, each ready fd is drained in a batch, and nothing
here decodes more of a frame than its EtherType and IP protocol byte."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from qnet_tui.lab.capture import Capture
from qnet_tui.lab.tap import VNET_HDR_LEN

BATCH = 64  # frames drained from one fd before the others get their turn
READ_SIZE = 65536 + VNET_HDR_LEN + 64
SAMPLES_PER_TICK = 20  # decoded-frame samples a hub keeps per statistics tick
SAMPLE_BYTES = 256  # enough for every header scapy shows in a summary

# Protocol counters, by index into Hub.protocols.
ARP, IPV4, IPV6, ICMP, TCP, UDP, OTHER = range(7)
PROTOCOL_NAMES = ("arp", "ipv4", "ipv6", "icmp", "tcp", "udp", "other")
_L4 = [-1] * 256
_L4[1] = _L4[58] = ICMP  # ICMP, ICMPv6
_L4[6] = TCP
_L4[17] = UDP


@dataclass(slots=True)
class Sample:
    time: float
    port: str
    frame: bytes  # Ethernet frame (no virtio-net header), cut to SAMPLE_BYTES
    length: int  # its whole length on the wire


class Port:
    """One end a hub floods to. Subclasses read and write real fds.

    Only receive counters and drops are counted per port: a hub sends every
    frame to every port but its source, so what a port transmitted is what
    the hub took in from the others, less what that port dropped. That keeps
    the per-destination cost of a frame at one write."""

    kind = "port"

    def __init__(self, name: str) -> None:
        self.name = name
        self.hub: Hub | None = None
        self.vnet = False  # frames carry a virtio-net header
        self.rx_frames = self.rx_bytes = 0
        self.drop_full = self.drop_gone = self.drop_oversized = 0  # frames this port could not send
        self.drop_bytes = 0
        self.drop_malformed = 0  # frames received that were not Ethernet
        self.connected = True

    def send(self, frame: bytes, segments: int, length: int) -> None:
        """Send one frame; count it in drop_* if it cannot go."""
        raise NotImplementedError

    def dropped(self, reason: str, segments: int, length: int) -> None:
        setattr(self, f"drop_{reason}", getattr(self, f"drop_{reason}") + segments)
        self.drop_bytes += length

    # -- statistics ------------------------------------------------------------

    @property
    def drops(self) -> int:
        return self.drop_full + self.drop_gone + self.drop_oversized + self.drop_malformed

    @property
    def tx_frames(self) -> int:
        hub = self.hub
        return hub.frames - self.rx_frames - (self.drop_full + self.drop_gone + self.drop_oversized) if hub else 0

    @property
    def tx_bytes(self) -> int:
        return self.hub.bytes - self.rx_bytes - self.drop_bytes if self.hub else 0

    def stats(self) -> dict:
        return {
            "kind": self.kind,
            "connected": self.connected,
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "drops": self.drops,
            "drop_reasons": {
                "full": self.drop_full,
                "gone": self.drop_gone,
                "oversized": self.drop_oversized,
                "malformed": self.drop_malformed,
            },
        }


class TapPort(Port):
    """A tap device's fd: a tap node's, or the one behind a guest NIC's eth0."""

    kind = "tap"

    def __init__(self, name: str, fd: int, vnet: bool) -> None:
        super().__init__(name)
        self.fd = fd
        self.vnet = vnet

    def send(self, frame: bytes, segments: int, length: int) -> None:
        try:
            os.write(self.fd, frame)
        except BlockingIOError:
            self.dropped("full", segments, length)
        except OSError:
            self.dropped("gone", segments, length)

    def frames(self) -> Iterator[bytes]:
        """What is queued on the tap, up to a batch."""
        fd, read = self.fd, os.read
        for _ in range(BATCH):
            try:
                yield read(fd, READ_SIZE)
            except OSError:  # EAGAIN: drained; EIO and the like: a later read tells again
                return

    def on_readable(self) -> None:
        self.hub.forward(self, self.frames())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Hub:
    """QEMU's hub: every frame in goes out of every other port, never back to
    its source. A guest NIC peered straight to a tap or socket is a hub of two
    ports, which is exactly QEMU's netdev peering."""

    def __init__(self, name: str, vlan: int | None) -> None:
        self.name = name
        self.vlan = vlan
        self.ports: list[Port] = []
        self.vnet = False
        self.frames = self.bytes = 0
        self.protocols = [0] * len(PROTOCOL_NAMES)
        self.samples: deque[Sample] = deque(maxlen=SAMPLES_PER_TICK * 4)
        self.sample_budget = SAMPLES_PER_TICK
        self.capture: Capture | None = None
        # Per source: the tap fds (written directly) and other ports to flood to.
        self._outs: dict[int, tuple[list[tuple[int, Port]], list[Port]]] = {}

    def attach(self, port: Port) -> None:
        port.hub = self
        self.ports.append(port)
        self._outs.clear()

    def _outs_for(self, src: Port) -> tuple[list[tuple[int, Port]], list[Port]]:
        others = [p for p in self.ports if p is not src]
        outs = ([(p.fd, p) for p in others if type(p) is TapPort], [p for p in others if type(p) is not TapPort])
        self._outs[id(src)] = outs
        return outs

    def forward(self, src: Port, frames: Iterable[bytes]) -> None:
        """Flood frames from src. The per-frame path: counts in locals, one
        write per destination tap."""
        taps, others = self._outs.get(id(src)) or self._outs_for(src)
        off0 = VNET_HDR_LEN if src.vnet else 0
        protocols, budget, write, capture = self.protocols, self.sample_budget, os.write, self.capture
        count = size_sum = 0
        for frame in frames:
            length = len(frame) - off0
            if length < 14:
                src.drop_malformed += 1
                continue
            segments = 1
            if off0 and frame[1]:  # gso_type: a TCP super-frame of several wire frames
                gso_size = frame[4] | frame[5] << 8
                if gso_size:
                    segments = -(-(length - (frame[2] | frame[3] << 8)) // gso_size)
            count += segments
            size_sum += length
            off = off0
            ethertype = frame[off + 12] << 8 | frame[off + 13]
            if ethertype == 0x8100 and length >= 18:  # 802.1Q tag: look past it
                off += 4
                ethertype = frame[off + 12] << 8 | frame[off + 13]
            if ethertype == 0x0800:
                protocols[IPV4] += segments
                if len(frame) > off + 23 and (l4 := _L4[frame[off + 23]]) >= 0:
                    protocols[l4] += segments
            elif ethertype == 0x86DD:
                protocols[IPV6] += segments
                if len(frame) > off + 20 and (l4 := _L4[frame[off + 20]]) >= 0:
                    protocols[l4] += segments
            elif ethertype == 0x0806:
                protocols[ARP] += segments
            else:
                protocols[OTHER] += segments
            if budget:
                budget -= 1
                self.samples.append(Sample(time.time(), src.name, frame[off0 : off0 + SAMPLE_BYTES], length))
            if capture is not None:
                capture.write(memoryview(frame)[off0:])
            for fd, port in taps:
                try:
                    write(fd, frame)
                except BlockingIOError:
                    port.dropped("full", segments, length)
                except OSError:
                    port.dropped("gone", segments, length)
            for port in others:
                port.send(frame, segments, length)
        src.rx_frames += count
        src.rx_bytes += size_sum
        self.frames += count
        self.bytes += size_sum
        self.sample_budget = budget

    def stats(self) -> dict:
        return {
            "hub": self.name,
            "capture": self.capture.stats() if self.capture else None,
            "frames": self.frames,
            "bytes": self.bytes,
            "drops": sum(p.drops for p in self.ports),
            "protocols": dict(zip(PROTOCOL_NAMES, self.protocols, strict=True)),
            "ports": {p.name: p.stats() for p in self.ports},
        }

    def take_samples(self) -> list[Sample]:
        out = list(self.samples)
        self.samples.clear()
        self.sample_budget = SAMPLES_PER_TICK
        return out
