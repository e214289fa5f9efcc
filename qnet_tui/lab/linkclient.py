"""`qnet-tui link FILE A B down|up [--direction A-B|B-A]`: take a link of a
running lab down or up, through its control socket."""

from __future__ import annotations

import os
import sys

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, ask
from qnet_tui.lab.runstate import is_running
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.validate import did_you_mean
from qnet_tui.model.yamlio import load_file


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
    doc = load_file(file)
    if doc.problems and not doc.editable:
        return _fail(f"{file}: {doc.problems[0].text}")
    t, lab = doc.topology, str(doc.topology.name)
    for end in (a, b):
        if end not in t.nodes:
            return _fail(f"{file} has no node '{end}'{did_you_mean(end, t.nodes)}")
    if b not in t.neighbours(a):
        return _fail(f"{file} has no link {a} - {b}; {a} links to {', '.join(t.neighbours(a)) or 'nothing'}")
    try:
        way = direction_of(direction, a, b)
    except LinkCommandError as exc:
        return _fail(str(exc))
    if os.geteuid() != 0:
        return _fail("needs root: the lab's control socket is root's; run it with sudo")
    if not is_running(lab):
        return _fail(f"lab {lab} is not running; start it with: qnet-tui run {file}")
    try:
        reply = ask(lab, protocol.Link(a, b, state == "up", way), protocol.LinkState)
    except AskError as exc:
        return _fail(str(exc))
    print(reply.message)
    return 0
