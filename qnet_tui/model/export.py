"""A topology in another tool's format: containerlab, Mermaid, Graphviz DOT.

Each format is a function of a (valid) topology giving the text and, one line
per element, what that format cannot say: an export never drops something
silently, it says so and goes on."""

from __future__ import annotations

from collections.abc import Callable

from qnet_tui.model.export_clab import to_clab
from qnet_tui.model.export_diagram import to_dot, to_mermaid
from qnet_tui.model.exported import Export
from qnet_tui.model.topology import Topology

# --to NAME -> (the function of (topology, source file name), the suffix of the file the app writes)
FORMATS: dict[str, tuple[Callable[[Topology, str], Export], str]] = {
    "clab": (to_clab, ".clab.yml"),
    "mermaid": (to_mermaid, ".mmd"),
    "dot": (to_dot, ".dot"),
}
TITLES = {"clab": "containerlab", "mermaid": "Mermaid", "dot": "Graphviz"}


def export(t: Topology, to: str, source: str = "") -> Export:
    """t as format `to` (a key of FORMATS); source names the file in a header comment."""
    return FORMATS[to][0](t, source)


def suffix(to: str) -> str:
    return FORMATS[to][1]
