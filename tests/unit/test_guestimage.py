"""The built-in guest image, without network or QEMU: the cpio format byte
for byte, module ordering from .modinfo, the per-guest config, and the cache
(rebuilds, locking, failures that leave nothing half-written) with a fake apt."""

from __future__ import annotations

import errno
import json
import lzma
import stat
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import pytest

from qnet_tui import cli
from qnet_tui.lab import cpio, guestimage, kmod
from qnet_tui.lab.guestinit import (
    INIT_SCRIPT,
    INIT_SHA256,
    GuestConfig,
    GuestConfigError,
    NicConfig,
    config_text,
    guest_cpio,
)

# --- cpio newc ---------------------------------------------------------------


def header(ino, mode, nlink, size, namesize, rdev=(0, 0)) -> bytes:
    """A newc header written out field by field, as the format describes it."""
    return (
        b"070701"
        + b"%08X" % ino
        + b"%08X" % mode
        + b"00000000"  # uid
        + b"00000000"  # gid
        + b"%08X" % nlink
        + b"00000000"  # mtime
        + b"%08X" % size
        + b"00000000"  # devmajor
        + b"00000000"  # devminor
        + b"%08X" % rdev[0]
        + b"%08X" % rdev[1]
        + b"%08X" % namesize
        + b"00000000"  # check
    )


def test_cpio_newc_byte_for_byte():
    got = cpio.archive(
        [
            cpio.directory("etc"),
            cpio.file("etc/hi", b"hello", 0o600),
            cpio.symlink("sh", "busybox"),
            cpio.char_device("console", 5, 1),
        ]
    )
    expected = (
        # 110 + len("etc\0") = 114: two bytes of padding to 116
        header(1, 0o040755, 2, 0, 4) + b"etc\0" + b"\0\0"
        # 110 + len("etc/hi\0") = 117: three to 120; "hello" 5: three to 8
        + header(2, 0o100600, 1, 5, 7) + b"etc/hi\0" + b"\0\0\0" + b"hello" + b"\0\0\0"
        # 110 + 3 = 113: three to 116; "busybox" 7: one to 8
        + header(3, 0o120777, 1, 7, 3) + b"sh\0" + b"\0\0\0" + b"busybox" + b"\0"
        # 110 + 8 = 118: two to 120
        + header(4, 0o020600, 1, 0, 8, rdev=(5, 1)) + b"console\0" + b"\0\0"
        # 110 + 11 = 121: three to 124
        + header(0, 0, 1, 0, 11) + b"TRAILER!!!\0" + b"\0\0\0"
    )  # fmt: skip
    assert got == expected
    assert len(got) % 4 == 0


def test_cpio_header_field_width():
    assert len(header(1, 0, 1, 0, 1)) == 110
    data = cpio.archive([cpio.file("a", b"x" * 0xABC)])
    assert data[6 + 6 * 8 : 6 + 7 * 8] == b"00000ABC"  # filesize: 8 hex digits


@pytest.mark.parametrize("path", ["/init", "", "a\0b"])
def test_cpio_refuses_bad_paths(path):
    with pytest.raises(ValueError, match="bad path"):
        cpio.archive([cpio.file(path, b"")])


def test_cpio_refuses_data_on_a_directory():
    with pytest.raises(ValueError, match="only files and symlinks"):
        cpio.archive([cpio.Entry("d", stat.S_IFDIR | 0o755, b"x")])


# --- kernel modules ----------------------------------------------------------


def elf(modinfo: dict[str, str]) -> bytes:
    """A minimal ELF64 LE object: a null section, .shstrtab and .modinfo."""
    names = b"\0.shstrtab\0.modinfo\0"
    info = b"".join(f"{k}={v}".encode() + b"\0" for k, v in modinfo.items())
    shoff = 64 + len(names) + len(info)
    head = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    head += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 1)
    sections = [
        struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, 64, len(names), 0, 0, 1, 0),
        struct.pack("<IIQQQQIIQQ", 11, 1, 2, 0, 64 + len(names), len(info), 0, 0, 1, 0),
    ]
    return head + names + info + b"".join(sections)


def module(name: str, *deps: str) -> bytes:
    return elf({"license": "GPL", "depends": ",".join(deps), "name": name})


def test_modinfo_reads_the_section():
    assert kmod.modinfo(module("virtio_net", "virtio_ring", "net_failover")) == {
        "license": "GPL",
        "depends": "virtio_ring,net_failover",
        "name": "virtio_net",
    }
    assert kmod.depends(module("virtio_ring")) == []
    with pytest.raises(kmod.ModuleError, match="not a 64-bit"):
        kmod.modinfo(b"\x7fELF\x01\x01" + b"\0" * 100)


def test_load_order_puts_dependencies_first():
    deps = {
        "virtio_net": ["virtio_ring", "virtio", "net_failover"],
        "net_failover": ["failover"],
        "failover": [],
        "virtio": ["virtio_ring"],
        "virtio_ring": [],
        "virtio_pci": ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"],
        "virtio_pci_modern_dev": [],
        "virtio_pci_legacy_dev": [],
    }
    order = kmod.load_order(["virtio_net", "virtio_pci"], deps)
    assert sorted(order) == sorted(deps)
    for name, needs in deps.items():
        assert all(order.index(d) < order.index(name) for d in needs), name
    # A module built into the kernel is not loaded.
    assert kmod.load_order(["virtio_net"], deps, builtin=frozenset({"failover", "virtio"})) == [
        "virtio_ring",
        "net_failover",
        "virtio_net",
    ]


def test_load_order_errors_name_the_module():
    with pytest.raises(kmod.ModuleError, match=r"failover \(needed by net_failover\) is not in the kernel package"):
        kmod.load_order(["net_failover"], {"net_failover": ["failover"]})
    with pytest.raises(kmod.ModuleError, match="cycle through a"):
        kmod.load_order(["a"], {"a": ["b"], "b": ["a"]})


def kernel_tree(root: Path, compress: str = "") -> Path:
    """A fake unpacked kernel package: vmlinuz and virtio modules, one built in."""
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-9-cloud-amd64").write_bytes(b"KERNEL")
    mods = root / "lib" / "modules" / "6.1.0-9-cloud-amd64"
    for sub, name, deps in [
        ("drivers/net", "virtio_net", ["virtio_ring", "virtio", "net_failover"]),
        ("drivers/net", "net_failover", ["failover"]),
        ("net/core", "failover", []),
        ("drivers/virtio", "virtio", ["virtio_ring"]),
        ("drivers/virtio", "virtio_ring", []),
        ("drivers/virtio", "virtio_pci", ["virtio_ring", "virtio"]),
        ("drivers/virtio", "virtio-rng", ["virtio"]),  # not wanted: not taken
    ]:
        (mods / "kernel" / sub).mkdir(parents=True, exist_ok=True)
        data = module(name, *deps)
        path = mods / "kernel" / sub / f"{name}.ko{compress}"
        path.write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ) if compress == ".xz" else data)
    (mods / "modules.builtin").write_text("kernel/drivers/virtio/virtio_ring.ko\n")
    return root


@pytest.mark.parametrize("compress", ["", ".xz"])
def test_closure_of_an_unpacked_kernel(tmp_path: Path, compress: str):
    tree = kernel_tree(tmp_path / "k", compress)
    got = kmod.closure(["virtio_net", "virtio_pci"], tree / "lib" / "modules")
    names = [name for name, _ in got]
    assert names == ["virtio", "failover", "net_failover", "virtio_net", "virtio_pci"]  # virtio_ring is built in
    assert dict(got)["virtio_net"] == module("virtio_net", "virtio_ring", "virtio", "net_failover")  # decompressed


# --- the per-guest config ----------------------------------------------------

ROUTER = GuestConfig(
    "r1",
    (
        NicConfig("52:54:00:00:00:0A", ("10.1.0.1/24", "fd01::1/64"), gateway4="10.1.0.254", gateway6="fd01::fe"),
        NicConfig("52:54:00:00:00:0b", ("10.2.0.1/24",)),
    ),
    forwarding=True,
)


def test_config_text():
    assert config_text(ROUTER) == (
        "hostname r1\n"
        "forwarding 1\n"
        "nic eth0 52:54:00:00:00:0a\n"
        "addr eth0 10.1.0.1/24\n"
        "addr eth0 fd01::1/64\n"
        "gateway4 eth0 10.1.0.254\n"
        "gateway6 eth0 fd01::fe\n"
        "nic eth1 52:54:00:00:00:0b\n"
        "addr eth1 10.2.0.1/24\n"
    )
    assert config_text(GuestConfig("h")) == "hostname h\nforwarding 0\n"


@pytest.mark.parametrize(
    "guest, message",
    [
        (GuestConfig("bad name"), "guest 'bad name': hostname must be"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00"),)), "guest g: eth0: '52:54:00:00:00' is not a MAC"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00:01"), NicConfig("52:54:00:00:00:01"))), "eth1: MAC .* another"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00:01", ("10.0.0.300/24",)),)), "eth0: '10.0.0.300/24' is not"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00:01", ("10.0.0.2",)),)), "eth0: '10.0.0.2' has no prefix"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00:01", gateway4="fd00::1"),)), "gateway4 'fd00::1' is not an IPv4"),
        (GuestConfig("g", (NicConfig("52:54:00:00:00:01", gateway6="x"),)), "gateway 'x' is not an IP address"),
    ],
)
def test_config_errors_name_the_field(guest, message):
    with pytest.raises(GuestConfigError, match=message):
        config_text(guest)


def test_guest_cpio_holds_the_config_only():
    data = guest_cpio(ROUTER)
    text = config_text(ROUTER).encode()
    assert data.startswith(header(1, 0o040755, 2, 0, 4) + b"etc\0\0\0")
    assert header(3, 0o100644, 1, len(text), len(b"etc/qnet/guest.conf\0")) + b"etc/qnet/guest.conf\0" in data
    assert text in data and data.endswith(b"TRAILER!!!\0\0\0\0")


def test_init_reads_what_config_text_writes():
    for key in ("hostname", "forwarding", "nic", "addr", "gateway4", "gateway6"):
        assert f"{key})" in INIT_SCRIPT or f'"$key" = {key}' in INIT_SCRIPT, key


# --- the cache ---------------------------------------------------------------

KERNEL = "linux-image-6.1.0-9-cloud-amd64"


class FakeApt:
    """apt-cache and dpkg-query answers for given versions; counts builds."""

    def __init__(self, kernel_version="6.1.100-1", busybox="1:1.35.0-4", installed=False, lists=True):
        self.kernel_version, self.busybox, self.installed, self.lists = kernel_version, busybox, installed, lists
        self.unpacked: list[str] = []
        self.shown: list[list[str]] = []  # the packages of each apt-cache call

    def state(self) -> str:
        """What apt_state() would say: it changes with the lists and what is installed."""
        return f"{self.kernel_version} {self.busybox} {self.installed} {self.lists}"

    def run(self, argv, cwd=None):
        def done(out="", err="", rc=0):
            return subprocess.CompletedProcess(argv, rc, out, err)

        if argv[0] == "apt-cache":
            if not self.lists:
                return done(err="E: No packages found", rc=100)
            stanzas = {
                guestimage.KERNEL_META: f"Package: {guestimage.KERNEL_META}\nVersion: 6.1.100-1\n"
                f"Depends: {KERNEL} (= {self.kernel_version})\n",
                KERNEL: f"Package: {KERNEL}\nVersion: {self.kernel_version}\nDepends: kmod\n",
                guestimage.BUSYBOX: f"Package: busybox-static\nVersion: {self.busybox}\n",
            }
            self.shown.append(argv[3:])
            return done("\n".join(stanzas[p] for p in argv[3:] if p in stanzas))
        if argv[0] == "dpkg-query":
            if self.installed:
                return done(f"install ok installed {self.busybox}")
            return done(err="dpkg-query: no packages found matching busybox-static", rc=1)
        raise AssertionError(f"unexpected command {argv}")

    def unpack(self, package: str, version: str, into: Path) -> Path:
        self.unpacked.append(f"{package}={version}")
        tree = into / package
        if package == KERNEL:
            return kernel_tree(tree)
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "busybox").write_bytes(b"BUSYBOX " + version.encode())
        return tree


def ensure(root: Path, apt: FakeApt, **kwargs) -> guestimage.GuestImage:
    return guestimage.ensure(root=root, run=apt.run, unpacker=apt.unpack, state=apt.state, **kwargs)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name not in ("guest", "guest.lock"))


def test_resolve_follows_the_meta_package_in_one_look_up():
    apt = FakeApt()
    assert guestimage.resolve(apt.run) == guestimage.Inputs(KERNEL, "6.1.100-1", "1:1.35.0-4", False)
    assert apt.shown == [[guestimage.KERNEL_META, guestimage.BUSYBOX]]
    apt = FakeApt(installed=True)
    assert guestimage.resolve(apt.run).busybox_installed
    assert apt.shown == [[guestimage.KERNEL_META]]


def test_resolve_without_a_pinned_version_asks_the_kernel_package():
    apt = FakeApt()
    plain = apt.run

    def run(argv, cwd=None):
        done = plain(argv)
        done.stdout = done.stdout.replace(f"{KERNEL} (= 6.1.100-1)", KERNEL)
        return done

    assert guestimage.resolve(run).kernel_version == "6.1.100-1"
    assert apt.shown == [[guestimage.KERNEL_META, guestimage.BUSYBOX], [KERNEL]]


def test_build_makes_kernel_initrd_and_manifest(tmp_path: Path):
    apt = FakeApt()
    image = ensure(tmp_path, apt)
    assert apt.unpacked == [f"{KERNEL}=6.1.100-1", "busybox-static=1:1.35.0-4"]
    assert image.kernel == tmp_path / "guest" / "vmlinuz" and image.kernel.read_bytes() == b"KERNEL"
    raw = image.initrd.read_bytes()
    assert len(raw) % 4 == 0
    archive = zlib.decompressobj(wbits=31).decompress(raw)  # gzip, then the zero padding
    assert b"init\0" in archive and INIT_SCRIPT.encode() in archive
    assert b"BUSYBOX 1:1.35.0-4" in archive
    assert b"virtio\nfailover\nnet_failover\nvirtio_net\nvirtio_pci\n" in archive  # etc/qnet/modules, in order
    manifest = json.loads((tmp_path / "guest" / "manifest.json").read_text())
    assert manifest["kernel_package"] == KERNEL and manifest["init_sha256"] == INIT_SHA256
    assert leftovers(tmp_path) == []


def test_initrd_for_appends_the_guest_on_a_4_byte_boundary(tmp_path: Path):
    image = ensure(tmp_path, FakeApt())
    base = image.initrd.read_bytes()
    image.initrd.write_bytes(base + b"\0\0")  # not aligned: initrd_for pads
    out = image.initrd_for(ROUTER, tmp_path / "vm.initrd").read_bytes()
    assert out == base + b"\0\0\0\0" + guest_cpio(ROUTER)


def test_up_to_date_is_not_rebuilt_and_a_change_is(tmp_path: Path):
    apt = FakeApt()
    ensure(tmp_path, apt)
    ensure(tmp_path, apt)
    assert len(apt.unpacked) == 2  # one build: kernel and busybox
    apt.kernel_version = "6.1.101-1"
    assert ensure(tmp_path, apt).manifest["kernel_version"] == "6.1.101-1"
    apt.busybox = "1:1.36.1-1"
    assert ensure(tmp_path, apt).manifest["busybox_version"] == "1:1.36.1-1"
    assert len(apt.unpacked) == 6
    manifest = tmp_path / "guest" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(INIT_SHA256, "0" * 64))  # as built by another /init
    ensure(tmp_path, apt)
    assert len(apt.unpacked) == 8
    ensure(tmp_path, apt, rebuild=True)
    assert len(apt.unpacked) == 10
    assert leftovers(tmp_path) == []


def test_a_killed_build_leaves_nothing_in_the_way(tmp_path: Path):
    apt = FakeApt()
    ensure(tmp_path, apt)
    stale = tmp_path / ".build-killed" / "guest"  # as a SIGKILL'd build leaves it, halfway
    stale.mkdir(parents=True)
    (stale / "vmlinuz").write_bytes(b"HALF")
    (tmp_path / ".build-killed" / "old").mkdir()
    assert ensure(tmp_path, apt, rebuild=True).kernel.read_bytes() == b"KERNEL"
    assert leftovers(tmp_path) == []


def test_installed_busybox_is_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"INSTALLED BUSYBOX")
    monkeypatch.setattr(guestimage, "INSTALLED_BUSYBOX", busybox)
    apt = FakeApt(installed=True)
    image = ensure(tmp_path / "cache", apt)
    assert apt.unpacked == [f"{KERNEL}=6.1.100-1"]
    assert b"INSTALLED BUSYBOX" in zlib.decompressobj(wbits=31).decompress(image.initrd.read_bytes())


def test_concurrent_builds_build_once(tmp_path: Path):
    apt = FakeApt()
    results: list[guestimage.GuestImage] = []
    threads = [threading.Thread(target=lambda: results.append(ensure(tmp_path, apt))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(apt.unpacked) == 2
    assert leftovers(tmp_path) == []


def test_no_apt_lists_is_one_clear_error(tmp_path: Path):
    with pytest.raises(
        guestimage.GuestImageError, match=r"no package linux-image-cloud-amd64 in apt's lists .*apt-get update"
    ):
        ensure(tmp_path, FakeApt(lists=False))
    assert not (tmp_path / "guest").exists() and leftovers(tmp_path) == []


def test_without_apt_lists_the_built_image_is_used(tmp_path: Path):
    built = ensure(tmp_path, FakeApt())
    notes: list[str] = []
    assert ensure(tmp_path, FakeApt(lists=False), log=notes.append) == built
    assert "using the image built before" in notes[0]


def test_no_network_is_one_clear_error_and_no_half_cache(tmp_path: Path):
    def run(argv, cwd=None):
        if argv[0] == "apt-get":
            return subprocess.CompletedProcess(
                argv,
                100,
                "",
                "Err:1 http://deb.example/x\nE: Failed to fetch http://deb.example/x  Temporary failure resolving\n",
            )
        return FakeApt().run(argv)

    with pytest.raises(guestimage.GuestImageError) as caught:
        guestimage.ensure(root=tmp_path, run=run)
    assert str(caught.value) == (
        f"cannot download {KERNEL} 6.1.100-1: Failed to fetch http://deb.example/x  Temporary failure resolving"
    )
    assert not (tmp_path / "guest").exists() and leftovers(tmp_path) == []


def test_no_space_keeps_the_old_image_whole(tmp_path: Path):
    apt = FakeApt()
    old = ensure(tmp_path, apt)
    before = {p.name: p.read_bytes() for p in (tmp_path / "guest").iterdir()}

    def full(package: str, version: str, into: Path) -> Path:
        tree = apt.unpack(package, version, into)
        raise OSError(errno.ENOSPC, "No space left on device", str(tree))

    with pytest.raises(guestimage.GuestImageError, match=f"no space left on the device of {tmp_path}"):
        guestimage.ensure(root=tmp_path, run=apt.run, unpacker=full, rebuild=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "guest").iterdir()} == before
    assert guestimage.cached(tmp_path) == old
    assert leftovers(tmp_path) == []


def test_cache_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QNET_CACHE_DIR", str(tmp_path))
    assert guestimage.cache_root() == tmp_path
    monkeypatch.delenv("QNET_CACHE_DIR")
    assert guestimage.cache_root() in (Path("/var/cache/qnet-tui"), Path.home() / ".cache" / "qnet-tui")


def test_cli_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def fail(**_):
        raise guestimage.GuestImageError("cannot download busybox-static 1:1.35.0-4: Failed to fetch x")

    monkeypatch.setattr(guestimage, "ensure", fail)
    assert cli.main(["guest-image"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "qnet-tui guest-image: error: cannot download busybox-static 1:1.35.0-4: Failed to fetch x\n"


def test_cli_help_names_the_verb(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "guest-image" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["guest-image", "--help"])
    text = capsys.readouterr().out
    assert "--rebuild" in text and "QNET_CACHE_DIR" in text


def test_cli_prints_the_image_and_the_accelerator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from qnet_tui.lab import accel

    apt = FakeApt()
    built = ensure(tmp_path, apt)
    asked: list[bool] = []

    def fake_ensure(rebuild: bool, log) -> guestimage.GuestImage:
        asked.append(rebuild)
        return built

    monkeypatch.setattr(guestimage, "ensure", fake_ensure)
    monkeypatch.setattr(accel, "probe", lambda: accel.Accel("tcg", "no /dev/kvm"))
    assert cli.main(["guest-image", "--rebuild"]) == 0
    assert asked == [True]
    assert capsys.readouterr().out == (
        f"kernel  {tmp_path}/guest/vmlinuz  ({KERNEL} 6.1.100-1)\n"
        f"initrd  {tmp_path}/guest/initrd.gz  (busybox-static 1:1.35.0-4; virtio failover net_failover virtio_net "
        "virtio_pci)\n"
        "accel   TCG: no /dev/kvm\n"
    )


def test_apt_is_asked_only_when_its_state_changed(tmp_path: Path):
    apt = FakeApt()
    ensure(tmp_path, apt)
    asked = len(apt.shown)
    assert asked >= 1
    ensure(tmp_path, apt)
    ensure(tmp_path, apt)
    assert len(apt.shown) == asked  # nothing changed: the image is current without a look at apt's lists
    apt.installed = True  # busybox-static installed since: apt is asked again, the image is current
    ensure(tmp_path, apt)
    assert len(apt.shown) == asked + 1 and len(apt.unpacked) == 2
    ensure(tmp_path, apt)
    assert len(apt.shown) == asked + 1
    assert leftovers(tmp_path) == []


def test_apt_state_names_the_files_that_change_with_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    status = tmp_path / "status"
    status.write_text("a")
    monkeypatch.setattr(guestimage, "APT_STATE", (str(status), str(tmp_path / "absent")))
    before = guestimage.apt_state()
    assert before.endswith(" -")
    status.write_text("ab")
    assert guestimage.apt_state() != before
