"""Cable pull: a link the worker forwards over, taken down and up, each
direction on its own.

A link here is a topology link [A, B] between ports of one of the worker's
hubs: a hub and its port (guest NIC, tap, socket), or the two ends of a
direct pair. Each direction is one flag on one port (ports.py counts what it
drops as `link-down`):
  hub H -> port P   P.down_out (nothing H floods reaches P)
  port P -> hub H   P.down_in  (nothing P sends enters H)
  pair P -> Q       P.down_in
A link down both ways is a pulled cable, and the ends see it: a tap loses
carrier (TUNSETCARRIER: NO-CARRIER in the guest), a VM's NIC gets QMP
set_link. One direction alone leaves carrier on: a one-way fault is one the
guest cannot see."""

from __future__ import annotations

import json
from dataclasses import dataclass

from qnet_tui.lab.kernelhub import KernelHub, VethPort
from qnet_tui.lab.ports import Hub, Port, TapPort
from qnet_tui.lab.realize import Lab
from qnet_tui.lab.tap import set_carrier

DIRECTIONS = ("both", "a-b", "b-a")


class LinkError(Exception):
    """A link the lab does not have (or does not forward over); says which."""


@dataclass(frozen=True)
class Cable:
    a: str
    b: str
    hub: Hub
    a_b: tuple[Port, str]  # the port and its flag ("in" or "out") that carry A -> B
    b_a: tuple[Port, str]

    def up(self, way: tuple[Port, str]) -> bool:
        port, flag = way
        return not (port.down_in if flag == "in" else port.down_out)

    @property
    def state(self) -> tuple[bool, bool]:
        """(A -> B up, B -> A up)."""
        return self.up(self.a_b), self.up(self.b_a)

    @property
    def ports(self) -> list[Port]:
        return list({id(p): p for p in (self.a_b[0], self.b_a[0])}.values())


def _name(text: str) -> str:
    return json.dumps(text)[:40]


def find(lab: Lab, a: str, b: str) -> Cable:
    """The cable of link [a, b] (either order); LinkError says why there is none."""
    nodes = lab.topology.nodes
    for end in (a, b):
        if end not in nodes:
            raise LinkError(f"link: no node {_name(end)} in lab {lab.name}")
    if b not in lab.topology.neighbours(a):
        linked = ", ".join(lab.topology.neighbours(a)) or "nothing"
        raise LinkError(f"link: no link {a} - {b} in lab {lab.name}; {a} links to {linked}")
    hubs = {h.name: h for h in lab.hubs}
    pa, pb = lab.ports.get(a), lab.ports.get(b)
    if a in hubs and pb is not None and pb.hub is hubs[a]:
        return Cable(a, b, hubs[a], (pb, "out"), (pb, "in"))
    if b in hubs and pa is not None and pa.hub is hubs[b]:
        return Cable(a, b, hubs[b], (pa, "in"), (pa, "out"))
    if pa is not None and pb is not None and pa.hub is pb.hub and pa.hub is not None:
        return Cable(a, b, pa.hub, (pa, "in"), (pb, "in"))
    raise LinkError(
        f"link: {a} - {b} is not forwarded by the lab (a bridge's links are the kernel's); "
        "links to a hub, and between a guest NIC and its tap or socket, can be taken down"
    )


def set_state(lab: Lab, cable: Cable, up: bool, direction: str) -> tuple[bool, bool]:
    """Take the directions named down or up; carrier follows (see the module's
    docstring). Returns the cable's new (A -> B, B -> A)."""
    if direction not in DIRECTIONS:
        raise LinkError(f"link: direction is {_name(direction)}, not one of {', '.join(DIRECTIONS)}")
    ways = {"both": (cable.a_b, cable.b_a), "a-b": (cable.a_b,), "b-a": (cable.b_a,)}[direction]
    pulled_before = cable.state == (False, False)
    for port, flag in ways:
        down_in, down_out = port.down_in, port.down_out
        if flag == "in":
            down_in = not up
        else:
            down_out = not up
        cable.hub.set_down(port, down_in, down_out)
    pulled = cable.state == (False, False)
    if pulled != pulled_before:
        for port in cable.ports:
            carrier(lab, port, not pulled)
    return cable.state


def carrier(lab: Lab, port: Port, up: bool) -> None:
    if isinstance(port, VethPort) and isinstance(port.hub, KernelHub):
        port.hub.set_carrier(port, up)
        return
    if isinstance(port, TapPort) and port.fd >= 0:
        try:
            set_carrier(port.fd, up)
        except OSError as exc:
            lab.log("warning", f"{port.name}: cannot set its carrier {'on' if up else 'off'}: {exc.strerror}")
        return
    for guest in lab.vm_guests.values():
        if port.name in guest.links:
            guest.set_link(port.name, up)


def down(lab: Lab) -> list[dict]:
    """Every link with a direction down, for the statistics: a, b as the
    file has them, and whether each way is up."""
    out = []
    for a, b in lab.topology.links:
        ends = (lab.ports.get(a), lab.ports.get(b))
        if not any(p is not None and (p.down_in or p.down_out) for p in ends):
            continue  # every cable with a direction down has a port end with a flag set
        try:
            a_b, b_a = find(lab, a, b).state
        except LinkError:
            continue
        if not (a_b and b_a):
            out.append({"a": a, "b": b, "a_b": a_b, "b_a": b_a})
    return out


def describe(a: str, b: str, state: tuple[bool, bool]) -> str:
    a_b, b_a = state
    if a_b and b_a:
        return f"link {a} - {b}: up"
    if not (a_b or b_a):
        return f"link {a} - {b}: down"
    return f"link {a} - {b}: {a} -> {b} {'up' if a_b else 'down'}, {b} -> {a} {'up' if b_a else 'down'}"
