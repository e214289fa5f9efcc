"""Hubs the kernel forwards: the fast path.

A hub whose ports are all namespace guests' NICs, with no impairment on its
links, needs nothing only the worker can do, so the kernel floods its frames:
a Linux bridge named after the hub, with learning off on every port (an
empty forwarding table floods every frame to every port but its source:
QEMU's hub), multicast snooping off (a multicast frame reaches every port),
netfilter off, and every group address a bridge may pass passed. Each guest
NIC is a veth: the guest's end (eth0, eth1, ...) in its namespace, the
hub's end in the lab's namespace, a port of that bridge.

The panes see what they see of the worker's hubs. Per port, an eBPF socket
filter (lab/bpf.py) on a packet socket bound to the hub's end counts each
frame the guest sends (wire frames, bytes, protocols) and keeps a few whole
frames per tick for the samples, or every frame while a capture runs; the
device's counters give the drops: the hub's end's tx_dropped what the hub
could not hand the guest (`full`; `gone` while the guest's interface is
down, with what the bridge then floods to no one), the guest's end's
tx_dropped (lab/stats.py) what the guest could not hand the hub
(`guest-queue`). A pulled cable is the port's own state: into the hub
(down_in) a locked port, which with learning off takes no frame in; out of
it (down_out) flooding to the port off; both ways the hub's end down, so the
guest sees no carrier. What a pulled cable drops is counted as the worker
counts it: the frames the guest sent meanwhile, and what the hub flooded;
a running capture has them, marked dropped.

No loop guard: a guest cannot bridge two NICs of one hub unless someone makes
a bridge inside it by hand. Both ways down, the hub's end is down and its
socket sees nothing: the capture misses what the guest sends then (the
statistics count it, from the guest's device)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import bpf, netns, sysctl
from qnet_tui.lab.capture import Captures
from qnet_tui.lab.ports import (
    BATCH,
    LINK_DOWN,
    ND_ADVERT,
    ND_SOLICIT,
    PROTOCOL_NAMES,
    SAMPLE_BYTES,
    SAMPLES_PER_TICK,
    WATCHED,
    Hub,
    Port,
    Sample,
)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_BPF = 50
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUXDATA = struct.Struct("=IIIHHHH")
READ_SIZE = 65536 + 64
# Every group address a bridge may forward: all but 802.3x pause, slow
# protocols (LACP) and 802.1X, which the kernel never passes.
GROUP_FWD_MASK = 0xFFF8


class KernelHubError(OSError):
    pass


def bridge_options() -> dict[str, int]:
    return {
        "br_stp_state": 0,
        "br_mcast_snooping": 0,
        "br_group_fwd_mask": GROUP_FWD_MASK,
        "br_nf_call_iptables": 0,
        "br_nf_call_ip6tables": 0,
        "br_nf_call_arptables": 0,
    }


def quiet(ns: str, ifname: str) -> None:
    """No IPv6 on the hub's own devices: a link-local address would have the
    bridge and its ports send router solicitations and MLD reports to the
    guests, frames no QEMU hub ever makes."""
    sysctl.write(ns, f"net/ipv6/conf/{ifname}/disable_ipv6", "1")


class VethPort(Port):
    """A guest NIC's veth, seen from the hub's end."""

    kind = "veth"

    def __init__(self, name: str, index: int, sock: socket.socket, watch: bpf.PortFilter) -> None:
        super().__init__(name)
        self.index = index  # the hub's end, in the lab's namespace
        self.sock = sock
        self.fd = sock.fileno()
        self.watch = watch
        self.seen_frames = self.seen_bytes = 0  # the filter's counts when last read
        self.seen_protocols = [0] * len(PROTOCOL_NAMES)
        self.tx_dropped = 0  # the hub's end's, when last read

    @classmethod
    def open(cls, name: str, ns: str, index: int) -> VethPort:
        watch = bpf.PortFilter.make(SAMPLE_BYTES)
        try:
            with netns.inside(ns):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # what the hub floods out is another's
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)  # the frame's length, and a VLAN tag taken off
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, watch.program)
                sock.bind((name, 0))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
        except OSError:
            watch.close()
            raise
        watch.allow(SAMPLES_PER_TICK, False, WATCHED)
        return cls(name, index, sock, watch)

    def send(self, frame: bytes, segments: int, length: int) -> None:
        try:
            self.sock.send(frame)
        except BlockingIOError:
            self.dropped("full", segments, length)
        except OSError:
            self.dropped("gone", segments, length)

    def on_readable(self) -> None:
        """The frames the filter kept: samples, and a running capture's."""
        hub = self.hub
        for _ in range(BATCH):
            try:
                frame, ancillary, _flags, _addr = self.sock.recvmsg(READ_SIZE, socket.CMSG_SPACE(_AUXDATA.size))
            except OSError:  # EAGAIN: drained
                return
            length = len(frame)
            for level, kind, data in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
                    status, length, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(data)
                    if status & TP_STATUS_VLAN_VALID:  # the device took the tag off: put it back
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                        frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
                        length += 4
            if isinstance(hub, KernelHub):
                hub.took(self, frame, length)

    def close(self) -> None:
        if self.fd >= 0:
            self.sock.close()
            self.watch.close()
            self.fd = -1


class KernelHub(Hub):
    """A hub the kernel floods for; the worker only counts and samples."""

    forwarding = "kernel"

    def __init__(self, name: str, vlan: int | None, ns: str) -> None:
        self._capture = None
        super().__init__(name, vlan)
        self.ns = ns
        self.ipr = netns.iproute(ns)
        try:
            self.ipr.link("add", ifname=name, kind="bridge", **bridge_options())
            self.index = self.ipr.link_lookup(ifname=name)[0]
            quiet(ns, name)
            self.ipr.link("set", index=self.index, state="up")
        except (NetlinkError, OSError) as exc:
            self.ipr.close()
            raise KernelHubError(getattr(exc, "code", 0) or 0, f"hub {name}: cannot make its bridge: {exc}") from None

    # Hub.forward is never called: the kernel forwards.

    @property
    def capture(self) -> Captures | None:  # Hub's attribute, a property here: the filters follow it
        return self._capture

    @capture.setter
    def capture(self, value: Captures | None) -> None:
        self._capture = value
        for port in self.ports:
            if isinstance(port, VethPort) and port.fd >= 0:
                port.watch.allow(SAMPLES_PER_TICK, value is not None, WATCHED)

    def attach(self, port: Port) -> None:
        assert isinstance(port, VethPort)
        self.refresh()
        super().attach(port)
        self.ipr.link("set", index=port.index, master=self.index)
        self.ipr.brport("set", index=port.index, learning=0)
        self._port_state(port)
        port.watch.allow(SAMPLES_PER_TICK, self._capture is not None, WATCHED)

    def detach(self, port: Port) -> None:
        self.refresh()
        super().detach(port)
        if isinstance(port, VethPort) and port.fd >= 0:
            with contextlib.suppress(NetlinkError):  # the device went with its guest
                self.ipr.link("set", index=port.index, master=0)

    def took(self, port: VethPort, frame: bytes, length: int) -> None:
        """A frame the filter kept. While capturing, what a pulled cable drops
        goes into the capture with its reason, as the worker's hubs put it."""
        capture = self._capture
        if port.down_in:  # the locked port drops it
            if capture is not None:
                capture.dropped(port.name, memoryview(frame), LINK_DOWN, self.way(port, out=False), outbound=False)
            return
        if capture is not None:
            view = memoryview(frame)
            capture.write(port.name, view)
            for other in self.ports:
                if other.down_out and other is not port:
                    capture.dropped(other.name, view, LINK_DOWN, self.way(other, out=True))
        ethertype = frame[12] << 8 | frame[13] if len(frame) >= 14 else 0
        if ethertype == 0x0806 or (
            ethertype == 0x86DD and len(frame) > 54 and frame[20] == 58 and ND_SOLICIT <= frame[54] <= ND_ADVERT
        ):
            self.watched.append((port.name, frame[:SAMPLE_BYTES]))
        if self.sample_budget > 0:
            self.sample_budget -= 1
            self.samples.append(Sample(time.time(), port.name, frame[:SAMPLE_BYTES], length))

    def refresh(self) -> None:
        """Counters as the kernel has them now (each statistics tick, and
        before anything that snapshots them)."""
        ports = [p for p in self.ports if isinstance(p, VethPort) and p.fd >= 0]
        taken: dict[str, tuple[int, int]] = {}  # what each port handed the hub since the last read
        for port in ports:
            counts = port.watch.counts()
            frames, size = counts[bpf.FRAMES] - port.seen_frames, counts[bpf.BYTES] - port.seen_bytes
            port.seen_frames, port.seen_bytes = counts[bpf.FRAMES], counts[bpf.BYTES]
            protocols = counts[2:]
            if port.down_in:  # the locked port took none of them in
                port.drop_link_in += frames
            else:
                taken[port.name] = frames, size
                port.rx_frames += frames
                port.rx_bytes += size
                self.frames += frames
                self.bytes += size
                for i, (now, seen) in enumerate(zip(protocols, port.seen_protocols, strict=True)):
                    self.protocols[i] += now - seen
            port.seen_protocols = list(protocols)
        flooded = sum(f for f, _ in taken.values()), sum(b for _, b in taken.values())
        for port, carrier, tx_dropped in self._devices(ports):
            new, port.tx_dropped = tx_dropped - port.tx_dropped, tx_dropped
            if carrier:  # the guest's interface is up: a frame it could not take met a full queue
                port.drop_full += new
                continue
            port.drop_gone += new
            if not port.down_out:
                # The guest's interface is down: the bridge floods nothing to its port, and the
                # worker's hubs count what they could not send it as `gone`.
                own = taken.get(port.name, (0, 0))
                port.drop_gone += flooded[0] - own[0]
                port.drop_bytes += flooded[1] - own[1]

    def _devices(self, ports: list[VethPort]) -> list[tuple[VethPort, bool, int]]:
        """Each port's hub end: carrier (the guest's end is up), tx_dropped."""
        indices = {port.index: port for port in ports}
        if not indices:
            return []
        try:
            found = self.ipr.get_links(*indices)
        except (NetlinkError, OSError):
            return []  # going (the lab stops): keep the last counts
        out = []
        for link in found:
            port, counters = indices.get(link["index"]), link.get_attr("IFLA_STATS64")
            if port is not None and counters is not None and not port.down_out:
                out.append((port, bool(link.get_attr("IFLA_CARRIER")), counters["tx_dropped"]))
        return out

    def set_down(self, port: Port, down_in: bool, down_out: bool) -> None:
        self.refresh()
        super().set_down(port, down_in, down_out)
        self._port_state(port)

    def _port_state(self, port: Port) -> None:
        flood = 0 if port.down_out else 1
        self.ipr.brport(
            "set",
            index=port.index,
            locked=1 if port.down_in else 0,
            unicast_flood=flood,
            mcast_flood=flood,
            bcast_flood=flood,
        )

    def set_carrier(self, port: VethPort, up: bool) -> None:
        """Both ways down: the hub's end goes down, and the guest's end loses carrier."""
        self.ipr.link("set", index=port.index, state="up" if up else "down")

    def check_loops(self, now: float) -> list[tuple[str, str]]:
        return []

    def gather_conversations(self, now: float) -> None:
        for port in self.ports:
            if isinstance(port, VethPort):
                port.convs = port.watch.conversations()
        super().gather_conversations(now)

    def take_samples(self) -> list[Sample]:
        out = sorted(super().take_samples(), key=lambda s: s.time)  # several sockets: in time order
        for port in self.ports:
            if isinstance(port, VethPort) and port.fd >= 0:
                port.watch.allow(SAMPLES_PER_TICK, self._capture is not None, WATCHED)
        return out

    def stats(self) -> dict:
        self.refresh()
        return super().stats()

    def close(self) -> None:
        """The bridge goes (its ports' devices are their guests')."""
        with contextlib.suppress(NetlinkError):  # gone with the namespace
            self.ipr.link("del", index=self.index)
        self.ipr.close()
