"""Topology files, format version 1: a Document, loaded with positions and
saved atomically.

Loading reads the file fast with libyaml (yamlread) and keeps its text. Saving
reads that text once in ruamel.yaml's round-trip mode and writes the edited
topology back into that tree, touching only what changed, so hand-written
comments, key order and quoting survive (yamlwrite); the file is then
replaced whole or not at all (atomic)."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from qnet_tui.model import yamlread, yamlwrite
from qnet_tui.model.atomic import WriteFailed, atomic_write
from qnet_tui.model.diagnostics import Diagnostic, Severity, sort_key
from qnet_tui.model.topology import SourceMap, Topology
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlwrite import SaveError

MAX_FILE_BYTES = 4 * 1024 * 1024  # a topology of thousands of nodes is well under 1 MiB
_CONTENT = re.compile(r"(?:^|\r)\s*[^\s#]", re.M)  # a line with more than white space or a comment
ERROR = Severity.ERROR


@dataclass
class Document:
    """A topology together with the file it came from."""

    topology: Topology = field(default_factory=Topology)
    path: Path | None = None
    source: SourceMap = field(default_factory=SourceMap)
    problems: list[Diagnostic] = field(default_factory=list)  # found while reading the file
    style: yamlwrite.Style = field(default_factory=yamlwrite.Style)
    text: str | None = field(default=None, repr=False)  # as read (LF, no BOM), until the tree is made from it
    suggested: Path | None = None  # where a document with no file yet offers to be saved (an import: by its source)
    _tree: CommentedMap | None = field(default=None, init=False, repr=False)

    @property
    def tree(self) -> CommentedMap | None:
        """The file's round-trip tree, read from its text the first time it is
        needed (to save): only ruamel keeps comments, and it is slow."""
        if self._tree is None and self.text is not None:
            self._tree = yamlwrite.round_trip_tree(self.text)
            bom, crlf = self.style.bom, self.style.crlf
            self.style = yamlwrite.Style.guess(self.text)  # needed only to save, and it reads every line
            self.style.bom, self.style.crlf = bom, crlf
            self.text = None
        return self._tree

    @property
    def editable(self) -> bool:
        """False when the file's structure could not be read whole: saving it
        would lose what could not be read."""
        return not any(d.is_error for d in self.problems)

    def diagnostics(self) -> list[Diagnostic]:
        found = validate(self.topology, self.source)  # in file order already
        return sorted(self.problems + found, key=sort_key) if self.problems else found

    def dumps(self) -> str:
        if not self.editable:
            raise SaveError("the file has structural errors; fix them in a text editor first")
        self._tree = tree = yamlwrite.to_tree(self.topology, self.tree)
        return yamlwrite.dump(tree, self.style)

    def save(self, path: Path | str | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise SaveError("no file name to save to")
        data = self.dumps().encode()
        try:
            # Through a symlink, replace its target: the link is the user's way to the file.
            atomic_write(Path(os.path.realpath(target)), data)
        except WriteFailed as exc:
            raise SaveError(f"cannot save {target}: {exc}; the file on disk is unchanged") from None
        self.path = target
        return target


def load_file(path: Path | str) -> Document:
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return _unreadable(path, exc.strerror or str(exc))
    try:
        what = _not_regular(os.fstat(fd).st_mode)
        if what is None:
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return _unreadable(path, exc.strerror or str(exc))
    finally:
        os.close(fd)
    if what is not None:
        return _unreadable(path, f"{what}, not a regular file")
    return load_bytes(data, path)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a file"


def _unreadable(path: Path, why: str) -> Document:
    doc = Document(path=path)
    doc.problems.append(Diagnostic(ERROR, f"cannot read: {why}"))
    return doc


def load_bytes(data: bytes, path: Path | None = None) -> Document:
    doc = Document(path=path)
    if len(data) > MAX_FILE_BYTES:
        doc.problems.append(
            Diagnostic(ERROR, f"file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB; this is not a topology file")
        )
        return doc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        doc.problems.append(
            Diagnostic(ERROR, f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded", line, col)
        )
        return doc
    return load_text(text, path)


def load_text(text: str, path: Path | None = None) -> Document:
    doc = Document(path=path)
    bom = text.startswith("\ufeff")
    crlf = "\r\n" in text
    # ruamel keeps a CR inside comments; read LF only and put CRs back on save
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not _CONTENT.search(text):
        doc.problems.append(Diagnostic(ERROR, "file is empty; a topology starts with 'version: 1'"))
        return doc
    reading = yamlread.read(text)
    doc.topology, doc.source, doc.problems = reading.topology, reading.source, reading.problems
    if reading.mapping:
        doc.text = text
        doc.style.bom, doc.style.crlf = bom, crlf
    return doc


def new_document(topology: Topology | None = None, path: Path | None = None) -> Document:
    return Document(topology=topology or Topology(), path=path)
