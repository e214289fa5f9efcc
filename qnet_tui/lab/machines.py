"""One worker's part in a lab across machines (a file with `hosts:`).

Every machine runs a worker for its share of the topology (model/placement.py):
the controller's (`qnet-tui run FILE`, nodes without `host:`) and one per
host (`qnet-tui run FILE --host NAME`, which the controller starts over ssh:
lab/remote.py). A hub with ports on several machines gets, on each, a VXLAN
remote port per other machine (lab/vxlan.py), all on one UDP socket. The
controller merges its shares' statistics into its own, so the app and
`run --json` see one lab; a share started with a lease stops when its
controller stops renewing it.

A file without `hosts:` is one machine's lab, as before: nothing here acts."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qnet_tui import protocol
from qnet_tui.lab import remote
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.realize import Lab, hub_members, plain_frames
from qnet_tui.lab.runstate import LabError
from qnet_tui.lab.vxlan import VxlanEndpoint, VxlanPort
from qnet_tui.model import placement
from qnet_tui.model.topology import Topology

Log = Callable[[str, str], None]
CONTROLLER_PORT = 4789  # the controller's machine receives VXLAN here (hosts say their own)


def port_name(machine: str) -> str:
    """A hub's remote port to machine: vxlan:b, or vxlan:controller for the controller's machine."""
    return f"vxlan:{machine or 'controller'}"


class Machines:
    def __init__(
        self,
        topology: Topology,
        text: str | None,
        file: str,
        host: str | None,
        controller: str | None,
        lease: float | None,
    ) -> None:
        self.full = topology
        self.text = text or ""  # the file as read: what the other machines are given
        self.file = file
        self.machine = host or placement.THIS
        self.controller = controller  # the controller machine's underlay address (a share's view)
        self.hosts = placement.hosts(topology)
        self.spread = topology.hosts is not None
        self.local = placement.share(topology, self.machine) if self.spread else topology
        # This machine's hubs with ports on others too -> those machines.
        self.spans = placement.spans(topology, self.machine) if self.spread else {}
        self.lab_name = remote.share_name(str(topology.name), host) if host else str(topology.name)
        # A share's lease (a controller's: what it grants its shares).
        self.lease = lease if lease is not None else remote.LEASE_S
        self.leased = host is not None and lease is not None
        self.lease_until = float("inf")
        self.shares: list[remote.RemoteShare] = []
        self.endpoint: VxlanEndpoint | None = None
        self.deadline = 0.0  # for the other machines' shares to run

    # -- start ---------------------------------------------------------------------

    def _address(self, machine: str) -> tuple[str, int]:
        """Where machine receives VXLAN: (address, UDP port)."""
        if machine == placement.THIS:
            if not self.controller:
                raise LabError(
                    f"this share has hubs with ports on the controller's machine: give its address "
                    f"(qnet-tui run {self.file} --host {self.machine} --controller ADDRESS)"
                )
            return remote.resolve(self.controller), CONTROLLER_PORT
        host = self.hosts.get(machine)
        if host is None or not host.address:
            raise LabError(f"host {machine} has no address (give address: or ssh: in hosts:)")
        return remote.resolve(host.address), host.vxlan_port

    def keep_file(self) -> None:
        """A share keeps the file it was given, for the verbs its controller's
        machine runs here over ssh (lab/elsewhere.py); it goes with the folder."""
        if self.machine == placement.THIS or not self.text:
            return
        path = protocol.topology_path(self.lab_name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.text)
        except OSError as exc:
            raise LabError(f"cannot keep the lab's file in {path}: {exc.strerror}") from None

    def launch(self, folder: Path, log: Log) -> None:
        """The controller: start every other machine's share over ssh (they
        build while this one does)."""
        self.deadline = time.monotonic() + remote.START_S  # the whole start, this share's build included
        if not self.spread or self.machine != placement.THIS:
            return
        used = set(placement.machine_of(self.full).values()) - {placement.THIS}
        for name in sorted(used):
            host = self.hosts.get(name)
            if host is None:
                raise LabError(f"host {name} is not (rightly) described in hosts:")
            if not host.ssh:
                log(
                    "info",
                    f"host {name} has no ssh: start its share there "
                    f"(qnet-tui run FILE --host {name} --controller ADDRESS)",
                )
                continue
            address, port = self._address(name)
            try:
                mine = remote.source_address(address, port)
            except OSError as exc:
                raise LabError(f"host {name}: no way to {address} from here: {exc.strerror or exc}") from None
            share = remote.RemoteShare(
                str(self.full.name),
                host,
                self.text,
                self.file,
                mine,
                folder,
                log,
                self.lease,
            )
            self.shares.append(share)
            share.launch()
            log("info", f"starting host {name}'s share over ssh ({host.ssh})")

    def stitched(self) -> frozenset[str]:
        """This machine's hubs that have ports on others too."""
        return frozenset(self.spans)

    def plain(self) -> frozenset[str]:
        """The stitched hubs whose frames are plain Ethernet: a member on some
        machine (a socket, a QEMU VM's NIC) carries no virtio-net header. Every
        share reads the whole file, so both ends of a stitch agree."""
        return frozenset(hub for hub in self.spans if plain_frames(self.full, hub_members(self.full, hub)))

    def stitch(self, lab: Lab, loop: Loop, log: Log) -> None:
        """A remote port on every hub that has ports on other machines."""
        spans = self.spans
        if not spans:
            return
        peers = {m: self._address(m) for others in spans.values() for m in others}
        if self.machine == placement.THIS:
            family = socket.AF_INET6 if any(":" in a for a, _ in peers.values()) else socket.AF_INET
            bind, port = ("::" if family == socket.AF_INET6 else "0.0.0.0"), CONTROLLER_PORT
        else:
            bind, port = self._address(self.machine)
        self.endpoint = VxlanEndpoint(loop, log, bind, port)
        try:
            self.endpoint.start()
        except OSError as exc:
            raise LabError(f"cannot receive VXLAN on {bind} port {port}: {exc.strerror or exc}") from None
        hubs = {hub.name: hub for hub in lab.hubs}
        for hub_id, others in sorted(spans.items()):
            node = self.full.nodes[hub_id]
            vnet = hub_id not in lab.plain  # as its hub's plan has it (the worker set it from plain())
            for machine in sorted(others):
                address, peer_port = peers[machine]
                port_ = VxlanPort(port_name(machine), self.endpoint, placement.vni(node), address, peer_port, vnet)
                hubs[hub_id].attach(port_)
                self.endpoint.add(port_)  # it probes the path from now on
                lab.ports[f"{hub_id}/{port_.name}"] = port_
            log("info", f"hub {hub_id} stitched to {', '.join(m or 'the controller' for m in sorted(others))}")

    def await_running(self, loop: Loop, on_message: Callable[[remote.RemoteShare, protocol.Message], None]) -> None:
        for share in self.shares:
            share.await_running(self.deadline)
        for share in self.shares:
            share.follow(loop, on_message)
        if self.leased:
            # Until its first renewal the controller may still be building its own
            # share (VMs booting): the lease runs from its first word, or START_S.
            self.lease_until = time.monotonic() + max(self.lease, remote.START_S)

    # -- run -----------------------------------------------------------------------

    def renew(self, seconds: float) -> None:
        if self.leased:
            self.lease_until = time.monotonic() + max(0.0, min(seconds, 3600.0))

    def lease_ran_out(self) -> bool:
        return time.monotonic() > self.lease_until

    def merge(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The controller's statistics with its shares' merged in: one lab."""
        if not self.shares:
            return snapshot
        for share in self.shares:
            theirs = share.stats if share.state == "running" else None
            if not theirs:
                continue
            for key in ("vlans", "peers"):
                for name, hub in theirs.get(key, {}).items():
                    mine = snapshot[key].get(name)
                    snapshot[key][name] = hub if mine is None else merge_hub(mine, hub)
            for key in ("vms",):
                snapshot[key] = {**(snapshot.get(key) or {}), **(theirs.get(key) or {})}
            for key in ("links", "impaired"):
                snapshot[key] = [*(snapshot.get(key) or []), *(theirs.get(key) or [])]
        snapshot["machines"] = {share.host.name: share.machine_stats() for share in self.shares}
        return snapshot

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        for share in self.shares:
            share.ask_stop()

    def finish(self) -> None:
        """After the local share is down: wait for the others, close the endpoint."""
        remote.stop_all(self.shares)
        self.shares.clear()
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None


def merge_hub(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """One hub as two machines count it. Each counts the frames that entered
    the lab on its side (not those its remote ports brought: lab/vxlan.py), so
    totals add up; conversations add by their ends."""
    out = dict(mine)
    for key in ("frames", "bytes", "drops", "fps", "bps"):
        out[key] = mine[key] + theirs[key]
    out["protocols"] = {**mine["protocols"]}
    for name, count in theirs["protocols"].items():
        out["protocols"][name] = out["protocols"].get(name, 0) + count
    out["ports"] = {**mine["ports"], **theirs["ports"]}
    out["checks"] = [*(mine.get("checks") or []), *(theirs.get("checks") or [])] or mine.get("checks")
    a, b = mine.get("conversations"), theirs.get("conversations")
    if a and b:
        out["conversations"] = merge_conversations(a, b)
    elif b:
        out["conversations"] = b
    return out


def merge_conversations(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"others": {}}
    for table in ("pairs", "flows"):
        rows: dict[tuple, dict[str, Any]] = {}
        for row in [*a[table], *b[table]]:
            key = (*sorted(((row["a"], row["a_port"]), (row["b"], row["b_port"])), key=str), row["proto"])
            seen = rows.get(key)
            if seen is None:
                rows[key] = dict(row)
                continue
            for field in ("frames", "bytes", "fps", "bps"):
                seen[field] += row[field]
            if row["first"] < seen["first"]:  # a: the side seen sending first, on either machine
                for name in ("a", "a_port", "a_node", "b", "b_port", "b_node", "first"):
                    seen[name] = row[name]
            seen["last"] = max(seen["last"], row["last"])
        out[table] = list(rows.values())
        ra, rb = a["others"][table], b["others"][table]
        out["others"][table] = {k: ra[k] + rb[k] for k in ra}
    return out
