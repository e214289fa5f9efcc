"""Topology files, format version 1: load with positions, save atomically.

Loading reads the file fast with libyaml (yamlread) and keeps its text. Saving
reads that text once in ruamel.yaml's round-trip mode and writes the edited
topology back into that tree, touching only what changed, so hand-written
comments, key order and quoting survive."""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from qnet_tui.model import comments, yamlread
from qnet_tui.model.diagnostics import Diagnostic, Severity, sort_key
from qnet_tui.model.topology import SourceMap, Topology
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlread import FORMAT_VERSION

MAX_FILE_BYTES = 4 * 1024 * 1024  # a topology of thousands of nodes is well under 1 MiB
_CONTENT = re.compile(r"(?:^|\r)\s*[^\s#]", re.M)  # a line with more than white space or a comment
ERROR = Severity.ERROR


class SaveError(Exception):
    """A save that did not happen; the file on disk is as it was."""


@dataclass(slots=True)
class Style:
    """How the file was written, so that saving writes it the same way."""

    mapping: int = 2
    sequence: int = 4
    offset: int = 2
    preamble: str = ""  # comments above an explicit '---', which ruamel drops
    explicit_start: bool = False
    crlf: bool = False
    bom: bool = False

    @classmethod
    def guess(cls, text: str) -> Style:
        style = cls()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                if stripped == "---" or stripped.startswith("--- "):
                    style.explicit_start = True
                    style.preamble = "".join(x + "\n" for x in lines[:i])
                break
        parent: int | None = None  # indentation of the last line that opened a block
        mapping_seen = seq_seen = False
        for line in lines:
            stripped = line.lstrip(" ")
            if not stripped.strip() or stripped.startswith("#"):
                continue
            indent = len(line) - len(stripped)
            if parent is not None and indent > parent:
                if stripped.startswith("- ") and not seq_seen:
                    style.offset, seq_seen = indent - parent, True
                elif not stripped.startswith("-") and not mapping_seen:
                    style.mapping, mapping_seen = indent - parent, True
            parent = indent if re.search(r":\s*(#.*)?$", stripped) else None
        style.sequence = style.offset + 2
        return style


@dataclass
class Document:
    """A topology together with the file it came from."""

    topology: Topology = field(default_factory=Topology)
    path: Path | None = None
    source: SourceMap = field(default_factory=SourceMap)
    problems: list[Diagnostic] = field(default_factory=list)  # found while reading the file
    style: Style = field(default_factory=Style)
    text: str | None = field(default=None, repr=False)  # as read (LF, no BOM), until the tree is made from it
    _tree: CommentedMap | None = field(default=None, init=False, repr=False)

    @property
    def tree(self) -> CommentedMap | None:
        """The file's round-trip tree, read from its text the first time it is
        needed (to save): only ruamel keeps comments, and it is slow."""
        if self._tree is None and self.text is not None:
            self._tree = round_trip_tree(self.text)
            bom, crlf = self.style.bom, self.style.crlf
            self.style = Style.guess(self.text)  # needed only to save, and it reads every line
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
        self._tree = tree = to_tree(self.topology, self.tree)
        yaml = _yaml()
        yaml.indent(mapping=self.style.mapping, sequence=self.style.sequence, offset=self.style.offset)
        yaml.explicit_start = self.style.explicit_start
        out = io.StringIO()
        yaml.dump(tree, out)
        text = self.style.preamble + out.getvalue()
        if self.style.crlf:
            text = text.replace("\n", "\r\n")
        return ("\ufeff" if self.style.bom else "") + text

    def save(self, path: Path | str | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise SaveError("no file name to save to")
        atomic_write(target, self.dumps().encode())
        self.path = target
        return target


def _yaml() -> YAML:
    yaml = YAML()  # round-trip, YAML 1.2: "no" and 52:54:00:... stay strings
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = True  # duplicates are found on the node graph and reported there
    yaml.width = 4096
    return yaml


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


def round_trip_tree(text: str) -> CommentedMap:
    """text read by ruamel.yaml in round-trip mode, for saving into; raises
    SaveError when ruamel cannot read what libyaml could."""
    try:
        tree = _yaml().load(text)
    except Exception as exc:  # ruamel may raise anything on input libyaml took; the save must fail cleanly
        mark = getattr(exc, "problem_mark", None)
        if getattr(exc, "problem", None) and mark is not None:
            why = f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"  # type: ignore[attr-defined]
        else:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SaveError(
            f"cannot save: ruamel.yaml, which writes the file back with its comments, cannot read it ({why}); "
            "the file on disk is unchanged"
        ) from None
    if not isinstance(tree, CommentedMap):
        raise SaveError("cannot save: ruamel.yaml reads the file differently; the file on disk is unchanged")
    return tree


# -- writing -------------------------------------------------------------------


def to_tree(topology: Topology, tree: CommentedMap | None) -> CommentedMap:
    """Write topology into tree (a new one if None), changing only what differs."""
    if tree is None:
        tree = CommentedMap()
        tree["version"] = FORMAT_VERSION
    _set(tree, "name", topology.name)
    _set(tree, "description", topology.description)
    nodes = tree.get("nodes")
    if not isinstance(nodes, CommentedMap):
        nodes = tree["nodes"] = CommentedMap()
    _carry_renames(nodes, topology)
    for node_id in [n for n in nodes if n not in topology.nodes]:
        comments.delete(nodes, node_id)
    for node in topology.nodes.values():
        body = nodes.get(node.id)
        if not isinstance(body, CommentedMap):
            body = nodes[node.id] = CommentedMap()
        _set(body, "kind", str(node.kind) if node.kind is not None else None)
        for key in [k for k in body if k != "kind" and k not in node.attrs]:
            comments.delete(body, key)
        for key, value in node.attrs.items():
            _set(body, key, value)
    _sync_links(tree, topology.links)
    return tree


def _carry_renames(nodes: CommentedMap, topology: Topology) -> None:
    """A node renamed since the file was read takes its old id's place and comments."""
    for node in topology.nodes.values():
        old, new = node.origin, node.id
        if old is None or old == new or old not in nodes or new in nodes or old in topology.nodes:
            continue
        place = list(nodes).index(old)
        comment = nodes.ca.items.pop(old, None)
        nodes.insert(place, new, nodes.pop(old))
        if comment is not None:
            nodes.ca.items[new] = comment


def _set(m: CommentedMap, key: str, value: Any) -> None:
    """Assign only a changed value, so an unchanged one keeps its quoting and style."""
    if value is None:
        m.pop(key, None)
    elif key not in m or not _same(m[key], value):
        m[key] = value


def _same(old: Any, new: Any) -> bool:
    # 1 == True in Python, but not in YAML
    return old == new and isinstance(old, bool) == isinstance(new, bool)


def _sync_links(tree: CommentedMap, links: list[tuple[str, str]]) -> None:
    seq = tree.get("links")
    if not isinstance(seq, CommentedSeq):
        seq = tree["links"] = CommentedSeq()
    current = [tuple(x) if isinstance(x, list) else None for x in seq]
    if current == links:
        return
    # Drop the links that went, keeping the rest (and their comments) in place.
    wanted: dict[tuple[str, str], int] = {}
    for link in links:
        wanted[link] = wanted.get(link, 0) + 1
    for i in range(len(current) - 1, -1, -1):
        link = current[i]
        if link is not None and wanted.get(link, 0) > 0:
            wanted[link] -= 1
        else:
            comments.delete(seq, i)
            del current[i]
    if current != links[: len(current)]:  # reordered: rewrite the list
        del seq[:]
        current = []
    flow = not seq or getattr(seq[0], "fa", None) is None or seq[0].fa.flow_style()
    for link in links[len(current) :]:
        item = CommentedSeq(link)
        if flow:
            item.fa.set_flow_style()
        seq.append(item)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace path's content with data, or leave it as it was: temp file in
    the same folder, fsync, rename, fsync the folder."""
    target = Path(os.path.realpath(path))  # through a symlink, replace its target
    folder = target.parent
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as exc:
        raise SaveError(f"cannot save {path}: {exc.strerror}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SaveError(f"cannot save {path}: {exc.strerror} (in folder {folder})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise SaveError(f"cannot save {path}: {exc.strerror or exc}; the file on disk is unchanged") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename happened; some file systems cannot fsync a folder


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def new_document(topology: Topology | None = None, path: Path | None = None) -> Document:
    return Document(topology=topology or Topology(), path=path)
