"""The eBPF socket filter that watches a port of a kernel-forwarded hub.

A hub the kernel forwards (lab/kernelhub.py) never passes a frame through
the worker, yet its panes show what the worker's hubs show: frames counted
as wire frames (a GSO super-frame as its segments), bytes, protocols, and a
few whole frames per tick to decode. One small program per port does that
in the kernel, run on each frame the port receives by a packet socket bound
to it: it adds to the port's counters (an array map the worker reads each
tick), adds the frame to its conversation's counts (an LRU hash map keyed
as Hub.forward keys conversations; lab/conversations.py), and keeps the
frame for the socket only while the port's sample budget lasts (a second
map the worker refills each tick) or a capture runs.

Assembled here from raw instructions (no compiler, no libbpf): the
program is some 150 instructions and stable."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass, field

from qnet_tui.lab.conversations import SEGMENTS_SHIFT

_libc = ctypes.CDLL(None, use_errno=True)
_NR_BPF = 321  # x86_64

MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_GET_NEXT_KEY, PROG_LOAD = 0, 1, 2, 4, 5
MAP_TYPE_ARRAY, MAP_TYPE_LRU_HASH = 2, 9
PROG_TYPE_SOCKET_FILTER = 1

# The counters map's one value, u64 each, in this order (ports.PROTOCOL_NAMES after the first two).
FRAMES, BYTES = 0, 1
COUNTERS = 9  # frames, bytes, arp, ipv4, ipv6, icmp, tcp, udp, other
SKB_LEN, SKB_VLAN_PRESENT, SKB_GSO_SEGS = 0, 20, 164  # offsets in struct __sk_buff
WHOLE = 0x40000  # what "keep it all" asks of a socket filter
# Conversations (lab/conversations.py): an LRU hash map per port, key -> (wire frames, bytes).
# The key: MACs [0:12], EtherType in host order [12:14], IP protocol [14], ports kept [15],
# addresses [16:48] (IPv4: 4 + 4 bytes), source and destination port [48:52].
CONV_KEY, CONV_VALUE = 56, 16
CONV_ENTRIES = 2048
_FUNC_MAP_LOOKUP, _FUNC_MAP_UPDATE, _FUNC_SKB_LOAD_BYTES = 1, 2, 26
_NOEXIST = 1


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


def lru_map(key_size: int, value_size: int, entries: int) -> int:
    return _bpf(MAP_CREATE, struct.pack("=IIII", MAP_TYPE_LRU_HASH, key_size, value_size, entries))


def map_items(fd: int, key_size: int, value_size: int) -> dict[bytes, bytes]:
    """Every entry of a hash map (one lookup each: the datapath keeps adding meanwhile)."""
    out: dict[bytes, bytes] = {}
    key, nxt = ctypes.create_string_buffer(key_size), ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size)
    first = True
    while True:
        prev = 0 if first else ctypes.addressof(key)
        try:
            _bpf(MAP_GET_NEXT_KEY, struct.pack("=IIQQ", fd, 0, prev, ctypes.addressof(nxt)))
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return out
            raise
        first = False
        ctypes.memmove(key, nxt, key_size)
        try:
            _bpf(MAP_LOOKUP_ELEM, struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(value), 0))
        except BpfError as exc:
            if exc.errno != errno.ENOENT:  # evicted between the two calls
                raise
            continue
        out[key.raw] = value.raw


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
_ABS, _IND, _MEM, _ATOMIC, _IMM = 0x20, 0x40, 0x60, 0xC0, 0x00
_MOV, _ADD, _AND = 0xB0, 0x00, 0x50
_JA, _JEQ, _JNE, _JSLE, _CALL, _EXIT = 0x00, 0x10, 0x50, 0xD0, 0x80, 0x90
_K, _X = 0x00, 0x08
_FETCH = 0x01
_PSEUDO_MAP_FD = 1
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

    def load_ind(self, size: int, src: int, offset: int) -> None:
        """r0 = the frame's bytes at src + offset, in host order; past the end ends the program."""
        self.op(_LD | _IND | size, src=src, imm=offset)

    def map_fd(self, dst: int, map_fd: int) -> None:
        self.op(_LD | _IMM | _DW, dst, _PSEUDO_MAP_FD, imm=map_fd)
        self.op(0, 0, 0, 0, 0)

    def call(self, helper: int) -> None:
        """Call a kernel helper: arguments in r1-r5 (clobbered), the result in r0."""
        self.op(_JMP | _CALL, imm=helper)

    def store(self, size: int, base: int, off: int, src: int) -> None:
        self.op(_STX | _MEM | size, base, src, off)

    def store_imm(self, size: int, base: int, off: int, imm: int) -> None:
        self.op(_ST | _MEM | size, base, off=off, imm=imm)

    def addi(self, dst: int, imm: int) -> None:
        self.op(_ALU64 | _ADD | _K, dst, imm=imm)

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


def port_program(counters: int, control: int, convs: int, snap: int) -> bytes:
    """The instructions: count, classify, count the frame's conversation,
    keep `snap` bytes while the budget lasts (control[0], decremented per
    frame) or all while control[1] is set."""
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
    for name, counter, offset, icmp in (
        ("ipv4", 3, 23, 1),
        ("ipv4_tagged", 3, 27, 1),
        ("ipv6", 4, 20, 58),
        ("ipv6_tagged", 4, 24, 58),
    ):
        a.label(name)
        a.add_to(R7, counter, R8)
        a.load_abs(_B, offset)
        a.jump(_JEQ, R0, icmp, "icmp")
        a.goto("l4")
    a.label("l4")
    a.jump(_JEQ, R0, 6, "tcp")
    a.jump(_JEQ, R0, 17, "udp")
    a.goto("conv")
    for name, counter in (("arp", 2), ("icmp", 5), ("tcp", 6), ("udp", 7), ("other", 8)):
        a.label(name)
        a.add_to(R7, counter, R8)
        a.goto("conv")
    _conversation(a, convs)
    a.label("keep")
    a.op(_LDX | _MEM | _DW, R1, R9, 8)  # capturing: every frame, whole
    a.jump(_JNE, R1, 0, "keep_all")
    # ARP and neighbour solicitations and adverts (untagged): kept while a budget of their own lasts (control[2]).
    a.load_abs(_H, 12)
    a.jump(_JEQ, R0, 0x0806, "keep_watched")
    a.jump(_JNE, R0, 0x86DD, "keep_sample")
    a.load_abs(_B, 20)
    a.jump(_JNE, R0, 58, "keep_sample")
    a.load_abs(_B, 54)
    a.jump(_JEQ, R0, 135, "keep_watched")
    a.jump(_JEQ, R0, 136, "keep_watched")
    a.goto("keep_sample")
    a.label("keep_watched")
    a.movi(R1, -1)
    a.op(_STX | _ATOMIC | _DW, R9, R1, 16, _ADD | _FETCH)
    a.jump(_JSLE, R1, 0, "keep_sample")
    a.exit(snap)
    a.label("keep_sample")
    a.movi(R1, -1)
    a.op(_STX | _ATOMIC | _DW, R9, R1, 0, _ADD | _FETCH)  # r1 = the budget before this frame
    a.jump(_JSLE, R1, 0, "keep_none")
    a.exit(snap)
    a.label("keep_all")
    a.exit(WHOLE)
    a.label("keep_none")
    a.exit(0)
    return a.bytes()


# Where the conversation key and a zero value sit on the stack (r10 - ...).
_KEY, _ZERO = -CONV_KEY, -CONV_KEY - CONV_VALUE


def _conversation(a: _Asm, convs: int) -> None:
    """Count the frame (r8 wire frames) under its conversation key, as
    Hub.forward keys it, in the LRU map `convs`; on to "keep". r6 is the skb,
    r9 must survive (helper calls keep r6-r9); r7 becomes the IP header's
    offset past a tag (LD_IND reads relative to it)."""
    a.label("conv")
    for off in range(_ZERO, 0, 8):
        a.store_imm(_DW, R10, off, 0)

    def load_bytes(frame_off: int, key_off: int, length: int) -> None:
        """key[key_off:] = the frame's bytes at r7 + frame_off (zeros past its end)."""
        a.mov(R1, R6)
        a.mov(R2, R7)
        a.addi(R2, frame_off)
        a.mov(R3, R10)
        a.addi(R3, _KEY + key_off)
        a.movi(R4, length)
        a.call(_FUNC_SKB_LOAD_BYTES)

    a.movi(R7, 0)
    load_bytes(0, 0, 12)  # the MACs
    a.load_abs(_H, 12)
    a.jump(_JNE, R0, 0x8100, "conv_type")
    a.movi(R7, 4)
    a.load_abs(_H, 16)
    a.label("conv_type")
    a.store(_H, R10, _KEY + 12, R0)
    a.jump(_JEQ, R0, 0x0800, "conv_ipv4")
    a.jump(_JEQ, R0, 0x86DD, "conv_ipv6")
    a.goto("conv_count")
    for name, proto_at, addrs_at, width in (("conv_ipv4", 23, 26, 8), ("conv_ipv6", 20, 22, 32)):
        a.label(name)
        a.load_ind(_B, R7, proto_at)
        a.store(_B, R10, _KEY + 14, R0)
        load_bytes(addrs_at, 16, width)
        a.op(_LDX | _MEM | _B, R1, R10, _KEY + 14)
        for proto in (6, 17):  # TCP, UDP: the ports follow
            a.jump(_JEQ, R1, proto, f"{name}_ports")
        a.goto("conv_count")
        a.label(f"{name}_ports")
        if width == 8:  # IPv4: no options, and no later fragment
            a.load_ind(_B, R7, 14)
            a.jump(_JNE, R0, 0x45, "conv_count")
            a.load_ind(_H, R7, 20)
            a.op(_ALU64 | _AND | _K, R0, imm=0x1FFF)
            a.jump(_JNE, R0, 0, "conv_count")
        load_bytes(addrs_at + width, 48, 4)
        a.store_imm(_B, R10, _KEY + 15, 1)
        a.goto("conv_count")
    a.label("conv_count")
    for attempt in range(2):
        a.map_fd(R1, convs)
        a.mov(R2, R10)
        a.addi(R2, _KEY)
        a.call(_FUNC_MAP_LOOKUP)
        a.jump(_JNE, R0, 0, "conv_add")
        if attempt == 0:  # a new conversation: a zero entry, then look again
            a.map_fd(R1, convs)
            a.mov(R2, R10)
            a.addi(R2, _KEY)
            a.mov(R3, R10)
            a.addi(R3, _ZERO)
            a.movi(R4, _NOEXIST)
            a.call(_FUNC_MAP_UPDATE)
    a.goto("keep")
    a.label("conv_add")
    a.add_to(R0, 0, R8)
    a.op(_LDX | _MEM | _W, R1, R6, SKB_LEN)
    a.op(_LDX | _MEM | _W, R2, R6, SKB_VLAN_PRESENT)
    a.jump(_JEQ, R2, 0, "conv_bytes")
    a.addi(R1, 4)
    a.label("conv_bytes")
    a.add_to(R0, 1, R1)


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
    convs: int
    program: int
    # The conversations' counts when last read (the map's are totals).
    seen: dict[bytes, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def make(cls, snap: int) -> PortFilter:
        fds: list[int] = []
        try:
            fds.append(array_map(8 * COUNTERS))
            fds.append(array_map(24))
            fds.append(lru_map(CONV_KEY, CONV_VALUE, CONV_ENTRIES))
            fds.append(load_socket_filter(port_program(fds[0], fds[1], fds[2], snap)))
        except BpfError:
            for fd in fds:
                os.close(fd)
            raise
        return cls(*fds)

    def conversations(self) -> dict[bytes, int]:
        """What each conversation added since the last call, by a key
        lab/conversations.py reads as it reads Hub.forward's: key -> wire
        frames << SEGMENTS_SHIFT | bytes."""
        now = {key: struct.unpack("=QQ", value) for key, value in map_items(self.convs, CONV_KEY, CONV_VALUE).items()}
        out: dict[bytes, int] = {}
        for key, (frames, size) in now.items():
            then = self.seen.get(key, (0, 0))
            if frames < then[0]:  # let go by the map (LRU) and counted anew since
                then = (0, 0)
            if frames > then[0]:
                out[frame_key(key)] = (frames - then[0]) << SEGMENTS_SHIFT | (size - then[1])
        self.seen = now
        return out

    def counts(self) -> tuple[int, ...]:
        return struct.unpack(f"={COUNTERS}Q", map_read(self.counters, 8 * COUNTERS))

    def allow(self, budget: int, capture: bool, watched: int = 0) -> None:
        """Keep the next `budget` frames for the socket (and every frame while capturing),
        and up to `watched` ARP and neighbour discovery frames besides."""
        map_write(self.control, struct.pack("=qQq", budget, int(capture), watched))

    def close(self) -> None:
        for fd in (self.program, self.control, self.convs, self.counters):
            if fd >= 0:
                os.close(fd)
        self.program = self.control = self.convs = self.counters = -1


def frame_key(key: bytes) -> bytes:
    """The map's key in the form Hub.forward slices from a frame it has no fields for (lab/conversations.py
    reads both)."""
    ethertype = int.from_bytes(key[12:14], "little")
    out = key[0:12] + ethertype.to_bytes(2, "big")
    width = {0x0800: 4, 0x86DD: 16}.get(ethertype)
    if width is None:
        return out
    return out + key[14:15] + key[16 : 16 + 2 * width] + (key[48:52] if key[15] else b"")
