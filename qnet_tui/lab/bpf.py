"""The eBPF socket filter that watches a port of a kernel-forwarded hub.

A hub the kernel forwards (lab/kernelhub.py) never passes a frame through
the worker, yet its panes show what the worker's hubs show: frames counted
as wire frames (a GSO super-frame as its segments), bytes, protocols, and a
few whole frames per tick to decode. One small program per port does that
in the kernel, run on each frame the port receives by a packet socket bound
to it: it adds to the port's counters (an array map the worker reads each
tick) and keeps the frame for the socket only while the port's sample budget
lasts (a second map the worker refills each tick) or a capture runs.

Assembled here from raw instructions (no compiler, no libbpf): the
program is some sixty instructions and stable."""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_NR_BPF = 321  # x86_64

MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, PROG_LOAD = 0, 1, 2, 5
MAP_TYPE_ARRAY = 2
PROG_TYPE_SOCKET_FILTER = 1

# The counters map's one value, u64 each, in this order (ports.PROTOCOL_NAMES after the first two).
FRAMES, BYTES = 0, 1
COUNTERS = 9  # frames, bytes, arp, ipv4, ipv6, icmp, tcp, udp, other
SKB_LEN, SKB_VLAN_PRESENT, SKB_GSO_SEGS = 0, 20, 164  # offsets in struct __sk_buff
WHOLE = 0x40000  # what "keep it all" asks of a socket filter


class BpfError(OSError):
    pass


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    result = _libc.syscall(_NR_BPF, cmd, buf, len(buf.raw))
    if result < 0:
        err = ctypes.get_errno()
        raise BpfError(err, os.strerror(err))
    return result


def array_map(value_size: int) -> int:
    """A one-entry array map; returns its fd."""
    return _bpf(MAP_CREATE, struct.pack("=IIII", MAP_TYPE_ARRAY, 4, value_size, 1))


def map_read(fd: int, size: int) -> bytes:
    key, value = ctypes.c_uint32(0), ctypes.create_string_buffer(size)
    _bpf(MAP_LOOKUP_ELEM, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(value), 0))
    return value.raw


def map_write(fd: int, value: bytes) -> None:
    key, buf = ctypes.c_uint32(0), ctypes.create_string_buffer(value, len(value))
    _bpf(MAP_UPDATE_ELEM, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(buf), 0))


# -- a small assembler -------------------------------------------------------------

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
_W, _H, _B, _DW = 0x00, 0x08, 0x10, 0x18
_ALU64, _JMP, _LD, _LDX, _ST, _STX = 0x07, 0x05, 0x00, 0x01, 0x02, 0x03
_ABS, _MEM, _ATOMIC, _IMM = 0x20, 0x60, 0xC0, 0x00
_MOV, _ADD = 0xB0, 0x00
_JA, _JEQ, _JNE, _JSLE, _EXIT = 0x00, 0x10, 0x50, 0xD0, 0x90
_K, _X = 0x00, 0x08
_FETCH = 0x01
_PSEUDO_MAP_VALUE = 2  # a 64-bit load of a one-entry array's value address: no helper call per frame


class _Asm:
    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int, int | str]] = []  # code, dst, src, off or label, imm
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def op(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def mov(self, dst: int, src: int) -> None:
        self.op(_ALU64 | _MOV | _X, dst, src)

    def movi(self, dst: int, imm: int) -> None:
        self.op(_ALU64 | _MOV | _K, dst, imm=imm)

    def jump(self, cmp: int, dst: int, imm: int, to: str) -> None:
        self.op(_JMP | cmp | _K, dst, off=to, imm=imm)

    def goto(self, to: str) -> None:
        self.op(_JMP | _JA, off=to)

    def add_to(self, base: int, field: int, src: int) -> None:
        """*(u64 *)(base + 8 * field) += src, atomically (CPUs share the map)."""
        self.op(_STX | _ATOMIC | _DW, base, src, 8 * field, _ADD)

    def load_abs(self, size: int, offset: int) -> None:
        """r0 = the frame's bytes at offset, in host order; a short frame ends the program (0)."""
        self.op(_LD | _ABS | size, imm=offset)

    def value_of(self, dst: int, map_fd: int) -> None:
        """dst = the address of the one-entry array map's value."""
        self.op(_LD | _IMM | _DW, dst, _PSEUDO_MAP_VALUE, imm=map_fd)
        self.op(0, 0, 0, 0, 0)  # the second half: the offset into the value, 0

    def exit(self, value: int) -> None:
        self.movi(R0, value)
        self.op(_JMP | _EXIT)

    def bytes(self) -> bytes:
        out = bytearray()
        for i, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - i - 1
            out += struct.pack("<BBhi", code, dst | src << 4, off, imm)
        return bytes(out)


def port_program(counters: int, control: int, snap: int) -> bytes:
    """The instructions: count, classify, keep `snap` bytes while the budget
    lasts (control[0], decremented per frame) or all while control[1] is set."""
    a = _Asm()
    a.mov(R6, R1)  # the skb: LD_ABS reads through r6
    a.value_of(R7, counters)
    a.op(_LDX | _MEM | _W, R8, R6, SKB_GSO_SEGS)  # wire frames: a GSO super-frame is several
    a.jump(_JNE, R8, 0, "segs")
    a.movi(R8, 1)
    a.label("segs")
    a.add_to(R7, FRAMES, R8)
    a.op(_LDX | _MEM | _W, R9, R6, SKB_LEN)
    a.op(_LDX | _MEM | _W, R1, R6, SKB_VLAN_PRESENT)  # a tag the device took off was on the wire
    a.jump(_JEQ, R1, 0, "untagged_len")
    a.op(_ALU64 | _ADD | _K, R9, imm=4)
    a.label("untagged_len")
    a.add_to(R7, BYTES, R9)
    a.value_of(R9, control)
    # Protocols, as Hub.forward counts them: EtherType (past one 802.1Q tag), then IP's protocol.
    a.load_abs(_H, 12)
    a.jump(_JNE, R0, 0x8100, "untagged")
    a.load_abs(_H, 16)
    a.jump(_JEQ, R0, 0x0800, "ipv4_tagged")
    a.jump(_JEQ, R0, 0x86DD, "ipv6_tagged")
    a.goto("ethertype")
    a.label("untagged")
    a.jump(_JEQ, R0, 0x0800, "ipv4")
    a.jump(_JEQ, R0, 0x86DD, "ipv6")
    a.label("ethertype")
    a.jump(_JEQ, R0, 0x0806, "arp")
    a.goto("other")
    for name, field, offset, icmp in (
        ("ipv4", 3, 23, 1),
        ("ipv4_tagged", 3, 27, 1),
        ("ipv6", 4, 20, 58),
        ("ipv6_tagged", 4, 24, 58),
    ):
        a.label(name)
        a.add_to(R7, field, R8)
        a.load_abs(_B, offset)
        a.jump(_JEQ, R0, icmp, "icmp")
        a.goto("l4")
    a.label("l4")
    a.jump(_JEQ, R0, 6, "tcp")
    a.jump(_JEQ, R0, 17, "udp")
    a.goto("keep")
    for name, field in (("arp", 2), ("icmp", 5), ("tcp", 6), ("udp", 7), ("other", 8)):
        a.label(name)
        a.add_to(R7, field, R8)
        a.goto("keep")
    a.label("keep")
    a.op(_LDX | _MEM | _DW, R1, R9, 8)  # capturing: every frame, whole
    a.jump(_JNE, R1, 0, "keep_all")
    a.movi(R1, -1)
    a.op(_STX | _ATOMIC | _DW, R9, R1, 0, _ADD | _FETCH)  # r1 = the budget before this frame
    a.jump(_JSLE, R1, 0, "keep_none")
    a.exit(snap)
    a.label("keep_all")
    a.exit(WHOLE)
    a.label("keep_none")
    a.exit(0)
    return a.bytes()


def load_socket_filter(insns: bytes, name: str = "qnet_port") -> int:
    """Load a socket filter program; returns its fd. The verifier's words on refusal."""
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack(
        "=IIQQIIQII16s",
        PROG_TYPE_SOCKET_FILTER,
        len(insns) // 8,
        ctypes.addressof(code),
        ctypes.addressof(license_),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        name.encode()[:15],
    )
    try:
        return _bpf(PROG_LOAD, attr)
    except BpfError as exc:
        words = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise BpfError(exc.errno, f"{exc.strerror}: {' / '.join(words)}") from None


@dataclass
class PortFilter:
    """One port's program and maps."""

    counters: int
    control: int
    program: int

    @classmethod
    def make(cls, snap: int) -> PortFilter:
        fds: list[int] = []
        try:
            fds.append(array_map(8 * COUNTERS))
            fds.append(array_map(16))
            fds.append(load_socket_filter(port_program(fds[0], fds[1], snap)))
        except BpfError:
            for fd in fds:
                os.close(fd)
            raise
        return cls(*fds)

    def counts(self) -> tuple[int, ...]:
        return struct.unpack(f"={COUNTERS}Q", map_read(self.counters, 8 * COUNTERS))

    def allow(self, budget: int, capture: bool) -> None:
        """Keep the next `budget` frames for the socket (and every frame while capturing)."""
        map_write(self.control, struct.pack("=qQ", budget, int(capture)))

    def close(self) -> None:
        for fd in (self.program, self.control, self.counters):
            if fd >= 0:
                os.close(fd)
        self.program = self.control = self.counters = -1
