"""Ports: the places frames enter and leave the worker (tap fds and sockets),
and the hubs that flood between them.

This is the forwarding path. It is written for per-frame cost: counters are
plain integer attributes, each ready fd is drained in a batch, and nothing
here decodes more of a frame than its EtherType and IP protocol byte."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

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
    """One end a hub floods to. Subclasses read and write real fds."""

    kind = "port"

    def __init__(self, name: str) -> None:
        self.name = name
        self.hub: Hub | None = None
        self.vnet = False  # frames carry a virtio-net header
        self.rx_frames = self.rx_bytes = 0
        self.tx_frames = self.tx_bytes = 0
        self.drop_full = self.drop_gone = self.drop_oversized = self.drop_malformed = 0
        self.connected = True

    # -- what a hub calls ------------------------------------------------------

    def send(self, frame: bytes, segments: int, length: int) -> None:
        raise NotImplementedError

    # -- statistics ------------------------------------------------------------

    @property
    def drops(self) -> int:
        return self.drop_full + self.drop_gone + self.drop_oversized + self.drop_malformed

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
            self.drop_full += segments
            return
        except OSError:
            self.drop_gone += segments
            return
        self.tx_frames += segments
        self.tx_bytes += length

    def on_readable(self) -> None:
        hub, fd, read = self.hub, self.fd, os.read
        forward = hub.forward
        for _ in range(BATCH):
            try:
                frame = read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                return  # the device went down; a later read tells again
            forward(self, frame)

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

    def attach(self, port: Port) -> None:
        port.hub = self
        self.ports.append(port)

    def forward(self, src: Port, frame: bytes) -> None:
        size = len(frame)
        off = VNET_HDR_LEN if src.vnet else 0
        length = size - off
        if length < 14:
            src.drop_malformed += 1
            return
        segments = 1
        if off and frame[1]:  # gso_type: a TCP super-frame of several wire frames
            hdr_len = frame[2] | frame[3] << 8
            gso_size = frame[4] | frame[5] << 8
            if gso_size:
                segments = -(-(length - hdr_len) // gso_size)
        src.rx_frames += segments
        src.rx_bytes += length
        self.frames += segments
        self.bytes += length
        ethertype = frame[off + 12] << 8 | frame[off + 13]
        if ethertype == 0x8100 and length >= 18:  # 802.1Q tag: look past it
            off += 4
            ethertype = frame[off + 12] << 8 | frame[off + 13]
        protocols = self.protocols
        if ethertype == 0x0800:
            protocols[IPV4] += segments
            if size > off + 23:
                l4 = _L4[frame[off + 23]]
                if l4 >= 0:
                    protocols[l4] += segments
        elif ethertype == 0x86DD:
            protocols[IPV6] += segments
            if size > off + 20:
                l4 = _L4[frame[off + 20]]
                if l4 >= 0:
                    protocols[l4] += segments
        elif ethertype == 0x0806:
            protocols[ARP] += segments
        else:
            protocols[OTHER] += segments
        if self.sample_budget:
            self.sample_budget -= 1
            start = VNET_HDR_LEN if src.vnet else 0
            self.samples.append(Sample(time.time(), src.name, frame[start : start + SAMPLE_BYTES], length))
        for port in self.ports:
            if port is not src:
                port.send(frame, segments, length)

    def stats(self) -> dict:
        return {
            "hub": self.name,
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
