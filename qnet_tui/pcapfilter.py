"""Filters in the syntax of tcpdump and Wireshark's capture filters
("tcp port 80", "arp or icmp", "ether host 52:54:00:00:01:01"): compiled by
libpcap to classic BPF, checked with libpcap's own words on a bad one, and
run here on a frame (the frame log, a conversation table) or handed to the
kernel as a socket filter (a capture).

Neither Textual nor netlink: the app and the worker both use it."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from dataclasses import dataclass
from functools import cache

DLT_EN10MB = 1  # Ethernet
NETMASK_UNKNOWN = 0xFFFFFFFF
SNAPLEN = 262144


class FilterError(ValueError):
    """A filter libpcap cannot compile; the message is libpcap's."""


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


@cache
def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise FilterError("filters need libpcap (Debian: apt-get install libpcap0.8)") from None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


Insn = tuple[int, int, int, int]  # code, jt, jf, k


@dataclass(frozen=True)
class Filter:
    text: str
    program: tuple[Insn, ...]

    def matches(self, frame: bytes, wire_length: int | None = None) -> bool:
        """Whether the filter keeps this Ethernet frame (classic BPF, run here).
        wire_length: the frame's length on the wire when frame holds only its
        first bytes (a sample): `len`, `greater`, `less` test that one."""
        return run(self.program, frame, wire_length) != 0

    def packed(self) -> bytes:
        """The instructions as the kernel takes them (struct sock_filter[])."""
        return b"".join(struct.pack("=HBBI", *insn) for insn in self.program)


def compile_filter(text: str) -> Filter:
    """libpcap's compilation of text for Ethernet frames; FilterError says what is wrong."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, SNAPLEN)
    if not handle:
        raise FilterError("libpcap could not start")
    program = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), text.encode(), 1, NETMASK_UNKNOWN) != 0:
            reason = (lib.pcap_geterr(handle) or b"cannot compile").decode(errors="replace")
            raise FilterError(f"filter {text!r}: {reason}")
        insns = tuple(
            (program.bf_insns[i].code, program.bf_insns[i].jt, program.bf_insns[i].jf, program.bf_insns[i].k)
            for i in range(program.bf_len)
        )
        lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)
    return Filter(text, insns)


# -- classic BPF, as the kernel runs it ------------------------------------------------

_MASK = 0xFFFFFFFF


def _load(frame: bytes, offset: int, size: int) -> int | None:
    if offset < 0 or offset + size > len(frame):
        return None
    return int.from_bytes(frame[offset : offset + size], "big")


def _alu(op: int, a: int, v: int) -> int | None:
    if op in (0x30, 0x90) and v == 0:  # division by zero ends the program: no match
        return None
    return {
        0x00: lambda: a + v,
        0x10: lambda: a - v,
        0x20: lambda: a * v,
        0x30: lambda: a // v,
        0x40: lambda: a | v,
        0x50: lambda: a & v,
        0x60: lambda: a << v if v < 32 else 0,
        0x70: lambda: a >> v if v < 32 else 0,
        0x80: lambda: -a,
        0x90: lambda: a % v,
        0xA0: lambda: a ^ v,
    }[op]() & _MASK


def run(program: tuple[Insn, ...], frame: bytes, wire_length: int | None = None) -> int:
    """The value a classic BPF program returns for frame: 0 drops it. A load
    past the bytes kept ends it with 0, as the kernel does past a frame's end."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD, LDX
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            mode = code & 0xE0
            if mode == 0x00:
                value: int | None = k
            elif mode == 0x20:
                value = _load(frame, k, size)
            elif mode == 0x40:
                value = _load(frame, x + k, size)
            elif mode == 0x60:
                value = mem[k & 15]
            elif mode == 0x80:
                value = len(frame) if wire_length is None else wire_length
            elif mode == 0xA0:  # the IP header's length: 4 * (frame[k] & 0xf)
                byte = _load(frame, k, 1)
                value = None if byte is None else (byte & 0x0F) * 4
            else:
                return 0
            if value is None:
                return 0
            if cls == 0x00:
                a = value
            else:
                x = value
        elif cls == 0x02:
            mem[k & 15] = a
        elif cls == 0x03:
            mem[k & 15] = x
        elif cls == 0x04:
            result = _alu(code & 0xF0, a, x if code & 0x08 else k)
            if result is None:
                return 0
            a = result
        elif cls == 0x05:
            op, v = code & 0xF0, x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == v, 0x20: a > v, 0x30: a >= v, 0x40: bool(a & v)}.get(op)
            if taken is None:
                return 0
            pc += jt if taken else jf
        elif cls == 0x06:
            return {0x00: k, 0x08: x, 0x10: a}.get(code & 0x18, 0)
        elif cls == 0x07:
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
    return 0
