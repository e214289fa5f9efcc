"""`qnet-tui apply FILE [--dry-run]`: change a running lab into what FILE
now says, through its control socket: the lab changes only what differs."""

from __future__ import annotations

import sys
from pathlib import Path

from qnet_tui import protocol
from qnet_tui.lab.ask import AskError, ask, check_running
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.yamlio import Document

APPLY_S = 120.0  # a change may make many namespaces, or a VM's overlay


def _fail(message: str) -> int:
    print(f"qnet-tui apply: {printable(message)}", file=sys.stderr)
    return 1


def apply_file(file: str, doc: Document, dry_run: bool) -> int:
    """doc: file, read and found valid."""
    lab = str(doc.topology.name)
    try:
        check_running(file, lab)
        text = Path(file).read_text(encoding="utf-8")
        reply = ask(lab, protocol.Apply(text, dry_run), protocol.Applied, APPLY_S)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {file}: {exc}")
    except AskError as exc:
        return _fail(str(exc))
    if not reply.changes:
        print(f"lab {lab} already runs {file}: nothing to change")
        return 0
    for line in reply.changes:
        print(printable(line))
    if reply.refusal:
        return _fail(f"cannot change the running lab: {reply.refusal}")
    print(f"lab {lab}: " + ("changed" if reply.applied else "nothing changed (a dry run)"))
    return 0
