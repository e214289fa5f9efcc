"""Super-frames between two VXLAN endpoints (lab/vxlan.py) on loopback UDP:
a 64 KiB GSO super-frame arrives whole, in chunks sent by one sendmsg (UDP
GSO) or one by one where the kernel refuses that; chunks in any order; a lost
chunk is dropped and counted, and what waits is bounded; a read holding many
datagrams (UDP GRO) is split. The event loop is not run: the test reads for
the endpoint, and the path MTU is set instead of probed."""

from __future__ import annotations

import errno
import random
import select
import socket
import struct
from collections.abc import Iterator

import pytest

from qnet_tui.lab import vxlan
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import Hub, TapPort, _segments
from qnet_tui.lab.tap import VNET_HDR_LEN
from qnet_tui.lab.vxlan import IN_FLIGHT, SUPER_HEAD, UDP_GRO, UDP_SEGMENT, VxlanEndpoint, VxlanPort

LOCAL = "127.0.0.1"
VNI = 7
MSS = 1448
SOL_UDP = 17


def tcp_frame(payload: int, checksum: int = 0) -> bytes:
    """Ethernet + IPv4 + TCP headers (54 bytes) and payload bytes."""
    eth = bytes.fromhex("525400000002525400000001") + b"\x08\x00"
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 1, 0x4000, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    )
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 1, 5 << 4, 0x18, 65535, checksum, 0)
    return eth + ip + tcp + bytes(range(256)) * (payload // 256) + bytes(payload % 256)


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def vnet_header(flags: int, gso_type: int, gso_size: int) -> bytes:
    # flags, gso_type, hdr_len, gso_size, csum_start (the TCP header), csum_offset (its checksum)
    return struct.pack("<BBHHHH", flags, gso_type, 54, gso_size, 34, 16)


def super_frame(payload: int = 65536 - 54) -> bytes:
    """By default the largest: 64 KiB with its headers (two sendmsg calls' worth of chunks)."""
    return vnet_header(1, 1, MSS) + tcp_frame(payload)  # NEEDS_CSUM, GSO TCPv4


def send(side: Side, frame: bytes) -> None:
    """As the hub sends it: with the wire frames it stands for."""
    side.remote.send(frame, _segments(frame, VNET_HDR_LEN), len(frame) - VNET_HDR_LEN)


class Side:
    """One machine: an endpoint, a hub with a tap (a socketpair the test
    reads, as the guest's kernel would) and the remote port to the other."""

    def __init__(self, loop: Loop, logs: list[str], vnet: bool = True) -> None:
        self.endpoint = VxlanEndpoint(loop, lambda level, message: logs.append(message), LOCAL, 0)
        self.endpoint.start()
        self.guest, tap = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self.guest, tap):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setblocking(False)
        self.tap_sock = tap
        self.tap = TapPort("guest", tap.fileno(), vnet)
        self.hub = Hub("hub7", VNI)
        self.hub.attach(self.tap)
        self.vnet = vnet
        self.remote: VxlanPort | None = None

    def join(self, other: Side) -> None:
        self.remote = VxlanPort("vxlan:other", self.endpoint, VNI, LOCAL, other.endpoint.port, self.vnet)
        self.hub.attach(self.remote)
        self.endpoint.add(self.remote)
        self.remote._settle(1500, True)  # a probed path of 1500

    def receive(self, until: int) -> None:
        """Read for the endpoint until its remote port took `until` frames in (or a second passed)."""
        sock = self.endpoint.sock
        for _ in range(200):
            if self.remote.rx_superframes + self.remote.drop_lost >= until:
                return
            if not select.select([sock], [], [], 0.01)[0]:
                if self.remote.rx_superframes + self.remote.drop_lost >= until:
                    return
                continue
            self.endpoint._on_readable(select.EPOLLIN)

    def drain_guest(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.guest.recv(1 << 17))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.endpoint.close()
        self.guest.close()
        self.tap_sock.close()


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Side, Side, list[str]]]:
    monkeypatch.setattr(VxlanPort, "probe", lambda self: None)  # the path is set, not searched
    loop, logs = Loop(), []
    a, b = Side(loop, logs), Side(loop, logs)
    a.join(b)
    b.join(a)
    try:
        yield a, b, logs
    finally:
        a.close()
        b.close()
        loop.close()


class Recorder:
    """A stand-in for an endpoint's socket: what it would send, as datagrams."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def sendmsg(self, parts: list, ancillary: list = (), flags: int = 0, address: tuple | None = None) -> int:
        data = b"".join(bytes(p) for p in parts)
        size = len(data)
        for level, kind, value in ancillary:
            if (level, kind) == (SOL_UDP, UDP_SEGMENT):
                size = struct.unpack("=H", value)[0]
        self.datagrams += [data[i : i + size] for i in range(0, len(data), size)]
        return len(data)


def chunks_of(side: Side, frame: bytes) -> list[bytes]:
    """The datagrams side's remote port sends for frame."""
    real, recorder = side.endpoint.sock, Recorder()
    side.endpoint.sock = recorder
    try:
        send(side, frame)
    finally:
        side.endpoint.sock = real
    return recorder.datagrams


def inject(b: Side, datagrams: list[bytes]) -> None:
    """Datagrams to b's endpoint from LOCAL (the address its remote port expects)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        for d in datagrams:
            s.sendto(d, (LOCAL, b.endpoint.port))


def test_a_64k_super_frame_arrives_whole_in_one_gso_send(pair) -> None:
    a, b, _ = pair
    frame = super_frame()
    send(a, frame)
    assert a.endpoint.udp_gso is True and a.remote.tx_superframes == 1 and a.remote.drops == 0
    b.receive(1)
    assert b.drain_guest() == [frame]  # header and all: the guest's kernel segments it
    assert b.remote.rx_superframes == 1
    assert b.remote.rx_frames == -(-(65536 - 54) // MSS) == 46  # counted as the wire frames it stands for
    assert b.hub.stats()["frames"] == 0  # counted where it entered the lab (a's tap)


def test_chunks_fill_the_path_and_are_taken_in_any_order(pair) -> None:
    a, b, _ = pair
    frame = super_frame()
    datagrams = chunks_of(a, frame)
    assert len(datagrams) == -(-len(frame) // (1500 - 28 - SUPER_HEAD.size))
    assert {len(d) for d in datagrams[:-1]} == {1500 - 28}  # IP 20 + UDP 8: each fills the path MTU
    random.Random(7).shuffle(datagrams)
    inject(b, datagrams)
    b.receive(1)
    assert b.drain_guest() == [frame]
    assert not b.remote.partial and b.remote.drop_lost == 0


def test_a_lost_chunk_drops_its_super_frame_counted_and_bounded(pair) -> None:
    a, b, _ = pair
    first, second = chunks_of(a, super_frame()), chunks_of(a, super_frame(30000))
    inject(b, first[:3] + first[4:] + second)  # the fourth chunk of the first is lost
    b.receive(2)
    assert b.drain_guest() == [super_frame(30000)]
    assert b.remote.drop_lost == 1 and not b.remote.partial
    assert b.remote.stats()["drop_reasons"]["lost"] == 1 and b.remote.drops == 1
    # Only the first chunk of each of many: no more than IN_FLIGHT wait.
    inject(b, [chunks_of(a, super_frame())[0] for _ in range(IN_FLIGHT + 6)])
    b.receive(2 + 6)
    assert len(b.remote.partial) == IN_FLIGHT and b.remote.drop_lost == 1 + 6
    b.remote.expire(max(p.since for p in b.remote.partial.values()) + 2)  # a second later: the rest is lost too
    assert not b.remote.partial and b.remote.drop_lost == 1 + 6 + IN_FLIGHT
    assert b.drain_guest() == []


class NoGso:
    """An endpoint's socket on a kernel without UDP GSO."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.refused = sock, 0

    def sendmsg(self, parts: list, ancillary: list = (), flags: int = 0, address: tuple | None = None) -> int:
        if ancillary:
            self.refused += 1
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        return self.sock.sendmsg(parts, ancillary, flags, address)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_without_udp_gso_the_chunks_go_one_by_one(pair) -> None:
    a, b, logs = pair
    a.endpoint.sock = no_gso = NoGso(a.endpoint.sock)
    frame = super_frame()
    for _ in range(2):
        send(a, frame)
    assert no_gso.refused == 1 and a.endpoint.udp_gso is False  # asked once, remembered
    assert sum("refuses UDP GSO" in m for m in logs) == 1
    b.receive(2)
    assert b.drain_guest() == [frame, frame] and a.remote.tx_superframes == 2


class Reads:
    """An endpoint's socket that keeps the ancillary data of each read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.ancillary = sock, []

    def recvmsg_into(self, buffers: list, size: int) -> tuple:
        got = self.sock.recvmsg_into(buffers, size)
        self.ancillary.append(got[1])
        return got

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_a_read_of_many_datagrams_is_split(pair) -> None:
    _, b, _ = pair
    assert b.endpoint.gro
    b.endpoint.sock = reads = Reads(b.endpoint.sock)
    frames = [bytes.fromhex("525400000002525400000001") + b"\x88\xb5" + bytes([i]) * 86 for i in range(20)]
    header = struct.pack("!II", 0x08000000, VNI << 8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        datagram = len(header) + 100
        s.sendmsg(
            [header + f for f in frames],
            [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", datagram))],
            0,
            (LOCAL, b.endpoint.port),
        )
    select.select([b.endpoint.sock.sock], [], [], 2)
    b.endpoint._on_readable(select.EPOLLIN)
    assert [(SOL_UDP, UDP_GRO, struct.pack("=i", datagram))] in reads.ancillary  # one read held them all
    assert b.drain_guest() == [bytes(VNET_HDR_LEN) + f for f in frames]
    assert b.remote.rx_frames == 20 and b.remote.drop_malformed == 0


def test_a_frame_with_its_checksum_left_to_the_nic(pair) -> None:
    a, b, logs = pair
    # NEEDS_CSUM, no GSO; as a kernel leaves it, the TCP checksum field holds the pseudo-header's sum.
    pseudo = bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 6]) + struct.pack("!H", 20 + 100)
    frame = vnet_header(1, 0, 0) + tcp_frame(100, fold(sum(struct.unpack("!6H", pseudo))))
    send(a, frame)
    b.receive(1)
    assert b.drain_guest() == [frame] and b.remote.rx_superframes == 1  # a qnet-tui peer: the header goes along
    # A peer that answered no probe (a kernel vxlan device): checksum done here, plain VXLAN.
    a.remote._settle(1500, False)
    send(a, frame)
    select.select([b.endpoint.sock], [], [], 2)
    b.endpoint._on_readable(select.EPOLLIN)
    [got] = b.drain_guest()
    assert got[:VNET_HDR_LEN] == bytes(VNET_HDR_LEN) and len(got) == len(frame)
    tcp = got[VNET_HDR_LEN + 34 :]
    assert fold(sum(struct.unpack(f"!{(len(pseudo) + len(tcp)) // 2}H", pseudo + tcp))) == 0xFFFF  # right
    # A GSO super-frame to such a peer cannot go: dropped as mtu, said once.
    big = super_frame()
    for _ in range(2):
        send(a, big)
    assert a.remote.drop_mtu == 2 * 46 and a.remote.tx_superframes == 1
    assert sum("super-frames are dropped as 'mtu'" in m for m in logs) == 1


def test_a_hub_of_plain_frames_takes_no_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VxlanPort, "probe", lambda self: None)
    loop, logs = Loop(), []
    a, b = Side(loop, logs), Side(loop, logs, vnet=False)
    try:
        a.join(b)
        b.join(a)
        inject(b, chunks_of(a, super_frame()))
        assert select.select([b.endpoint.sock], [], [], 2)[0]
        b.endpoint._on_readable(select.EPOLLIN)
        assert b.remote.drop_malformed >= 1 and b.remote.rx_frames == 0 and b.drain_guest() == []
    finally:
        a.close()
        b.close()
        loop.close()


def test_a_chunk_is_nothing_a_kernel_vxlan_device_takes() -> None:
    assert vxlan.SUPER not in (vxlan.PROBE, vxlan.REPLY) and not vxlan.SUPER & vxlan.FLAGS_I
