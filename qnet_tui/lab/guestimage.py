"""The built-in guest image: a Debian cloud kernel and a busybox initramfs,
made from Debian packages that are downloaded and unpacked, never installed.

The cache (QNET_CACHE_DIR, else /var/cache/qnet-tui as root) holds guest/
with vmlinuz, initrd.gz (the base initramfs) and manifest.json, which names
the inputs it was built from: the kernel package and version, busybox's
version and the /init script's hash. When any of them changes, the image is
built again. A build holds a lock, works in a temporary folder beside guest/
and swaps it in whole, so concurrent builds and a build that fails (no
network, no space) never leave a half-written guest/."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from qnet_tui.lab import cpio, kmod
from qnet_tui.lab.guestinit import INIT_SHA256, GuestConfig, base_entries, guest_cpio

KERNEL_META = "linux-image-cloud-amd64"  # depends on the current versioned cloud kernel
BUSYBOX = "busybox-static"
BUSYBOX_PATH = "bin/busybox"  # in busybox-static's files
INSTALLED_BUSYBOX = Path("/") / BUSYBOX_PATH
MODULES = ["virtio_net", "virtio_pci"]  # and what they depend on
APPEND = "console=ttyS0 panic=-1 quiet"  # the kernel command line the image expects
FORMAT = 1  # of the cache's layout; a new one rebuilds

Runner = Callable[..., subprocess.CompletedProcess]  # (argv, cwd=None)


class GuestImageError(Exception):
    """One line that says what failed; nothing half-built is left behind."""


def cache_root() -> Path:
    if folder := os.environ.get("QNET_CACHE_DIR"):
        return Path(folder)
    if os.geteuid() == 0:
        return Path("/var/cache/qnet-tui")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qnet-tui"


@dataclass(frozen=True)
class Inputs:
    kernel_package: str
    kernel_version: str
    busybox_version: str
    busybox_installed: bool  # take /bin/busybox from the installed package, else download it
    init_sha256: str = INIT_SHA256
    format: int = FORMAT

    def key(self) -> dict:
        """What the manifest must match for the cached image to be current."""
        return {k: v for k, v in asdict(self).items() if k != "busybox_installed"}


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path  # the base initramfs, gzip'd newc, padded to 4 bytes
    manifest: dict

    def initrd_for(self, guest: GuestConfig, dest: Path) -> Path:
        """Write base + guest's own cpio to dest (QEMU takes one -initrd file)."""
        data = self.initrd.read_bytes()
        data += b"\0" * (-len(data) % 4)  # the kernel looks for a cpio header on a 4-byte boundary
        dest.write_bytes(data + guest_cpio(guest))
        return dest


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise GuestImageError(f"{argv[0]} not found: building the guest image needs Debian's apt and dpkg") from None


def _complaint(done: subprocess.CompletedProcess) -> str:
    """The line of a failed apt/dpkg run that says why (apt's last 'E:' line)."""
    lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    text = (errors or lines or [f"exit status {done.returncode}"])[-1]
    return text.removeprefix("E: ")


def _field(stanza: str, name: str) -> str | None:
    for line in stanza.splitlines():
        key, sep, value = line.partition(":")
        if sep and key == name:
            return value.strip()
    return None


def _show(run: Runner, *packages: str) -> dict[str, str]:
    """apt-cache's stanza of each package's candidate version, by package name
    (one call: each one reads all of apt's lists, close to a second here)."""
    done = run(["apt-cache", "show", "--no-all-versions", *packages])
    stanzas = {_field(st, "Package") or "": st for st in done.stdout.split("\n\n") if st.strip()}
    for package in packages:
        if package not in stanzas:
            raise GuestImageError(
                f"no package {package} in apt's lists ({_complaint(done)}): run 'apt-get update' first "
                "(the guest image is built from Debian's packages)"
            )
    return stanzas


def resolve(run: Runner = _run) -> Inputs:
    """The packages and versions a build would use now (apt's lists, no download)."""
    installed = run(["dpkg-query", "-W", "-f", "${Status} ${Version}", BUSYBOX])
    status = installed.stdout.split() if installed.returncode == 0 else []
    busybox_installed = status[:3] == ["install", "ok", "installed"] and len(status) == 4
    found = _show(run, KERNEL_META, *([] if busybox_installed else [BUSYBOX]))
    # "linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)": the meta package pins the version.
    depends = [d.strip() for d in (_field(found[KERNEL_META], "Depends") or "").split(",")]
    kernel = next((d for d in depends if d.startswith("linux-image-")), None)
    if kernel is None:
        raise GuestImageError(f"{KERNEL_META} depends on no linux-image-* package")
    name, _, pin = kernel.partition(" ")
    version = pin.strip("()").removeprefix("=").strip() if pin.startswith("(=") else None
    if version is None:
        version = _field(_show(run, name)[name], "Version") or "?"
    if busybox_installed:
        return Inputs(name, version, status[3], busybox_installed=True)
    return Inputs(name, version, _field(found[BUSYBOX], "Version") or "?", busybox_installed=False)


def unpack(package: str, version: str, into: Path, run: Runner = _run) -> Path:
    """Download package=version with apt-get and unpack it with dpkg -x (no install)."""
    into.mkdir(parents=True, exist_ok=True)
    # As root apt drops to user _apt, who cannot write our private folder.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    done = run(["apt-get", "-q", *sandbox, "download", f"{package}={version}"], cwd=into)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        raise GuestImageError(f"cannot download {package} {version}: {_complaint(done)}")
    tree = into / package
    done = run(["dpkg", "-x", str(debs[0]), str(tree)])
    debs[0].unlink()
    if done.returncode != 0:
        raise GuestImageError(f"cannot unpack {debs[0].name}: {_complaint(done)}")
    return tree


Unpacker = Callable[[str, str, Path], Path]


def build(inputs: Inputs, work: Path, unpack: Unpacker = unpack, log: Callable[[str], None] = lambda _: None) -> None:
    """Make vmlinuz, initrd.gz and manifest.json in the (empty) folder work."""
    log(f"kernel: {inputs.kernel_package} {inputs.kernel_version}")
    tree = unpack(inputs.kernel_package, inputs.kernel_version, work / "pkg")
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
    modules_dir = tree / "lib" / "modules"
    if not vmlinuz or not modules_dir.is_dir():
        raise GuestImageError(f"{inputs.kernel_package} has no boot/vmlinuz-* or no lib/modules")
    try:
        modules = kmod.closure(MODULES, modules_dir)
    except kmod.ModuleError as exc:
        raise GuestImageError(f"{inputs.kernel_package}: {exc}") from None
    if inputs.busybox_installed:
        log(f"busybox: {BUSYBOX} {inputs.busybox_version} (installed)")
        busybox = INSTALLED_BUSYBOX
    else:
        log(f"busybox: {BUSYBOX} {inputs.busybox_version}")
        busybox = unpack(BUSYBOX, inputs.busybox_version, work / "pkg") / BUSYBOX_PATH
    try:
        busybox_data = busybox.read_bytes()
    except OSError as exc:
        raise GuestImageError(f"cannot read busybox at {busybox}: {exc.strerror}") from None
    shutil.copyfile(vmlinuz[0], work / "vmlinuz")
    base = gzip.compress(cpio.archive(base_entries(busybox_data, modules)), compresslevel=6, mtime=0)
    (work / "initrd.gz").write_bytes(base + b"\0" * (-len(base) % 4))
    shutil.rmtree(work / "pkg")
    manifest = inputs.key() | {"modules": [name for name, _ in modules], "append": APPEND}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"modules: {' '.join(manifest['modules'])}")


def _image(folder: Path) -> GuestImage | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(folder / "vmlinuz", folder / "initrd.gz", manifest)
    return image if image.kernel.is_file() and image.initrd.is_file() else None


def cached(root: Path | None = None) -> GuestImage | None:
    """The image in the cache as it is (no check of the inputs, no build)."""
    return _image((root or cache_root()) / "guest")


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / "guest.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if we die
        yield


def _swap_in(work: Path, final: Path) -> None:
    """Replace final by work with two renames; a reader sees old or new, and a
    crash between them leaves no guest/ (the next run builds it again)."""
    if final.exists():
        os.rename(final, work.parent / "old")  # in the build's temporary folder, removed with it
    os.rename(work, final)


def _clear_leftovers(root: Path) -> None:
    """Temporary folders of a build that was killed (we hold the lock: no build runs)."""
    for path in root.glob(".build-*"):
        shutil.rmtree(path, ignore_errors=True)


# What changes when apt's lists are updated or a package is installed: the
# only times a build's inputs (resolve()) can change.
APT_STATE = ("/var/lib/dpkg/status", "/var/lib/apt/lists", "/var/cache/apt/pkgcache.bin")


def apt_state() -> str:
    parts = []
    for path in APT_STATE:
        try:
            st = os.stat(path)
        except OSError:
            parts.append("-")
        else:
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    return " ".join(parts)


def _note_apt_state(image: GuestImage, state: str) -> None:
    """Record in the manifest the apt state its inputs were found current in
    (a cache that cannot be written just asks apt again next time)."""
    manifest = image.manifest | {"apt_state": state}
    path = image.kernel.with_name("manifest.json")
    tmp = path.with_name(".manifest.json.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, path)


def ensure(
    rebuild: bool = False,
    root: Path | None = None,
    run: Runner = _run,
    unpacker: Unpacker | None = None,
    log: Callable[[str], None] = lambda _: None,
    state: Callable[[], str] = apt_state,
) -> GuestImage:
    """The current guest image, built first if it is missing, out of date or
    `rebuild` is asked for. Raises GuestImageError with one line. Asking apt
    what a build would use takes about a second: it is asked only when apt's
    state changed since the image was found current."""
    root = root or cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            _clear_leftovers(root)
            current = cached(root)
            now = state()
            if (
                not rebuild
                and current is not None
                and current.manifest.get("apt_state") == now
                and current.manifest.get("init_sha256") == INIT_SHA256
                and current.manifest.get("format") == FORMAT
            ):
                return current
            try:
                inputs = resolve(run)
            except GuestImageError as exc:
                if current is None or rebuild:
                    raise
                log(f"cannot check for newer packages ({exc}); using the image built before")
                return current
            built_from = {k: current.manifest.get(k) for k in inputs.key()} if current else None
            if not rebuild and built_from == inputs.key():
                _note_apt_state(current, now)
                return cached(root) or current
            log("building the guest image in " + str(root / "guest"))
            with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
                work = Path(tmp) / "guest"
                work.mkdir()
                build(inputs, work, unpacker or (lambda p, v, d: unpack(p, v, d, run)), log)
                _swap_in(work, root / "guest")
                _note_apt_state(cached(root), now)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise GuestImageError(f"no space left on the device of {root}: free some, then build again") from None
        where = f" {exc.filename}" if exc.filename else ""
        raise GuestImageError(f"cannot write the guest image cache{where}: {exc.strerror or exc}") from None
    image = cached(root)
    if image is None:  # someone removed it under us
        raise GuestImageError(f"the guest image in {root / 'guest'} vanished after it was built")
    return image
