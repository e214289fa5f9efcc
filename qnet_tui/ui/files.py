"""Files in the app: open, save, save as, import QEMU arguments, and the
unsaved-changes question. The dialogs, what the user is told, and the file
I/O, which runs off the event loop (a 4 MiB file takes seconds to read, and a
save waits for fsync). Each call is awaited from one of the app's workers;
the app swaps in what it returns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from qnet_tui.model.yamlio import Document, SaveError, load_file, new_document
from qnet_tui.ui.dialogs import ImportQemu, PathPrompt, UnsavedChanges

if TYPE_CHECKING:
    from textual.app import App


def default_path(document: Document) -> Path:
    return document.path or Path.cwd() / f"{document.topology.name or 'lab'}.yaml"


async def save(app: App, document: Document, path: Path) -> bool:
    """Write the document to path; False (and the user told why) if it was not."""
    try:
        await asyncio.to_thread(document.save, path)
    except (SaveError, OSError) as exc:
        app.notify(str(exc), title="Not saved", severity="error", timeout=10)
        return False
    app.notify(f"Saved {path}")
    return True


async def ask_path(app: App, document: Document) -> Path | None:
    path = default_path(document)
    return await app.push_screen_wait(PathPrompt("Save as", path.parent, str(path), must_exist=False))


async def open_file(app: App, start: Path) -> Document | None:
    """Ask for a topology file and read it; None if none was chosen or it cannot be edited."""
    path = await app.push_screen_wait(PathPrompt("Open a topology", start))
    if path is None:
        return None
    doc = await asyncio.to_thread(load_file, path)
    if not doc.editable:
        errors = [d.format(path.name) for d in doc.problems if d.is_error]
        app.notify("\n".join(errors[:6]), title=f"Cannot open {path.name}", severity="error", timeout=15)
        return None
    return doc


async def import_qemu(app: App) -> Document | None:
    """Ask for QEMU arguments and turn their networking into a new topology."""
    argv = await app.push_screen_wait(ImportQemu())
    if not argv:
        return None
    from qnet_tui.model.qemu import import_args

    marked: list[str] = []
    topology, problems = import_args(argv, marked)
    if not topology.nodes:
        app.notify(
            "\n".join(problems[:6]) or "No networking in those arguments",
            title="Nothing imported",
            severity="error",
            timeout=12,
        )
        return None
    topology.name = "imported"
    if problems:
        app.notify("\n".join(problems[:6]), title="Not imported", severity="warning", timeout=15)
    if marked:
        app.notify("\n".join(marked[:6]), title="Imported as external", timeout=15)
    return new_document(topology)


async def may_leave(app: App, document: Document, changed: bool, doing: str) -> bool | Path:
    """Whether to go on with `doing`: True when nothing is unsaved or the user
    discards it; the Path it was saved to when the user chose to save (the
    caller marks the editor saved); False to stay."""
    if not changed:
        return True
    choice = await app.push_screen_wait(UnsavedChanges(doing))
    if choice == "discard":
        return True
    if choice != "save":
        return False
    path = document.path or await ask_path(app, document)
    return path if path is not None and await save(app, document, path) else False
