"""Ports: the places frames enter and leave the worker (tap fds and sockets),
and the hubs that flood between them.

This is the forwarding path. It is written for per-frame cost: counters are
plain integer attributes, each ready fd is drained in a batch, and nothing
here decodes more of a frame than its EtherType and IP protocol byte.

Loops. Two sockets of a hub joined to each other, or a bridge with two taps
on one hub, send every frame the hub floods back into it, forever. A hub
remembers the group-addressed frames (broadcast, multicast: the ones every
loop carries first, an ARP or an IPv6 neighbour solicitation) it forwarded in
the last LOOP_WINDOW_S; unicast frames cost one bit test. The same frame
entering again through another port than the first time is a repeat (a guest
repeating itself enters through its own port, and its ARP retries are a
second apart); LOOP_REPEATS repeats through one port within LOOP_COUNT_S cut
that port: frames from it and to it are dropped and counted as `loop`, which
breaks the loop. A cut port is re-tested after LOOP_HOLD_S with one probe
frame sent out of it alone: if the probe comes back through a port that is
not cut, the loop persists and the port stays cut twice as long (up to
LOOP_HOLD_MAX_S); if not, it forwards again. Probing instead of just
reopening keeps a loop that carries only unicast from storming unseen."""

from __future__ import annotations

import itertools
import os
import struct
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING

from qnet_tui.lab.capture import Captures, Sink
from qnet_tui.lab.conversations import SEGMENTS_SHIFT, Conversations
from qnet_tui.lab.impair import NONE as NO_IMPAIRMENT
from qnet_tui.lab.tap import VNET_HDR_LEN

if TYPE_CHECKING:
    from qnet_tui.lab.linkimpair import Egress, Ingress

BATCH = 64  # frames drained from one fd before the others get their turn
# A tap whose last drain found one frame, read again later than this after
# its last lone frame, gets one read and no more (see TapPort.frames).
SPARSE_GAP_S = 0.001
READ_SIZE = 65536 + VNET_HDR_LEN + 64
SAMPLES_PER_TICK = 20  # decoded-frame samples a hub keeps per statistics tick
SAMPLE_BYTES = 256  # enough for every header scapy shows in a summary
# ARP and IPv6 neighbour discovery frames a hub keeps for the address checks
# (lab/checks.py) between two ticks: all of them, in any lab not under an ARP storm.
WATCHED = 256
ND_SOLICIT, ND_ADVERT = 135, 136  # ICMPv6 types

# Protocol counters, by index into Hub.protocols.
ARP, IPV4, IPV6, ICMP, TCP, UDP, OTHER = range(7)
PROTOCOL_NAMES = ("arp", "ipv4", "ipv6", "icmp", "tcp", "udp", "other")
_L4 = [-1] * 256
_L4[1] = _L4[58] = ICMP  # ICMP, ICMPv6
_L4[6] = TCP
_L4[17] = UDP

# Conversation keys of TCP and UDP (lab/conversations.py): the MACs, then IPv4's version and
# header length, fragment field, protocol, addresses and ports; IPv6's next header, addresses
# and ports; a frame with an 802.1Q tag has it skipped. Counts per key: wire frames above
# SEGMENTS_SHIFT bits, bytes below, in one int.
_V4 = struct.Struct("!12s2xB5xHxB2x12s").unpack_from
_V4_TAGGED = struct.Struct("!12s6xB5xHxB2x12s").unpack_from
_V6 = struct.Struct("!12s2x6xBx36s").unpack_from
_V6_TAGGED = struct.Struct("!12s6x6xBx36s").unpack_from

LOOP_WINDOW_S = 0.05  # a copy back within this is a repeat: loops return in microseconds to ms
LOOP_REPEATS = 16  # repeats through one port within LOOP_COUNT_S that cut it
LOOP_COUNT_S = 1.0
LOOP_TABLE = 1024  # group-addressed frames a hub remembers; forgotten all at once when full
LOOP_HOLD_S = 5.0  # a cut port is re-tested after this, doubling while the loop persists
LOOP_HOLD_MAX_S = 60.0
LOOP_PROBE_WAIT_S = 0.1  # how long a probe has to come back
# The probe: broadcast, from a locally administered address, EtherType 0x9000
# (Configuration Testing Protocol, "loopback"): made for exactly this, and
# nothing a guest answers.
PROBE_HEADER = b"\xff" * 6 + bytes.fromhex("02716e657400") + b"\x90\x00"
LINK_DOWN = "link-down"  # the drop reason of a pulled cable


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
    # Its frames come from another machine of the lab (lab/vxlan.py), where they
    # entered the lab and were counted: the hub forwards them but leaves them out
    # of its totals, protocols, conversations, samples and checks.
    remote = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.hub: Hub | None = None
        self.vnet = False  # frames carry a virtio-net header
        self.rx_frames = self.rx_bytes = 0
        self.drop_full = self.drop_gone = self.drop_oversized = 0  # frames this port could not send
        self.drop_mtu = 0  # frames bigger than the path to a remote port allows (lab/vxlan.py)
        self.drop_bytes = 0
        self.drop_malformed = 0  # frames received that were not Ethernet
        self.drop_lost = 0  # super-frames from another machine that did not arrive whole (lab/vxlan.py)
        self.drop_loop_in = 0  # frames received while the port was cut for a loop
        self.drop_loop_out = self.drop_loop_out_bytes = 0  # frames the hub flooded while it was cut (closed spells)
        self.drop_guest_queue = 0  # frames its device could not queue to the worker (the device's tx_dropped)
        self.tx_dropped = 0  # the device's tx_dropped when last read
        # What its hub had flooded before it joined (see tx_frames): a port
        # added to or moved into a running hub counts from then on.
        self.base_frames = self.base_bytes = 0
        self.kept_frames = self.kept_bytes = 0  # what it had sent when it left its last hub
        self.connected = True
        # A pulled cable (lab/links.py), per direction: frames from this port
        # into its hub, or from the hub out to it, dropped as `link-down`.
        self.down_in = self.down_out = False
        self.drop_link_in = 0
        self.drop_link_out = self.drop_link_out_bytes = 0  # closed spells
        self.down_frames = self.down_bytes = 0  # what the hub had flooded to it when out went down
        # Loop guard state; see the module's docstring.
        self.looped = False
        self.loop_reported = False
        self.repeats = 0
        self.repeat_since = 0.0
        self.cut_until = 0.0
        self.loop_hold = LOOP_HOLD_S
        self.cut_frames = self.cut_bytes = 0  # the hub's counters when it was cut
        # Impairments of the link at this port (lab/linkimpair.py): hooks out of
        # the hub and into it, None when off. What they drop is no real drop.
        self.egress: Egress | None = None
        self.ingress: Ingress | None = None
        self.egress_spec = self.ingress_spec = NO_IMPAIRMENT
        self.drop_impair_loss = self.drop_impair_queue = 0
        self.impair_tx = self.impair_tx_bytes = 0  # out of the hub: duplicates less drops
        # Conversations since the statistics last took them: the frame's key (see
        # Hub.forward) -> wire frames << SEGMENTS_SHIFT | bytes. Emptied each tick.
        self.convs: dict[bytes | tuple, int] = {}

    def send(self, frame: bytes, segments: int, length: int) -> None:
        """Send one frame; count it in drop_* if it cannot go."""
        raise NotImplementedError

    def device_dropped(self, tx_dropped: int) -> None:
        """The kernel's count of frames its device (a tap) dropped on their way
        to the worker, read now: while the cable into the hub is pulled (the
        guest's interface has no carrier) those are link-down drops, not a
        full queue."""
        new, self.tx_dropped = tx_dropped - self.tx_dropped, tx_dropped
        if self.down_in:
            self.drop_link_in += new
        else:
            self.drop_guest_queue += new

    def dropped(self, reason: str, segments: int, length: int) -> None:
        setattr(self, f"drop_{reason}", getattr(self, f"drop_{reason}") + segments)
        self.drop_bytes += length

    # -- statistics ------------------------------------------------------------

    @property
    def drop_loop(self) -> int:
        """Frames from and to this port dropped while it was cut for a loop."""
        return self.drop_loop_in + self._loop_out()[0]

    def _loop_out(self) -> tuple[int, int]:
        frames, size = self.drop_loop_out, self.drop_loop_out_bytes
        # A cut port gets nothing the hub floods: all of it is dropped (as link-down first, if its link is down).
        if self.looped and not self.down_out and self.hub:
            frames += self.hub.frames - self.cut_frames
            size += self.hub.bytes - self.cut_bytes
        return frames, size

    def _link_out(self) -> tuple[int, int]:
        frames, size = self.drop_link_out, self.drop_link_out_bytes
        if self.down_out and self.hub:  # everything the hub floods to it now is dropped
            frames += self.hub.frames - self.rx_frames - self.down_frames
            size += self.hub.bytes - self.rx_bytes - self.down_bytes
        return frames, size

    @property
    def drop_link(self) -> int:
        return self.drop_link_in + self._link_out()[0]

    @property
    def drops(self) -> int:
        return (
            self.drop_link
            + self.drop_full
            + self.drop_gone
            + self.drop_oversized
            + self.drop_mtu
            + self.drop_malformed
            + self.drop_lost
            + self.drop_loop
            + self.drop_guest_queue
        )

    @property
    def tx_frames(self) -> int:
        hub = self.hub
        if hub is None:
            return self.kept_frames
        not_sent = (
            self.drop_full
            + self.drop_gone
            + self.drop_oversized
            + self.drop_mtu
            + self._loop_out()[0]
            + self._link_out()[0]
        )
        return hub.frames - self.base_frames - self.rx_frames - not_sent + self.impair_tx

    @property
    def tx_bytes(self) -> int:
        if self.hub is None:
            return self.kept_bytes
        return (
            self.hub.bytes
            - self.base_bytes
            - self.rx_bytes
            - self.drop_bytes
            - self._loop_out()[1]
            - self._link_out()[1]
            + self.impair_tx_bytes
        )

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
                "mtu": self.drop_mtu,
                "malformed": self.drop_malformed,
                "lost": self.drop_lost,
                "loop": self.drop_loop,
                "guest-queue": self.drop_guest_queue,
                "impair-loss": self.drop_impair_loss,
                "impair-queue": self.drop_impair_queue,
                "link-down": self.drop_link,
            },
            "looped": self.looped,
        }


class TapPort(Port):
    """A tap device's fd: a tap node's, or the one behind a guest NIC's eth0."""

    kind = "tap"

    def __init__(self, name: str, fd: int, vnet: bool) -> None:
        super().__init__(name)
        self.fd = fd
        self.vnet = vnet
        self.sparse = False  # its last drain found one frame (or none)
        self.lone_read = 0.0  # when it last read one frame without draining

    def send(self, frame: bytes, segments: int, length: int) -> None:
        try:
            os.write(self.fd, frame)
        except BlockingIOError:
            self.dropped("full", segments, length)
        except OSError:
            self.dropped("gone", segments, length)

    def frames(self) -> Iterator[bytes]:
        """What is queued on the tap, up to a batch.

        Draining ends with a read that finds the tap empty, and on sparse
        traffic (a ping) that read sits between a request's write and the
        reply's read: ~17 us on cold caches (benchmarks/LATENCY.md). So a
        tap whose last drain found one frame gets one read, and epoll
        (level-triggered) says if more is queued; ready again within
        SPARSE_GAP_S of that lone read, it is a burst, and is drained as
        before."""
        fd, read = self.fd, os.read
        if self.sparse:
            now = monotonic()
            if now - self.lone_read > SPARSE_GAP_S:
                self.lone_read = now
                try:
                    frame = read(fd, READ_SIZE)
                except OSError:  # nothing after all, or EIO: as below
                    return
                yield frame
                return
            self.sparse = False
        for count in range(BATCH):
            try:
                frame = read(fd, READ_SIZE)
            except OSError:  # EAGAIN: drained; EIO and the like: a later read tells again
                self.sparse = count <= 1
                return
            yield frame

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

    forwarding = "worker"  # who floods its frames (lab/kernelhub.py: the kernel)

    def __init__(self, name: str, vlan: int | None) -> None:
        self.name = name
        self.vlan = vlan
        self.ports: list[Port] = []
        self.frames = self.bytes = 0  # everything flooded: what each port's tx is reckoned from
        self.remote_frames = self.remote_bytes = 0  # of which from remote ports: not this machine's to count
        self.protocols = [0] * len(PROTOCOL_NAMES)
        # Where the forwarding path counts a remote port's frames: counted, never read.
        self._remote_protocols = [0] * len(PROTOCOL_NAMES)
        self._remote_watched: deque[tuple[str, bytes]] = deque(maxlen=1)
        self.samples: deque[Sample] = deque(maxlen=SAMPLES_PER_TICK * 4)
        self.sample_budget = SAMPLES_PER_TICK
        self.capture: Captures | None = None  # while anything captures it (lab/capture.py)
        self.conversations = Conversations()
        self.watched: deque[tuple[str, bytes]] = deque(maxlen=WATCHED)  # (port, frame): ARP, ND
        # Per source: the tap fds (written directly) and other ports to flood to.
        self._outs: dict[int, tuple[list[tuple[int, Port]], list[Port]]] = {}
        # Loop guard: hash of a group-addressed frame -> (port it first came in through, when last seen).
        self.seen: dict[int, tuple[Port, float]] = {}
        self.probe: bytes | None = None  # the loop probe out, if any, and whom it tests
        self.probe_key: int | None = None
        self.probe_port: Port | None = None
        self.probe_sent = 0.0
        self.probe_back = False

    def attach(self, port: Port) -> None:
        """Take port in. One that was in another hub (a running lab changed)
        keeps its counters: what it sent there stays counted as sent."""
        if port.hub is not None:
            port.hub.detach(port)
        sent = port.kept_frames, port.kept_bytes
        port.hub = self
        port.base_frames = port.base_bytes = 0
        # Chosen so that tx_frames and tx_bytes read `sent` now, and grow from here.
        port.base_frames, port.base_bytes = port.tx_frames - sent[0], port.tx_bytes - sent[1]
        self.ports.append(port)
        self._outs.clear()

    def detach(self, port: Port) -> None:
        """Let port go (a running lab changed): the loop guard and a pulled
        cable's state were this hub's, and go with it."""
        if port.down_in or port.down_out:
            self.set_down(port, False, False)
        if port.looped:
            self.restore(port)
        if self.probe_port is port:
            self.probe = self.probe_key = self.probe_port = None
        self.seen.clear()  # it may name the port
        self.ports.remove(port)
        self._outs.clear()
        port.kept_frames, port.kept_bytes = port.tx_frames, port.tx_bytes
        port.hub = None

    def replan(self) -> None:
        """A port's egress hook came or went: flood lists are made again."""
        self._outs.clear()

    def _outs_for(self, src: Port) -> tuple[list[tuple[int, Port]], list[Port]]:
        others = [p for p in self.ports if p is not src and not p.looped and not p.down_out]
        outs = (
            [(p.fd, p) for p in others if type(p) is TapPort and p.egress is None],
            [p.egress or p for p in others if type(p) is not TapPort or p.egress is not None],
        )
        self._outs[id(src)] = outs
        return outs

    def forward(self, src: Port, frames: Iterable[bytes], impaired: bool = False) -> None:
        """Flood frames from src. The per-frame path: counts in locals, one
        write per destination tap. impaired: the frames come out of src's
        ingress impairment, due now."""
        if src.ingress is not None and not impaired:
            src.ingress.take(frames)
            return
        if src.looped:
            self._drop_looped(src, frames)
            return
        if src.down_in:  # one test per batch: an up link costs nothing per frame
            off0 = VNET_HDR_LEN if src.vnet else 0
            if self.capture is not None:
                frames = list(frames)
                self._capture_drops(frames, off0, src.name, self.way(src, out=False), out=False)
            src.drop_link_in += sum(_segments(frame, off0) for frame in frames)
            return
        taps, others = self._outs.get(id(src)) or self._outs_for(src)
        off0 = VNET_HDR_LEN if src.vnet else 0
        protocols, budget, write, capture = self.protocols, self.sample_budget, os.write, self.capture
        watched, remote = self.watched, src.remote
        if remote:  # one test per batch: counted where they entered the lab (Port.remote)
            protocols, budget, watched = self._remote_protocols, 0, self._remote_watched
        # While capturing: the directions out of this hub a pulled cable drops every frame on.
        down_ways = (
            [(p.name, self.way(p, out=True)) for p in self.ports if p.down_out and p is not src]
            if capture is not None
            else ()
        )
        seen, probe_key, now = self.seen, self.probe_key, 0.0
        convs = src.convs
        conv_get, last_key, pending = convs.get, None, 0
        count = size_sum = 0
        looping = None  # the frame that made src a loop's port
        frames = iter(frames)
        for frame in frames:
            length = len(frame) - off0
            if length < 14:
                src.drop_malformed += 1
                continue
            if frame[off0] & 1:  # a group address: remembered, to find loops (see the module's docstring)
                group = hash(frame[off0:] if off0 else frame)
                if group == probe_key and frame[off0:] == self.probe:
                    self.probe_back = True  # the loop through the probed port persists
                    continue  # the worker's own frame: not counted, not forwarded
                if not now:
                    now = monotonic()
                first = seen.get(group)
                if first is None or now - first[1] > LOOP_WINDOW_S:
                    if len(seen) >= LOOP_TABLE:
                        seen.clear()
                    seen[group] = (src, now)
                else:
                    seen[group] = (first[0], now)
                    if first[0] is not src and self._repeat(src, now):
                        looping = frame
                        break
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
            # The frame's conversation, counted under a key of its own bytes (lab/conversations.py
            # reads it): for TCP and UDP over IPv4 and IPv6 its header fields in one C call.
            if ethertype == 0x0800:
                protocols[IPV4] += segments
                l4 = _L4[frame[off + 23]] if len(frame) > off + 23 else -1
                if l4 >= 0:
                    protocols[l4] += segments
                if l4 > ICMP and len(frame) >= off + 38:
                    key = _V4(frame, off0) if off == off0 else _V4_TAGGED(frame, off0)
                else:
                    key = frame[off0 : off + 14] + frame[off + 23 : off + 24] + frame[off + 26 : off + 34]
            elif ethertype == 0x86DD:
                protocols[IPV6] += segments
                l4 = _L4[frame[off + 20]] if len(frame) > off + 20 else -1
                if l4 >= 0:
                    protocols[l4] += segments
                if l4 > ICMP and len(frame) >= off + 58:
                    key = _V6(frame, off0) if off == off0 else _V6_TAGGED(frame, off0)
                else:
                    key = frame[off0 : off + 14] + frame[off + 20 : off + 21] + frame[off + 22 : off + 54]
                    if l4 == ICMP and len(frame) > off + 54 and ND_SOLICIT <= frame[off + 54] <= ND_ADVERT:
                        watched.append((src.name, frame[off0 : off0 + SAMPLE_BYTES]))
            else:
                if ethertype == 0x0806:
                    protocols[ARP] += segments
                    watched.append((src.name, frame[off0 : off0 + SAMPLE_BYTES]))
                else:
                    protocols[OTHER] += segments
                key = frame[off0 : off + 14]
            if key == last_key:  # a run of one conversation's frames (a flood, a TCP window) adds up here
                pending += segments << SEGMENTS_SHIFT | length
            else:
                if last_key is not None:
                    convs[last_key] = conv_get(last_key, 0) + pending
                last_key, pending = key, segments << SEGMENTS_SHIFT | length
            if budget:
                budget -= 1
                self.samples.append(Sample(time.time(), src.name, frame[off0 : off0 + SAMPLE_BYTES], length))
            if capture is not None:
                view = memoryview(frame)[off0:]
                capture.write(src.name, view)
                for port_name, way in down_ways:
                    capture.dropped(port_name, view, LINK_DOWN, way)
            for fd, port in taps:
                try:
                    write(fd, frame)
                except BlockingIOError:
                    port.dropped("full", segments, length)
                except OSError:
                    port.dropped("gone", segments, length)
            for port in others:
                port.send(frame, segments, length)
        if last_key is not None:
            convs[last_key] = conv_get(last_key, 0) + pending
        src.rx_frames += count
        src.rx_bytes += size_sum
        self.frames += count
        self.bytes += size_sum
        if remote:
            self.remote_frames += count
            self.remote_bytes += size_sum
        else:
            self.sample_budget = budget
        if looping is not None:
            self.cut(src, now)
            self._drop_looped(src, itertools.chain((looping,), frames))

    def way(self, port: Port, out: bool) -> str:
        """A direction through this hub at port, for people: hub1 -> vm2 (out
        of the hub to port) or vm2 -> hub1; in a pair, the other end's name."""
        other = self.name
        if self.vlan is None and len(self.ports) == 2:
            other = next((p.name for p in self.ports if p is not port), other)
        return f"{other} -> {port.name}" if out else f"{port.name} -> {other}"

    def _capture_drops(self, frames: Iterable[bytes], off0: int, port: str, way: str, out: bool) -> None:
        """Frames an emulated fault dropped at port, into the running captures with their reason."""
        for frame in frames:
            self.capture.dropped(port, memoryview(frame)[off0:], LINK_DOWN, way, outbound=out)

    def describe(self) -> str:
        """The hub for people (a capture's interfaces say it): hub1, VLAN 1; vm1-tap0, peer pair."""
        return f"{self.name}, VLAN {self.vlan}" if self.vlan is not None else f"{self.name}, peer pair"

    def add_capture(self, sink: Sink) -> None:
        """Start sink: its header and an interface per port now, frames from now on."""
        sink.start(self.describe(), [p.name for p in self.ports])
        captures = self.capture or Captures()
        captures.sinks.append(sink)
        self.capture = captures  # (a kernel hub's filters follow this)

    def remove_capture(self, sink: Sink) -> None:
        """Take sink off (its owner closes it); None again when nothing captures."""
        captures = self.capture
        if captures is None or sink not in captures.sinks:
            return
        captures.sinks.remove(sink)
        if captures.file is sink:
            captures.file = None
        if not captures.sinks:
            self.capture = None

    # -- the loop guard (off the per-frame path but for _repeat) -----------------------

    def _repeat(self, port: Port, now: float) -> bool:
        """Count a repeat through port; True when that makes it a loop's."""
        if now - port.repeat_since > LOOP_COUNT_S:
            port.repeat_since, port.repeats = now, 0
        port.repeats += 1
        return port.repeats >= LOOP_REPEATS

    def _drop_looped(self, port: Port, frames: Iterable[bytes]) -> None:
        off0 = VNET_HDR_LEN if port.vnet else 0
        port.drop_loop_in += sum(_segments(frame, off0) for frame in frames)

    def cut(self, port: Port, now: float) -> None:
        """Stop forwarding from and to port: it closes a loop."""
        port.looped = True
        port.cut_until = now + port.loop_hold
        port.cut_frames, port.cut_bytes = self.frames, self.bytes
        self._outs.clear()

    def restore(self, port: Port) -> None:
        port.drop_loop_out, port.drop_loop_out_bytes = port._loop_out()
        port.looped = port.loop_reported = False
        port.repeats = 0
        port.loop_hold = LOOP_HOLD_S
        self._outs.clear()

    # -- a pulled cable (lab/links.py decides which port and direction) ---------------

    def set_down(self, port: Port, down_in: bool, down_out: bool) -> None:
        """Drop frames from port (down_in) and to it (down_out) as `link-down`."""
        if down_out != port.down_out:
            if down_out:
                port.down_frames, port.down_bytes = self.frames - port.rx_frames, self.bytes - port.rx_bytes
                # A cut port's loop spell pauses: what is flooded to it now is counted once, as link-down.
                port.drop_loop_out, port.drop_loop_out_bytes = port._loop_out()
            else:
                port.drop_link_out, port.drop_link_out_bytes = port._link_out()
                port.cut_frames, port.cut_bytes = self.frames, self.bytes
            port.down_out = down_out
        port.down_in = down_in
        self._outs.clear()

    def check_loops(self, now: float) -> list[tuple[str, str]]:
        """Called every statistics tick: judge the last probe, report new cuts,
        probe the next cut port that is due. Returns (level, message) to log."""
        events = []
        port = self.probe_port
        if port is not None and now - self.probe_sent >= LOOP_PROBE_WAIT_S:
            self.probe = self.probe_key = self.probe_port = None
            if self.probe_back:
                port.loop_hold = min(port.loop_hold * 2, LOOP_HOLD_MAX_S)
                port.cut_until = now + port.loop_hold
                events.append(
                    ("info", f"{self.name}: port {port.name} still closes a loop; re-tested in {port.loop_hold:g} s")
                )
            else:
                self.restore(port)
                events.append(("info", f"{self.name}: port {port.name} closes no loop any more; it forwards again"))
        for port in self.ports:
            if port.looped and not port.loop_reported:
                port.loop_reported = True
                events.append(
                    (
                        "warning",
                        f"{self.name}: loop: frames this hub flooded come back in through port {port.name}; "
                        f"{port.name} is cut (its frames are dropped as 'loop') and re-tested in {port.loop_hold:g} s",
                    )
                )
        if self.probe_port is None:
            due = [p for p in self.ports if p.looped and p.cut_until <= now]
            if due:
                self._send_probe(due[0], now)
        return events

    def _send_probe(self, port: Port, now: float) -> None:
        """One broadcast out of port alone; seen coming back through any port
        that is not cut, it says the loop is still there."""
        body = PROBE_HEADER + os.urandom(8) + self.name.encode()[:32]
        body += bytes(max(0, 60 - len(body)))
        self.probe, self.probe_key, self.probe_port = body, hash(body), port
        self.probe_sent, self.probe_back = now, False
        port.send(bytes(VNET_HDR_LEN) + body if port.vnet else body, 1, len(body))

    def stats(self) -> dict:
        return {
            "hub": self.name,
            "forwarding": self.forwarding,
            "capture": self.capture.file.stats() if self.capture and self.capture.file else None,
            "frames": self.frames - self.remote_frames,
            "bytes": self.bytes - self.remote_bytes,
            "drops": sum(p.drops for p in self.ports),
            "protocols": dict(zip(PROTOCOL_NAMES, self.protocols, strict=True)),
            "ports": {p.name: p.stats() for p in self.ports},
        }

    def gather_conversations(self, now: float) -> None:
        """What the ports counted by conversation since the last call, into
        the hub's tables (lab/conversations.py)."""
        for port in self.ports:
            if port.convs:
                counts, port.convs = port.convs, {}
                if not port.remote:  # counted on the machine the frames entered by
                    self.conversations.add(port.name, counts, now)

    def count_conversations(self, now: float) -> None:
        """Each statistics tick: gather, and close the tick (rates, bounds)."""
        self.gather_conversations(now)
        self.conversations.tick(now)

    def take_watched(self) -> list[tuple[str, bytes]]:
        """The ARP and neighbour discovery frames since the last call, with the port each came in by."""
        out = list(self.watched)
        self.watched.clear()
        return out

    def take_samples(self) -> list[Sample]:
        out = list(self.samples)
        self.samples.clear()
        self.sample_budget = SAMPLES_PER_TICK
        return out


def _segments(frame: bytes, off0: int) -> int:
    """The wire frames a frame stands for (a GSO super-frame: several)."""
    if off0 and len(frame) >= off0 + 14 and frame[1] and (gso_size := frame[4] | frame[5] << 8):
        return -(-(len(frame) - off0 - (frame[2] | frame[3] << 8)) // gso_size)
    return 1
