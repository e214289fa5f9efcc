"""A topology as a diagram: Mermaid (`graph LR`) or Graphviz DOT.

One node per element, its shape by kind, its label the id and what says most
about it (VLAN, addresses); each hub is a box of its own (a Mermaid subgraph,
a DOT cluster) holding the ports that hang on it alone: its VLAN. A guest is
tied to its NICs by dotted lines. Shapes:

    kind        Mermaid                      DOT
    hub         hexagon        {{ }}         hexagon
    bridge      subroutine     [[ ]]         box, double border
    guest NIC   rounded        ( )           box, rounded
    guest       rounded        ( )           box, rounded, bold
    tap         parallelogram  [/ /]         parallelogram
    socket      asymmetric     > ]           cds
    host NIC    cylinder       [( )]         cylinder
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from qnet_tui.model.exported import Export
from qnet_tui.model.guests import named_guest
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology

MERMAID_SHAPES = {
    Kind.HUB: ("{{", "}}"),
    Kind.BRIDGE: ("[[", "]]"),
    Kind.GUEST_NIC: ("(", ")"),
    Kind.GUEST: ("(", ")"),
    Kind.TAP: ("[/", "/]"),
    Kind.SOCKET: (">", "]"),
    Kind.HOST_NIC: ("[(", ")]"),
}
DOT_SHAPES = {
    Kind.HUB: "shape=hexagon",
    Kind.BRIDGE: "shape=box, peripheries=2",
    Kind.GUEST_NIC: 'shape=box, style="rounded"',
    Kind.GUEST: 'shape=box, style="rounded,bold"',
    Kind.TAP: "shape=parallelogram",
    Kind.SOCKET: "shape=cds",
    Kind.HOST_NIC: "shape=cylinder",
}
_MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Words Mermaid's flowchart grammar reads as its own, whatever their case.
_MERMAID_WORDS = {
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "style",
    "class",
    "classdef",
    "click",
    "linkstyle",
    "direction",
}


def _details(node: Node) -> list[str]:
    """The label's lines after the id."""
    kind = node.kind
    if kind is Kind.HUB:
        return [f"VLAN {node.get('vlan')}"]
    if kind is Kind.SOCKET:
        return [f"{node.get('transport')} {node.get('address')}"]
    out = []
    if kind is Kind.GUEST:
        what = "VM guest" if node.get("vm") is True else "guest"
        out.append(f"{what}, forwarding" if node.get("forwarding") is True else what)
    if kind is Kind.HOST_NIC and isinstance(node.get("interface"), str):
        out.append(f"interface {node.get('interface')}")
    if kind is Kind.GUEST_NIC and node.is_qemu_vm:
        out.append("QEMU VM")
    out += [str(node.get(k)) for k in ("ipv4", "ipv6") if isinstance(node.get(k), str)]
    return out


def _vlans(t: Topology) -> dict[str, list[str]]:
    """Each hub's VLAN box: the hub, then the ports whose one link is to it, in file order."""
    degree: dict[str, int] = {}
    peer: dict[str, str] = {}  # a node's last link's other end: its only one where degree is 1
    for a, b in t.links:
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
        peer[a], peer[b] = b, a
    out: dict[str, list[str]] = {}
    for node in t.nodes.values():
        if node.kind is Kind.HUB:
            out[node.id] = [node.id]
    for node in t.nodes.values():
        if node.kind is not Kind.HUB and degree.get(node.id) == 1 and peer[node.id] in out:
            out[peer[node.id]].append(node.id)
    return out


def _order(t: Topology, vlans: dict[str, list[str]]) -> Iterator[tuple[str | None, list[str]]]:
    """(hub, its box's nodes) where the hub stands in the file, (None, [node]) for a node in no box."""
    boxed = {n for members in vlans.values() for n in members}
    for node in t.nodes.values():
        if node.id in vlans:
            yield node.id, vlans[node.id]
        elif node.id not in boxed:
            yield None, [node.id]


def _guest_ties(t: Topology) -> list[tuple[str, str]]:
    return [
        (guest, nic.id)
        for nic in t.of_kind(Kind.GUEST_NIC)
        if (guest := named_guest(nic)) is not None and guest in t.nodes
    ]


# -- Mermaid ------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: its entity codes for what would end or mark it up."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


class _MermaidIds:
    """Ids Mermaid reads as ids: a node's own when it is one, else a made one (the label keeps the real)."""

    def __init__(self, t: Topology) -> None:
        self.ids: dict[str, str] = {}
        taken = {n for n in t.nodes if self._safe(n)}
        for n in t.nodes:
            if self._safe(n):
                self.ids[n] = n
                continue
            base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", n)
            made, i = base, 1
            while made in taken:
                i += 1
                made = f"{base}_{i}"
            taken.add(made)
            self.ids[n] = made

    @staticmethod
    def _safe(n: str) -> bool:
        return bool(_MERMAID_ID.fullmatch(n)) and n.lower() not in _MERMAID_WORDS and not n.startswith("vlan_")

    def __getitem__(self, node: str) -> str:
        return self.ids[node]


def to_mermaid(t: Topology, source: str = "") -> Export:
    ids = _MermaidIds(t)
    vlans = _vlans(t)

    def node_line(n: str, indent: str) -> str:
        node = t.nodes[n]
        opening, closing = MERMAID_SHAPES[Kind(node.kind)]
        label = "<br/>".join(_mermaid_text(s) for s in [n, *_details(node)])
        return f'{indent}{ids[n]}{opening}"{label}"{closing}'

    lines = [f"%% exported by qnet-tui{f' from {source}' if source else ''}: topology {t.name}", "graph LR"]
    for hub, members in _order(t, vlans):
        if hub is None:
            lines.append(node_line(members[0], "  "))
            continue
        title = _mermaid_text(f"VLAN {t.nodes[hub].get('vlan')}")
        lines.append(f'  subgraph vlan_{ids[hub]}["{title}"]')
        lines += [node_line(n, "    ") for n in members]
        lines.append("  end")
    # Spaces around the link: 'a---ob' would be a link with a circle end to b.
    lines += [f"  {ids[a]} --- {ids[b]}" for a, b in t.links]
    lines += [f"  {ids[g]} -.- {ids[n]}" for g, n in _guest_ties(t)]
    return Export("\n".join(lines) + "\n", [], len(t.nodes))


# -- Graphviz DOT ---------------------------------------------------------------------------


def _dot_id(text: str) -> str:
    """A DOT quoted string: the text as it is (a backslash would start an escape of DOT's labels)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(t: Topology, source: str = "") -> Export:
    vlans = _vlans(t)

    def node_line(n: str, indent: str) -> str:
        node = t.nodes[n]
        label = "\\n".join(_dot_id(s)[1:-1] for s in [n, *_details(node)])
        return f'{indent}{_dot_id(n)} [{DOT_SHAPES[Kind(node.kind)]}, label="{label}"];'

    lines = [
        f"// exported by qnet-tui{f' from {source}' if source else ''}",
        f"graph {_dot_id(str(t.name))} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica"];',
    ]
    for hub, members in _order(t, vlans):
        if hub is None:
            lines.append(node_line(members[0], "  "))
            continue
        vlan = t.nodes[hub].get("vlan")
        lines.append(f"  subgraph {_dot_id(f'cluster_vlan{vlan}')} {{")
        lines.append(f"    label={_dot_id(f'VLAN {vlan}')};")
        lines += [node_line(n, "    ") for n in members]
        lines.append("  }")
    lines += [f"  {_dot_id(a)} -- {_dot_id(b)};" for a, b in t.links]
    lines += [f"  {_dot_id(g)} -- {_dot_id(n)} [style=dotted];" for g, n in _guest_ties(t)]
    lines.append("}")
    return Export("\n".join(lines) + "\n", [], len(t.nodes))
