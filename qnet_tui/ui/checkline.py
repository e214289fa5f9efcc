"""The topology-aware checks (lab/checks.py) as the app shows them: one
warning line in a VLAN pane, the latest finding first, and a mark on the
canvas's boxes of the nodes involved."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from qnet_tui.model.diagnostics import printable
from qnet_tui.protocol import Check, Stats

LABEL = "checks    "
MARK = "⚠"
STYLE = "bold yellow"
SEPARATOR = " · "


def short(check: Check) -> str:
    """A finding in a few words, by node: the pane's line has room for little."""
    kind, ports = check["kind"], check["ports"]
    others = [n for n in check["nodes"] if n not in ports]  # whose MAC or address it is
    if kind == "foreign-mac" and ports:
        return f"{ports[0]} sends from " + (f"{others[0]}'s MAC" if others else str(check["mac"]))
    if kind == "duplicate-mac":
        return f"duplicate MAC {check['mac']}: {', '.join(ports)}"
    if kind == "duplicate-ip":
        return f"duplicate IP {check['address']}: {', '.join(ports)}"
    if kind == "rogue-dhcp" and ports:
        return f"rogue DHCP server on {ports[0]}"
    if kind in ("arp-conflict", "nd-conflict"):
        return f"{'ARP' if kind == 'arp-conflict' else 'ND'} conflict {check['address']}: {', '.join(check['nodes'])}"
    return check["message"]


def fit(parts: list[str], width: int) -> str:
    """As many parts as fit in width (<= 0: no limit), then how many more
    there are; the first, cut short if it must be, always."""
    line = ""
    for i, part in enumerate(parts):
        rest = len(parts) - i - 1
        tail = f"{SEPARATOR}+{rest} more" if rest else ""
        longer = line + (SEPARATOR if line else "") + part
        if width > 0 and len(longer + tail) > width:
            if not line:
                return part[: max(width - len(tail) - 1, 0)] + "…" + tail
            return f"{line}{SEPARATOR}+{rest + 1} more"
        line = longer
    return line


def checks_line(checks: list[Check] | None, width: int) -> Text | None:
    """The pane's line (label included; width is what follows the label), or None: no findings."""
    if not checks:
        return None
    body = fit([printable(short(c)) for c in checks], width - len(MARK) - 1)
    return Text.assemble((LABEL, "dim"), (f"{MARK} {body}", STYLE))


def flagged(snapshot: Stats) -> set[str]:
    """The nodes some hub's findings involve."""
    return {node for hub in snapshot.hubs for check in hub.get("checks") or () for node in check["nodes"]}


def mark_checks(live: dict[str, str], nodes: Iterable[str]) -> dict[str, str]:
    """The canvas's live labels, with the flagged nodes' marked."""
    out = dict(live)
    for node in nodes:
        out[node] = f"{MARK} {out[node]}" if node in out else MARK
    return out
