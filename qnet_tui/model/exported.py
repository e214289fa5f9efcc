"""What an export gives: the text, and what the format could not say."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Export:
    text: str
    # "tap0: no containerlab equivalent (a TAP device); left out", one line per element
    left_out: list[str] = field(default_factory=list)
    nodes: int = 0  # how many nodes made it: none, and there was nothing to export
