"""A client speaking QEMU's stream framing exchanges frames with a namespace
guest through a hub; a peer speaking garbage is dropped and the lab goes on."""

from __future__ import annotations

import socket
import struct
import time

from qnet_tui import protocol

from .conftest import wait_for

CLIENT_MAC = bytes.fromhex("525400aabbcc")
CLIENT_IP = bytes([10, 9, 0, 99])
GUEST_IP = bytes([10, 9, 0, 1])


def arp_request() -> bytes:
    eth = b"\xff" * 6 + CLIENT_MAC + b"\x08\x06"
    arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + CLIENT_MAC + CLIENT_IP + b"\x00" * 6 + GUEST_IP
    return eth + arp


def framed(frame: bytes) -> bytes:
    return struct.pack(">I", len(frame)) + frame


def read_frames(sock: socket.socket, until: float) -> list[bytes]:
    buf, frames = b"", []
    sock.settimeout(0.2)
    while time.monotonic() < until:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            n = int.from_bytes(buf[:4], "big")
            frames.append(buf[4 : 4 + n])
            buf = buf[4 + n :]
        if any(is_arp_reply(f) for f in frames):
            break
    return frames


def is_arp_reply(frame: bytes) -> bool:
    return frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[:6] == CLIENT_MAC


def connect(lab) -> socket.socket:
    path = protocol.lab_dir(lab.name) / "vm9.sock"
    wait_for(path.exists, 10, "the stream socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


def arp_through_hub(lab) -> None:
    with connect(lab) as sock:
        sock.sendall(framed(arp_request()))
        frames = read_frames(sock, time.monotonic() + 10)
        replies = [f for f in frames if is_arp_reply(f)]
        assert replies, f"no ARP reply among {len(frames)} frames"
        assert replies[0][28:32] == GUEST_IP  # the guest answered with its own address


def test_stream_client_talks_to_guest_through_hub(make_lab):
    lab = make_lab("qemu-socket.yaml")
    arp_through_hub(lab)
    stamp = time.time()
    vlan = lab.vlan("0", after=stamp)
    assert vlan["protocols"]["arp"] >= 2
    assert vlan["ports"]["vm9"]["kind"] == "stream" and vlan["ports"]["vm9"]["rx_frames"] >= 1
    arp_through_hub(lab)  # the peer hung up; the next one is served


def test_garbage_peer_is_dropped_and_lab_stays_up(make_lab):
    lab = make_lab("qemu-socket.yaml")
    with connect(lab) as sock:
        sock.sendall(b"\xff" * 64)  # a length of 4 GB: not QEMU's framing
        sock.settimeout(5)
        assert sock.recv(100) == b""  # the worker hung up on it
    wait_for(lambda: any("not QEMU's stream framing" in line for line in lab.errors), 5, "the logged reason")

    def malformed() -> int:
        return lab.vlan("0", after=time.time())["ports"]["vm9"]["drop_reasons"]["malformed"]

    before = malformed()
    with connect(lab) as sock:
        sock.sendall(framed(b"\x01\x02"))  # too short for Ethernet: counted, not fatal
        wait_for(lambda: malformed() > before, 10, "the short frame to be counted")
    arp_through_hub(lab)
    assert lab.proc.poll() is None
    assert malformed() >= 2


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dgram_socket_exchanges_frames_over_udp(make_lab):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))  # stands for a QEMU with -netdev dgram
        peer_port, lab_port = peer.getsockname()[1], free_udp_port()
        text = (
            "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
            "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.9.0.1/24}\n"
            f"  d0: {{kind: socket, transport: dgram, family: inet, address: '127.0.0.1:{peer_port}', "
            f"local: '127.0.0.1:{lab_port}'}}\n"
            "links: [[hub0, vm1], [hub0, d0]]\n"
        )
        lab = make_lab("", text=text)
        peer.sendto(arp_request(), ("127.0.0.1", lab_port))
        peer.settimeout(0.5)
        deadline = time.monotonic() + 10
        reply = None
        while reply is None and time.monotonic() < deadline:
            try:
                frame = peer.recv(65536)
            except TimeoutError:
                continue
            reply = frame if is_arp_reply(frame) else None
        assert reply is not None and reply[28:32] == GUEST_IP
        assert lab.vlan("0", after=time.time())["ports"]["d0"]["kind"] == "dgram"


def test_stream_tcp_connect_redials_after_the_peer_goes(make_lab):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))  # stands for a QEMU with -netdev stream,server=on
        server.listen(1)
        server.settimeout(15)
        port = server.getsockname()[1]
        text = (
            "version: 1\nname: x\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
            "  vm1: {kind: guest_nic, mac: '52:54:00:00:00:01', ipv4: 10.9.0.1/24}\n"
            f"  q0: {{kind: socket, transport: stream, family: inet, mode: connect, address: '127.0.0.1:{port}'}}\n"
            "links: [[hub0, vm1], [hub0, q0]]\n"
        )
        lab = make_lab("", text=text)
        for _ in range(2):  # the second time, after we hung up, the worker has dialled again
            conn, _ = server.accept()
            with conn:
                conn.sendall(framed(arp_request()))
                frames = read_frames(conn, time.monotonic() + 10)
                assert any(is_arp_reply(f) for f in frames)
        assert lab.proc.poll() is None
