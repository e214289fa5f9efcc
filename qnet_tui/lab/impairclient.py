"""`qnet-tui impair FILE A B SPEC...`: set a link's impairment in a running
lab through its control socket, and say what each direction has now."""

from __future__ import annotations

import sys

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, ask, check_running, read_topology
from qnet_tui.lab.impair import Impairment, ImpairmentError
from qnet_tui.model.diagnostics import printable


def _fail(message: str, code: int = 1) -> int:
    print(f"qnet-tui impair: {printable(message)}", file=sys.stderr)
    return code


def impair_in_lab(file: str, a: str, b: str, words: list[str], one_way: bool) -> int:
    text = " ".join(words)
    try:
        spec = Impairment.parse(text)  # said here, before the lab is asked
    except ImpairmentError as exc:
        return _fail(str(exc), 2)
    try:
        lab = str(read_topology(file, a, b).name)
        check_running(file, lab)
        reply = ask(lab, protocol.Impair(a, b, spec.format(), one_way), protocol.Impaired)
    except AskError as exc:
        return _fail(str(exc))
    print(f"{reply.a} -> {reply.b}: {reply.forward}")
    print(f"{reply.b} -> {reply.a}: {reply.backward}")
    return 0
