"""Kernel modules of an unpacked kernel package: find them, read what each
depends on, order them for insmod, decompress them.

A kernel package unpacked with `dpkg -x` has no modules.dep (depmod writes it
when the package is installed), so the dependencies come from each module's
own ".modinfo" ELF section ("depends=a,b"), which is what depmod reads too."""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
from pathlib import Path

SUFFIXES = (".ko", ".ko.xz", ".ko.zst")


class ModuleError(Exception):
    pass


def canonical(name: str) -> str:
    """The kernel treats '-' and '_' in module names alike."""
    return name.replace("-", "_")


def index(modules_dir: Path) -> dict[str, Path]:
    """Every module under modules_dir by its canonical name."""
    found: dict[str, Path] = {}
    for path in sorted(modules_dir.rglob("*.ko*")):
        for suffix in SUFFIXES:
            if path.name.endswith(suffix):
                found[canonical(path.name[: -len(suffix)])] = path
    return found


def decompressed(path: Path) -> bytes:
    """A module's bytes, as insmod takes them (busybox insmod reads plain .ko)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ModuleError(f"{path.name} is zstd-compressed and there is no zstd program (Debian: zstd)")
        return subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=True).stdout
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """The key=value strings of an ELF64 little-endian module's .modinfo section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ModuleError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    for name_off, _type, _flags, _addr, offset, size, *_ in sections:
        start = names_at + name_off
        if elf[start : elf.index(b"\0", start)] == b".modinfo":
            pairs = (item.partition(b"=") for item in elf[offset : offset + size].split(b"\0") if item)
            return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}
    raise ModuleError("no .modinfo section")


def depends(elf: bytes) -> list[str]:
    return [canonical(d) for d in modinfo(elf).get("depends", "").split(",") if d]


def load_order(wanted: list[str], deps: dict[str, list[str]], builtin: frozenset[str] = frozenset()) -> list[str]:
    """wanted and every module they need, each after what it depends on.
    deps maps the modules at hand to their dependencies; a module built into
    the kernel is left out (nothing to load); any other missing one is an error."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, needed_by: str | None) -> None:
        if name in order or name in builtin:
            return
        if name in visiting:
            raise ModuleError(f"kernel modules depend on each other in a cycle through {name}")
        if name not in deps:
            by = f" (needed by {needed_by})" if needed_by else ""
            raise ModuleError(f"kernel module {name}{by} is not in the kernel package")
        visiting.add(name)
        for dep in deps[name]:
            visit(dep, name)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(canonical(name), None)
    return order


def builtin_names(modules_dir: Path) -> frozenset[str]:
    """Modules compiled into the kernel, from modules.builtin (which dpkg -x does unpack)."""
    found: set[str] = set()
    for path in modules_dir.rglob("modules.builtin"):
        for line in path.read_text().splitlines():
            base = line.rsplit("/", 1)[-1]
            if base.endswith(".ko"):
                found.add(canonical(base[:-3]))
    return frozenset(found)


def closure(wanted: list[str], modules_dir: Path) -> list[tuple[str, bytes]]:
    """The modules to load for wanted, in order, with their decompressed bytes."""
    paths = index(modules_dir)
    builtin = builtin_names(modules_dir)
    data: dict[str, bytes] = {}
    deps: dict[str, list[str]] = {}
    pending = [canonical(w) for w in wanted]
    while pending:
        name = pending.pop()
        if name in deps or name in builtin or name not in paths:
            continue  # a missing one is reported by load_order, with what needs it
        data[name] = decompressed(paths[name])
        try:
            deps[name] = depends(data[name])
        except ModuleError as exc:
            raise ModuleError(f"{paths[name].name}: {exc}") from None
        pending += deps[name]
    return [(name, data[name]) for name in load_order(wanted, deps, builtin)]
