"""Impairments in a running lab: where one direction of a link meets the
worker, and the hooks that put its frames through an Impairer.

A direction X -> Y of a link is impaired at one port of a hub: on the way out
(egress: the frames the hub floods to Y's port) or on the way in (ingress:
the frames X's port hands the hub). Due frames go out from the Loop's timer
heap; the forwarding path of an unimpaired port is untouched (its hub's flood
list holds the port itself, not a hook)."""

from __future__ import annotations

from functools import partial
from time import monotonic
from typing import TYPE_CHECKING

from qnet_tui.lab.impair import LOSS, Impairer, Impairment
from qnet_tui.lab.kernelhub import KernelHub
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.ports import Port, _segments
from qnet_tui.lab.tap import VNET_HDR_LEN
from qnet_tui.model.kinds import Kind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from qnet_tui.lab.realize import Lab


class ImpairError(Exception):
    """An impairment the lab cannot take; the text says why."""


def _count_drop(port: Port, reason: str, segments: int) -> None:
    if reason == LOSS:
        port.drop_impair_loss += segments
    else:
        port.drop_impair_queue += segments


class Egress:
    """Stands in for a port in its hub's flood list."""

    def __init__(self, port: Port, impairer: Impairer, loop: Loop) -> None:
        self.port, self.impairer, self.loop = port, impairer, loop
        self.offset = VNET_HDR_LEN if port.vnet else 0

    def send(self, frame: bytes, segments: int, length: int) -> None:
        port = self.port
        fate = self.impairer.offer(frame, monotonic(), length, self.offset)
        if type(fate) is str:
            _count_drop(port, fate, segments)
            port.impair_tx -= segments
            port.impair_tx_bytes -= length
            if (hub := port.hub) is not None and hub.capture is not None:
                hub.capture.dropped(port.name, memoryview(frame)[self.offset :], fate, hub.way(port, out=True))
            return
        times, frame = fate
        for when in times:
            self.loop.call_at(when, partial(port.send, frame, segments, length))
        if len(times) > 1:
            port.impair_tx += segments
            port.impair_tx_bytes += length


class Ingress:
    """Takes the frames a port hands its hub, and forwards them when due."""

    def __init__(self, port: Port, impairer: Impairer, loop: Loop) -> None:
        self.port, self.impairer, self.loop = port, impairer, loop
        self.offset = VNET_HDR_LEN if port.vnet else 0

    def take(self, frames: Iterable[bytes]) -> None:
        port, offset, offer, call_at, now = self.port, self.offset, self.impairer.offer, self.loop.call_at, monotonic()
        for frame in frames:
            fate = offer(frame, now, len(frame) - offset, offset)
            if type(fate) is str:
                _count_drop(port, fate, _segments(frame, offset))
                if (hub := port.hub) is not None and hub.capture is not None:
                    hub.capture.dropped(
                        port.name, memoryview(frame)[offset:], fate, hub.way(port, out=False), outbound=False
                    )
                continue
            times, frame = fate
            for when in times:
                call_at(when, partial(self._forward, frame))

    def _forward(self, frame: bytes) -> None:
        if self.port.hub is not None:
            self.port.hub.forward(self.port, (frame,), impaired=True)


def place(lab: Lab, a: str, b: str) -> tuple[Port, bool]:
    """Where direction a -> b of a link meets the worker: a port, and whether
    on its way out of the hub (True) or in (False)."""
    t = lab.topology
    for end in (a, b):
        if end not in t.nodes:
            raise ImpairError(f"no node {end!r} in this lab")
    if (a, b) not in t.links and (b, a) not in t.links:
        linked = ", ".join(t.neighbours(a)) or "nothing"
        raise ImpairError(f"no link between {a} and {b}; {a}'s links go to {linked}")
    ports = lab.ports
    if t.nodes[b].kind is Kind.HUB and a in ports:
        return ports[a], False
    if t.nodes[a].kind is Kind.HUB and b in ports:
        return ports[b], True
    if b in ports:
        # A pair (guest NIC peered with a tap or socket): out of b's port. A
        # bridge -> tap: what the tap's fd hands the worker.
        return ports[b], a in ports
    if a in ports:  # tap -> bridge: what the worker writes to the tap's fd
        return ports[a], True
    raise ImpairError(
        f"the link {a}-{b} is all in the kernel (a bridge and a host NIC); the worker impairs only "
        "links that pass through it (hubs, taps, guest NICs, sockets)"
    )


def set_impairment(lab: Lab, a: str, b: str, spec: Impairment, seed: int | None = None) -> None:
    """Impair direction a -> b with spec (NONE lifts it). Frames already
    delayed still go out when due. A hub the kernel forwards becomes the
    worker's first (its NICs are made anew)."""
    port, egress = place(lab, a, b)
    hook_on = spec.active
    if hook_on and isinstance(port.hub, KernelHub):
        from qnet_tui.lab import apply  # apply builds on this module

        hub = port.hub.name
        apply.to_worker(lab, hub)
        lab.log("info", f"{hub}: forwarded by the worker now: {a} -> {b} is impaired")
        port, egress = place(lab, a, b)
    if egress:
        port.egress = Egress(port, Impairer(spec, seed), lab.loop) if hook_on else None
        port.egress_spec = spec
        if port.hub is not None:
            port.hub.replan()  # its flood lists name the hook now, or the port again
    else:
        port.ingress = Ingress(port, Impairer(spec, seed), lab.loop) if hook_on else None
        port.ingress_spec = spec


def impairment_of(lab: Lab, a: str, b: str) -> Impairment:
    port, egress = place(lab, a, b)
    return port.egress_spec if egress else port.ingress_spec


def from_topology(lab: Lab) -> None:
    """The impairments the file declares (validated: each text form parses,
    each link passes through the worker)."""
    for (a, b), text in lab.topology.impair.items():
        try:
            set_impairment(lab, a, b, Impairment.parse(text))
        except (ImpairError, ValueError) as exc:
            raise ImpairError(f"link {a} - {b}: impair towards {b}: {exc}") from None


def impaired(lab: Lab) -> list[dict[str, str]]:
    """Every link direction impaired now (by the file, a client, a scenario),
    for the statistics: a -> b and its spec's text form."""
    out = []
    for a, b in lab.topology.links:
        ends = (lab.ports.get(a), lab.ports.get(b))
        if all(p is None or (p.egress is None and p.ingress is None) for p in ends):
            continue  # one test per link when nothing is impaired
        for x, y in ((a, b), (b, a)):
            try:
                spec = impairment_of(lab, x, y)
            except ImpairError:
                break  # a link all in the kernel
            if spec.active:
                out.append({"a": x, "b": y, "spec": spec.format()})
    return out
