"""Statistics snapshots of a running lab: cumulative counters from the
forwarding path, rates between two snapshots, decoded frame samples, and the
drops the kernel counted before a frame ever reached the worker."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from qnet_tui.lab import links, netns
from qnet_tui.lab.checks import Checks
from qnet_tui.lab.conversations import GROUPS, node_names
from qnet_tui.lab.kernelhub import VethPort
from qnet_tui.lab.linkimpair import impaired
from qnet_tui.lab.ports import Hub, Port, TapPort
from qnet_tui.lab.realize import Lab
from qnet_tui.model.kinds import Kind
from qnet_tui.model.values import si


class GuestQueues:
    """Frames a guest (or a tap node's bridge) sent that the kernel dropped
    because the tap's queue to the worker was full (a kernel hub's veth: the
    hub's end could not take them): the device's tx_dropped. The forwarding
    path never sees them; read once per statistics tick, one netlink socket
    per namespace, kept for the lab's life."""

    def __init__(self, lab: Lab) -> None:
        self.devices: dict[str, list[tuple[str, Port]]] = {}  # namespace -> (ifname, port)
        for name, port in lab.ports.items():
            node = lab.topology.nodes.get(name)
            if not isinstance(port, (TapPort, VethPort)) or node is None:
                continue
            if node.kind is Kind.TAP:
                self.devices.setdefault(lab.host_ns, []).append((name, port))
            elif node.kind is Kind.GUEST_NIC:
                self.devices.setdefault(lab.namespace_of(name), []).append((lab.ifname_of(name), port))
        self.iprs: dict[str, IPRoute] = {}

    def read(self) -> None:
        for ns, devices in self.devices.items():
            try:
                ipr = self.iprs.get(ns) or self.iprs.setdefault(ns, netns.iproute(ns))
                links = {link.get_attr("IFLA_IFNAME"): link for link in ipr.get_links()}
            except (OSError, NetlinkError):
                continue  # the namespace is going (the lab stops): keep the last counts
            for ifname, port in devices:
                link = links.get(ifname)
                counters = link.get_attr("IFLA_STATS64") if link is not None else None
                if counters is not None:
                    port.device_dropped(counters["tx_dropped"])

    def close(self) -> None:
        for ipr in self.iprs.values():
            ipr.close()
        self.iprs.clear()


class Stats:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.last: dict[str, tuple[float, int, int]] = {}
        self.wall = time.time()
        self._decode = None
        self.queues = GuestQueues(lab)
        self.generation = lab.generation
        self.names = node_names(lab.topology.nodes.values())
        self.checks = Checks(lab.topology, lab.log)

    def lab_changed(self) -> None:
        """The lab took a change (apply, or an impairment that moved a hub to
        the worker): its taps are others now."""
        self.queues.close()
        self.queues = GuestQueues(self.lab)
        self.generation = self.lab.generation
        self.names = node_names(self.lab.topology.nodes.values())
        self.checks.topology_changed(self.lab.topology, [hub.name for hub in self.lab.all_hubs])
        gone = self.last.keys() - {hub.name for hub in self.lab.all_hubs}
        for name in gone:
            del self.last[name]

    def _hub_stats(self, hub: Hub, now: float) -> dict[str, Any]:
        s = hub.stats()
        then, frames, size = self.last.get(hub.name, (now, s["frames"], s["bytes"]))
        elapsed = now - then
        s["fps"] = round((s["frames"] - frames) / elapsed, 1) if elapsed > 0 else 0.0
        s["bps"] = round((s["bytes"] - size) * 8 / elapsed, 1) if elapsed > 0 else 0.0  # bits per second
        self.last[hub.name] = (now, s["frames"], s["bytes"])
        hub.count_conversations(self.wall)
        s["conversations"] = hub.conversations.snapshot(self.names)
        s["checks"] = self.checks.run(hub, self.wall)
        return s

    def snapshot(self) -> dict[str, Any]:
        if self.generation != self.lab.generation:
            self.lab_changed()
        self.queues.read()
        now, self.wall = time.monotonic(), time.time()
        vlans = {}
        for hub in self.lab.hubs:
            s = self._hub_stats(hub, now)
            s["vlan"] = hub.vlan
            vlans[str(hub.vlan)] = s
        peers = {hub.name: self._hub_stats(hub, now) for hub in self.lab.pairs}
        vms = {name: guest.stats() for name, guest in self.lab.vm_guests.items()}
        return {
            "time": round(self.wall, 3),
            "lab": self.lab.name,
            "vlans": vlans,
            "peers": peers,
            "vms": vms,
            "links": links.down(self.lab),
            "impaired": impaired(self.lab),
        }

    def close(self) -> None:
        self.queues.close()

    def samples(self) -> list[dict[str, Any]]:
        """Decoded samples since the last call: a handful per hub per tick, so
        decoding (scapy, slow) stays off the per-frame path and bounded."""
        out = []
        for hub in self.lab.all_hubs:
            for sample in hub.take_samples():
                out.append(
                    {
                        "time": round(sample.time, 6),
                        "hub": hub.name,
                        "vlan": hub.vlan,
                        "port": sample.port,
                        "length": sample.length,
                        "summary": self.summary(sample.frame),
                        "hex": sample.frame.hex(),
                    }
                )
        return out

    def drop_samples(self) -> None:
        for hub in self.lab.all_hubs:
            hub.take_samples()

    def summary(self, frame: bytes) -> str:
        if self._decode is None:
            logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
            import scapy.layers.inet
            import scapy.layers.inet6  # noqa: F401 - binds IPv6 under Ether, as inet binds IPv4
            from scapy.layers.l2 import Ether

            self._decode = Ether
        try:
            return self._decode(frame).summary()
        except Exception as exc:  # a malformed frame is shown as such, never fatal
            return f"undecodable frame ({type(exc).__name__})"


def flow_text(flow: dict[str, Any]) -> str:
    """vm1:40000 > vm2:5201 tcp 1.2 Mbit/s (3.4 MB): a flow's ends by node where the topology names them."""

    def end(side: str) -> str:
        port = flow[f"{side}_port"]
        node = flow[f"{side}_node"]
        name = node if node and node not in GROUPS else flow[side]
        return f"{name}:{port}" if port is not None else name

    return f"{end('a')} > {end('b')} {flow['proto']} {si(flow['bps'], 'bit/s')} ({si(flow['bytes'], 'B')})"


def format_table(snapshot: dict[str, Any]) -> str:
    """The human form of a snapshot, one line per VLAN and direct peer."""
    lines = [time.strftime("%H:%M:%S", time.localtime(snapshot["time"]))]
    rows = [(f"VLAN {k}", v) for k, v in snapshot["vlans"].items()] + list(snapshot["peers"].items())
    for label, s in rows:
        protocols = " ".join(f"{k} {v}" for k, v in s["protocols"].items() if v)
        cut = ", ".join(name for name, p in s["ports"].items() if p.get("looped"))
        lines.append(
            f"  {label:<18} {s['frames']:>10} frames {si(s['bytes'], 'B'):>9}  "
            f"{si(s['fps'], 'fps'):>10} {si(s['bps'], 'bit/s'):>12}  drops {s['drops']:<6} {protocols}"
            + (f"  loop: {cut} cut" if cut else "")
        )
        flows = (s.get("conversations") or {}).get("flows") or []
        if flows:
            top = sorted(flows, key=lambda f: f["bps"], reverse=True)[:3]
            lines.append("  " + " " * 18 + " top flows: " + "; ".join(flow_text(f) for f in top))
    machines = snapshot.get("machines")
    if machines:
        lines.append(
            "  machines: "
            + ", ".join(f"{n} {m['state']}" + (f" ({m['reason']})" if m["reason"] else "") for n, m in machines.items())
        )
    playing = snapshot.get("scenario")
    if playing:
        lines.append(
            f"  scenario {playing['name']} {playing['elapsed']:.0f}/{playing['duration']:g} s, "
            f"step {playing['step']}/{playing['steps']}: {playing['doing']}"
        )
    return "\n".join(lines)
