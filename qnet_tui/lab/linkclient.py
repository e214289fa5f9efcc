"""`qnet-tui link FILE A B down|up [--direction A-B|B-A]`: take a link of a
running lab down or up, through its control socket."""

from __future__ import annotations

import sys

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, ask, check_running, read_topology
from qnet_tui.model.diagnostics import printable


class LinkCommandError(Exception):
    pass


def _fail(message: str) -> int:
    print(f"qnet-tui link: {printable(message)}", file=sys.stderr)
    return 1


def direction_of(text: str | None, a: str, b: str) -> str:
    """both, a-b or b-a, from what a person typed: those words, or A-B / B-A
    spelt with the nodes' names (with - or ->)."""
    if text is None:
        return "both"
    if text.lower() in protocol.Link.DIRECTIONS:
        return text.lower()
    for sep in ("->", "-"):
        if text == f"{a}{sep}{b}":
            return "a-b"
        if text == f"{b}{sep}{a}":
            return "b-a"
    raise LinkCommandError(f"--direction is {text!r}; give {a}-{b}, {b}-{a} or both")


def link_command(file: str, a: str, b: str, state: str, direction: str | None) -> int:
    try:
        t = read_topology(file, a, b)
        if b not in t.neighbours(a):
            return _fail(f"{file} has no link {a} - {b}; {a} links to {', '.join(t.neighbours(a)) or 'nothing'}")
        way = direction_of(direction, a, b)
        check_running(file, str(t.name))
        reply = ask(str(t.name), protocol.Link(a, b, state == "up", way), protocol.LinkState)
    except (AskError, LinkCommandError) as exc:
        return _fail(str(exc))
    print(reply.message)
    return 0
