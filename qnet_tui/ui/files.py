"""Files in the app: open, save, save as, import QEMU arguments, export, and the
unsaved-changes question. The dialogs, what the user is told, and the file
I/O, which runs off the event loop (a 4 MiB file takes seconds to read, and a
save waits for fsync). Each call is awaited from one of the app's workers;
the app swaps in what it returns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from qnet_tui.model.atomic import WriteFailed, atomic_write
from qnet_tui.model.export import TITLES, export, suffix
from qnet_tui.model.yamlio import Document, SaveError, load_file, load_text, new_document
from qnet_tui.ui.dialogs import ImportQemu, PathPrompt, UnsavedChanges

if TYPE_CHECKING:
    from textual.app import App


def default_path(document: Document) -> Path:
    return document.path or document.suggested or Path.cwd() / f"{document.topology.name or 'lab'}.yaml"


IMPORTED = (".clab.yml", ".clab.yaml", ".gns3")  # names opened by importing them (a plain .yaml is ours)


def is_import(path: Path) -> bool:
    return path.name.lower().endswith(IMPORTED)


def import_document(path: Path) -> tuple[Document | None, list[str]]:
    """A containerlab topology or GNS3 project read as a new, unsaved document
    (offered to be saved as NAME.yaml beside it), and what to tell: what was
    left out, or why nothing could be read (then no document). Blocking."""
    from qnet_tui.model.importers import ImportFailed, dumps, import_path

    try:
        imported = import_path(path)
    except ImportFailed as exc:
        return None, [exc.at(path.name)]
    if not imported.topology.nodes:
        return None, [f"{path.name}: nothing that maps onto a topology"]
    doc = load_text(dumps(imported, path.name))
    stem = path.name[: -len(next(s for s in IMPORTED if path.name.lower().endswith(s)))]
    doc.suggested = path.with_name(f"{stem or doc.topology.name}.yaml")
    return doc, imported.report


def tell_import(app: App, path: Path, doc: Document | None, report: list[str]) -> None:
    if doc is None:
        app.notify("\n".join(report), title=f"Cannot import {path.name}", severity="error", timeout=15)
        return
    t = doc.topology
    app.notify(
        f"{len(t.nodes)} nodes, {len(t.links)} links; not saved yet: ctrl+s offers {default_path(doc).name}",
        title=f"Imported {path.name}",
        timeout=12,
    )
    _tell_left_out(app, report, timeout=20)


def _tell_left_out(app: App, lines: list[str], timeout: float) -> None:
    """What an import or export left out: the first six lines, and how many more."""
    if lines:
        more = f"\n... and {len(lines) - 6} more" if len(lines) > 6 else ""
        app.notify("\n".join(lines[:6]) + more, title="Left out", severity="warning", timeout=timeout)


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
    if is_import(path):
        imported, report = await asyncio.to_thread(import_document, path)
        tell_import(app, path, imported, report)
        return imported
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


def _write_new(path: Path, text: str) -> None:
    # Refused here too, not only before: a file may have come since.
    if path.exists():
        raise FileExistsError(f"{path} exists: move it away to export again")
    atomic_write(path, text.encode())


async def export_to(app: App, document: Document, to: str) -> Path | None:
    """Write the topology as format `to` next to its file (FILE.clab.yml, ...), never over a file;
    the user is told where, and what the format left out."""
    title = TITLES[to]
    if document.path is None:
        app.notify("Save the topology first: the export goes next to its file", title=f"Not exported ({title})")
        return None
    # Validation and the export take a while on a big topology: off the event loop.
    errors = await asyncio.to_thread(lambda: [d.message for d in document.diagnostics() if d.is_error])
    if errors:
        app.notify("\n".join(errors[:5]), title=f"Fix these before exporting ({title})", severity="error", timeout=10)
        return None
    path = document.path.with_name(document.path.name.removesuffix(document.path.suffix) + suffix(to))
    result = await asyncio.to_thread(export, document.topology, to, document.path.name)
    if not result.nodes:
        app.notify(f"Nothing in the topology has a {title} equivalent", title="Not exported", severity="error")
        return None
    try:
        await asyncio.to_thread(_write_new, path, result.text)
    except (FileExistsError, WriteFailed) as exc:
        app.notify(str(exc), title=f"Not exported ({title})", severity="error", timeout=10)
        return None
    app.notify(f"Wrote {path}", title=f"Exported ({title})")
    _tell_left_out(app, result.left_out, timeout=15)
    return path
