"""The topology graph: nodes of the six kinds and the links between them.

Attribute values are kept as loaded, right or wrong, so that validation can
say what is wrong and saving never drops what a person wrote."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from qnet_tui.model.kinds import FIELD_BY_NAME, Kind

Link = tuple[str, str]


@dataclass(slots=True)
class Node:
    id: str
    kind: Kind | str  # a str only when the file names a kind that does not exist
    attrs: dict[str, Any] = field(default_factory=dict)
    # The id it has in the file it was read from (None: made since). A rename
    # keeps it, so a save can give the new id the old one's place and comments.
    origin: str | None = field(default=None, compare=False)

    @property
    def is_qemu_vm(self) -> bool:
        """A guest NIC that a real QEMU VM is (qemu: true): the lab serves its socket."""
        return self.kind is Kind.GUEST_NIC and self.get("qemu") is True

    def get(self, name: str) -> Any:
        """The attribute, or its default from the kind's schema."""
        if name in self.attrs:
            return self.attrs[name]
        spec = FIELD_BY_NAME.get(self.kind, {}).get(name) if isinstance(self.kind, Kind) else None
        return spec.default if spec else None


@dataclass(slots=True)
class Topology:
    name: str = "lab"
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    description: str | None = None
    # A link's impairments, by direction (from, to): the text form as the file
    # gives it ("delay=50ms loss=1%"), checked by validation (model/impairment.py).
    impair: dict[Link, Any] = field(default_factory=dict)
    # The file's scenarios as read (name -> list of steps), checked by
    # validation (model/scenario.py); None: the file has none.
    scenarios: Any = None
    # The file's hosts section as read (name -> how to reach that machine),
    # checked by validation (model/placement.py); None: the file has none.
    hosts: Any = None

    def add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    def of_kind(self, kind: Kind) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.kind == kind)

    def neighbours(self, node_id: str) -> list[str]:
        out = []
        for a, b in self.links:
            if a == node_id:
                out.append(b)
            elif b == node_id:
                out.append(a)
        return out


def components(adj: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Connected components of an undirected graph given as adjacency."""
    seen: set[str] = set()
    out = []
    for start in adj:
        if start in seen:
            continue
        seen.add(start)
        comp, stack = [], [start]
        while stack:
            n = stack.pop()
            comp.append(n)
            for m in adj[n]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        out.append(comp)
    return out


# Where things stand in the file, for diagnostics. Keys:
#   ("top", key) / ("top-value", key)           a top-level key and its value
#   ("node", id) / ("field", id, name) / ("value", id, name)
#   ("link", index) / ("end", index, 0|1)
#   ("scn", name, *path) / ("scn-key", name, *path)  a scenario's values and keys
#   ("hosts", name[, key]) / ("hosts-key", name[, key])  a host's values and keys
Position = tuple[int, int]


@dataclass(slots=True)
class SourceMap:
    positions: dict[tuple[Any, ...], Position] = field(default_factory=dict)

    def find(self, *keys: tuple[Any, ...]) -> Position:
        """The first known position among keys, or 1:1."""
        for key in keys:
            pos = self.positions.get(key)
            if pos is not None:
                return pos
        return (1, 1)
