"""Lab tests: real namespaces, real taps, real ping and iperf3. They need root
and /dev/net/tun; every lab gets a unique name and a private runtime folder,
and the fixture proves that nothing of it is left afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from qnet_tui.lab import netns

SAMPLES = Path(__file__).parents[2] / "sample_topologies"
FRAMES = Path(__file__).with_name("frames.py")

if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
    pytest.skip("lab tests need root and /dev/net/tun", allow_module_level=True)


def lab_namespaces(name: str) -> list[str]:
    return [n for n in netns.existing() if netns.belongs_to(n, name)]


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def network_state(ns: str | None = None) -> dict:
    """Links, addresses, routes and bridges of a namespace (by default the one
    the tests run in), by interface name: a link moved away and back may come
    back with another index."""
    with contextlib.ExitStack() as stack:
        if ns:
            stack.enter_context(netns.inside(ns))
        ipr = IPRoute()
    with ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        links = [
            (
                link.get_attr("IFLA_IFNAME"),
                link.get_attr("IFLA_ADDRESS"),
                link.get_attr("IFLA_OPERSTATE"),
                names.get(link.get_attr("IFLA_MASTER")),
                link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
            )
            for link in ipr.get_links()
        ]
        addresses = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"], names.get(a["index"])) for a in ipr.get_addr()]
        routes = [
            (
                r["family"],
                r.get_attr("RTA_DST"),
                r["dst_len"],
                r.get_attr("RTA_GATEWAY"),
                names.get(r.get_attr("RTA_OIF")),
                r.get_attr("RTA_TABLE"),
            )
            for r in ipr.get_routes(family=socket.AF_UNSPEC)
        ]
    return {
        name: sorted(items, key=repr)
        for name, items in (("links", links), ("addresses", addresses), ("routes", routes))
    }


def underlay(a: str, b: str, a_address: str, b_address: str) -> None:
    """Two namespaces standing for two machines, joined by a veth pair with
    a_address/24 on a and b_address/24 on b (the labs-across-machines tests)."""
    suffix = uuid.uuid4().hex[:6]
    with IPRoute() as ipr:
        ipr.link("add", ifname=f"qa{suffix}", kind="veth", peer={"ifname": f"qb{suffix}"})
        ipr.link("set", index=ipr.link_lookup(ifname=f"qa{suffix}")[0], net_ns_fd=a)
        ipr.link("set", index=ipr.link_lookup(ifname=f"qb{suffix}")[0], net_ns_fd=b)
    for ns, ifname, address in ((a, f"qa{suffix}", a_address), (b, f"qb{suffix}", b_address)):
        with netns.inside(ns):
            ipr = IPRoute()
        with ipr:
            for name in ("lo", ifname):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
            ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=address, prefixlen=24)


def watchdog_of(pid: int) -> int:
    """The watchdog is the lab worker's child in a session of its own."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                return int(entry)
    raise AssertionError("no watchdog")


class RunningLab:
    def __init__(self, file: Path, name: str, proc: subprocess.Popen) -> None:
        self.file, self.name, self.proc = file, name, proc
        self.stats: list[dict] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.stats.append(json.loads(line))

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line.rstrip("\n"))

    def wait_running(self) -> RunningLab:
        wait_for(
            lambda: any("is running" in x for x in self.errors) or self.proc.poll() is not None, 30, "the lab to start"
        )
        assert self.proc.poll() is None, "\n".join(self.errors)
        return self

    def exec(self, node: str, *cmd: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "qnet_tui", "exec", str(self.file), node, "--", *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def spawn(self, node: str, *cmd: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "qnet_tui", "exec", str(self.file), node, "--", *cmd],
            stdin=subprocess.PIPE,  # closed by communicate(): frames.py count takes that as "the sender is done"
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def frames(self, node: str, *args: str) -> subprocess.Popen:
        return self.spawn(node, sys.executable, str(FRAMES), *args)

    def latest(self, after: float = 0.0) -> dict:
        """A statistics line emitted after time `after`."""
        return wait_for(
            lambda: next((s for s in reversed(self.stats) if s["time"] > after), None), 10, "a statistics line"
        )

    def vlan(self, vlan: str, after: float = 0.0) -> dict:
        return self.latest(after)["vlans"][vlan]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "run"
    monkeypatch.setenv("QNET_RUNTIME_DIR", str(folder))
    return folder


@pytest.fixture
def make_lab(tmp_path: Path, runtime: Path) -> Iterator[Callable[..., RunningLab]]:
    labs: list[RunningLab] = []

    def start(
        sample: str,
        *extra: str,
        wait: bool = True,
        text: str | None = None,
        inside: str | None = None,
        prelude: str | None = None,
    ) -> RunningLab:
        """Run a sample (or `text`) as a lab of its own; `inside` names the
        namespace the worker starts from (its "machine"), if not the tests'
        own; `prelude`, Python the worker's process runs first (a patch)."""
        name = f"t{uuid.uuid4().hex[:8]}"
        source = text if text is not None else (SAMPLES / sample).read_text()
        file = tmp_path / f"{name}.yaml"
        file.write_text(re.sub(r"^name: .*$", f"name: {name}", source, count=1, flags=re.M))
        python = [sys.executable, "-m", "qnet_tui"]
        if prelude is not None:
            python = [
                sys.executable,
                "-c",
                f"{prelude}\nimport sys\nfrom qnet_tui.cli import main\nsys.exit(main(sys.argv[1:]))",
            ]
        proc = subprocess.Popen(
            [*python, "run", str(file), "--json", "--interval", "0.2", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: netns.enter(inside)) if inside else None,
        )
        lab = RunningLab(file, name, proc)
        labs.append(lab)
        return lab.wait_running() if wait else lab

    yield start
    leaks = []
    for lab in labs:
        if lab.proc.poll() is None:
            lab.stop()
        try:
            wait_for(lambda lab=lab: not lab_namespaces(lab.name), 10, "teardown")
        except AssertionError:
            leaks.append(lab_namespaces(lab.name))
            for ns in lab_namespaces(lab.name):  # never leave a failed test's lab behind
                netns.remove(ns)
    assert not leaks, f"lab namespaces left behind: {leaks}"
