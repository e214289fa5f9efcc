"""Topology files, format version 1: load with positions, save atomically.

The file is read in ruamel.yaml's round-trip mode and the tree is kept: saving
writes the edited topology back into that tree, touching only what changed, so
hand-written comments, key order and quoting survive."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.nodes import Node as YamlNode
from ruamel.yaml.reader import ReaderError

from qnet_tui.model import comments, values
from qnet_tui.model.diagnostics import Diagnostic, Severity, sort_key
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, SourceMap, Topology
from qnet_tui.model.validate import did_you_mean, validate

FORMAT_VERSION = 1
MAX_FILE_BYTES = 4 * 1024 * 1024  # a topology of thousands of nodes is well under 1 MiB
MAX_DEPTH = 64
TOP_KEYS = ("version", "name", "description", "nodes", "links")
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
    tree: CommentedMap | None = None
    style: Style = field(default_factory=Style)

    @property
    def editable(self) -> bool:
        """False when the file's structure could not be read whole: saving it
        would lose what could not be read."""
        return not any(d.is_error for d in self.problems)

    def diagnostics(self) -> list[Diagnostic]:
        return sorted(self.problems + validate(self.topology, self.source), key=sort_key)

    def dumps(self) -> str:
        if not self.editable:
            raise SaveError("the file has structural errors; fix them in a text editor first")
        self.tree = to_tree(self.topology, self.tree)
        yaml = _yaml()
        yaml.indent(mapping=self.style.mapping, sequence=self.style.sequence, offset=self.style.offset)
        yaml.explicit_start = self.style.explicit_start
        out = io.StringIO()
        yaml.dump(self.tree, out)
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


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _offset_pos(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return (line, index - (text.rfind("\n", 0, index) + 1) + 1)


def load_file(path: Path | str) -> Document:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        doc = Document(path=path)
        doc.problems.append(Diagnostic(ERROR, f"cannot read: {exc.strerror or exc}"))
        return doc
    return load_bytes(data, path)


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
    problems = doc.problems
    if not text.strip() or all(not x.strip() or x.lstrip().startswith("#") for x in text.splitlines()):
        problems.append(Diagnostic(ERROR, "file is empty; a topology starts with 'version: 1'"))
        return doc
    too_deep = _flow_depth_exceeded(text)
    if too_deep is not None:
        problems.append(
            Diagnostic(
                ERROR,
                f"YAML is nested more than {MAX_DEPTH} levels deep; this is not a topology file",
                *_offset_pos(text, too_deep),
            )
        )
        return doc
    yaml = _yaml()
    try:
        root = yaml.compose(text)
        if root is None:
            problems.append(Diagnostic(ERROR, "file holds no YAML document"))
            return doc
        problems.extend(_duplicate_keys(root))
        tree = yaml.constructor.construct_document(root)
    except ReaderError as exc:
        line, col = _offset_pos(text, exc.position)
        problems.append(Diagnostic(ERROR, f"character {exc.character!r} is not allowed in YAML", line, col))
        return doc
    except MarkedYAMLError as exc:
        problems.append(_yaml_error(exc))
        return doc
    except YAMLError as exc:
        problems.append(
            Diagnostic(ERROR, f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        )
        return doc
    except RecursionError:
        problems.append(
            Diagnostic(ERROR, f"YAML is nested more than {MAX_DEPTH} levels deep; this is not a topology file")
        )
        return doc
    except ValueError as exc:  # the constructor's own, e.g. an integer of 5000 digits
        m = re.search(r"\d{4000,}", text)
        where = _offset_pos(text, m.start()) if m else (1, 1)
        problems.append(Diagnostic(ERROR, f"YAML value cannot be read: {str(exc).split(';')[0]}", *where))
        return doc
    doc.style = Style.guess(text)
    doc.style.bom, doc.style.crlf = bom, crlf
    if not isinstance(tree, CommentedMap):
        line, col = _pos(root.start_mark)
        problems.append(
            Diagnostic(
                ERROR,
                f"the top level must be a mapping with version, name, nodes and links, not {values.describe(tree)}",
                line,
                col,
            )
        )
        return doc
    doc.tree = tree
    _read_tree(tree, doc)
    return doc


def _flow_depth_exceeded(text: str) -> int | None:
    """Offset where brackets nest deeper than MAX_DEPTH, found before the
    parser recurses into them. Brackets in strings count too: a generous
    limit, far above any real topology, makes that harmless."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for i, c in enumerate(text):
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif c in "]}" and depth:
            depth -= 1
    return None


def _yaml_error(exc: MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = _pos(mark) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    if "'\\t'" in problem:
        problem = "a tab character; YAML indents with spaces only"
    elif exc.context:
        problem = f"{problem} ({exc.context})"
    return Diagnostic(ERROR, f"YAML syntax: {problem}", line, col)


def _duplicate_keys(root: YamlNode) -> list[Diagnostic]:
    """Duplicate keys in any mapping. Walks the node graph once per node even
    when aliases share it, so a billion-laughs file costs nothing."""
    out = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            keys: dict[Any, Any] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode) and isinstance(key.value, str):
                    if key.value in keys:
                        first = keys[key.value]
                        out.append(
                            Diagnostic(
                                ERROR,
                                f"duplicate key '{key.value}' (first at line {first.line + 1}); "
                                "node ids and keys must be unique",
                                *_pos(key.start_mark),
                            )
                        )
                    else:
                        keys[key.value] = key.start_mark
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return out


def _read_tree(tree: CommentedMap, doc: Document) -> None:
    topo, smap, problems = doc.topology, doc.source.positions, doc.problems

    def error(message: str, pos: tuple[int, int], **kw: Any) -> None:
        problems.append(Diagnostic(ERROR, message, *pos, **kw))

    for key in tree:
        smap[("top", key)] = _pos_key(tree, key)
        smap[("top-value", key)] = _pos_value(tree, key)
        if key not in TOP_KEYS:
            doc.problems.append(
                Diagnostic(
                    ERROR,
                    f"unknown top-level key {values.describe(key)}"
                    f"{did_you_mean(str(key), TOP_KEYS)}; a topology has {', '.join(TOP_KEYS)}",
                    *smap[("top", key)],
                )
            )
    version = tree.get("version")
    if "version" not in tree:
        error(f"missing 'version: {FORMAT_VERSION}' at the top", (1, 1))
    elif version != FORMAT_VERSION or isinstance(version, bool):
        error(
            f"version {values.describe(version)} is not supported; this qnet-tui reads version {FORMAT_VERSION}",
            smap[("top-value", "version")],
        )
    topo.name = tree.get("name")
    description = tree.get("description")
    if description is not None and not isinstance(description, str):
        error(f"description must be a string, not {values.describe(description)}", smap[("top-value", "description")])
    else:
        topo.description = description

    nodes = tree.get("nodes")
    if nodes is not None and not isinstance(nodes, CommentedMap):
        error(
            f"nodes must be a mapping from node id to its attributes, not {values.describe(nodes)}",
            smap[("top-value", "nodes")],
        )
        nodes = None
    for node_id, body in (nodes or {}).items():
        pos = _pos_key(nodes, node_id)
        if not isinstance(node_id, str):
            error(f"node id {values.describe(node_id)} must be a string", pos)
            continue
        smap[("node", node_id)] = pos
        if body is None:  # "tap0:" alone: a node with nothing said of it yet
            body = CommentedMap()
        if not isinstance(body, CommentedMap):
            error(
                f"{node_id}: a node is a mapping with 'kind' and its attributes, not {values.describe(body)}",
                _pos_value(nodes, node_id),
                node=node_id,
            )
            topo.add(Node(node_id, None, {}))  # so that its links do not also fail
            continue
        attrs = {}
        for key, value in body.items():
            if not isinstance(key, str):
                error(f"{node_id}: key {values.describe(key)} must be a string", _pos_key(body, key), node=node_id)
                continue
            smap[("field", node_id, key)] = _pos_key(body, key)
            smap[("value", node_id, key)] = _pos_value(body, key)
            if key != "kind":
                attrs[key] = value
        kind = body.get("kind")
        if "kind" not in body:
            error(f"{node_id}: missing 'kind' (one of {', '.join(k.value for k in Kind)})", pos, node=node_id)
        elif isinstance(kind, str) and kind in Kind.__members__.values():
            kind = Kind(kind)
        topo.add(Node(node_id, kind, attrs, origin=node_id))

    links = tree.get("links")
    if links is not None and not isinstance(links, CommentedSeq):
        error(f"links must be a list of node id pairs, not {values.describe(links)}", smap[("top-value", "links")])
        links = None
    for i, link in enumerate(links or []):
        pos = _pos_item(links, i)
        smap[("link", len(topo.links))] = pos
        if not (isinstance(link, list) and len(link) == 2 and all(isinstance(x, str) for x in link)):
            error(f"a link is a pair of node ids, as in [br0, tap0], not {values.describe(link)}", pos)
            continue
        for end in (0, 1):
            smap[("end", len(topo.links), end)] = _pos_item(link, end)
        topo.links.append((str(link[0]), str(link[1])))


def _pos_key(m: CommentedMap, key: Any) -> tuple[int, int]:
    try:
        line, col = m.lc.key(key)
        return (line + 1, col + 1)
    except (KeyError, TypeError, AttributeError):
        return _pos_self(m)


def _pos_value(m: CommentedMap, key: Any) -> tuple[int, int]:
    try:
        line, col = m.lc.value(key)
        return (line + 1, col + 1)
    except (KeyError, TypeError, AttributeError):
        return _pos_key(m, key)


def _pos_item(s: CommentedSeq, i: int) -> tuple[int, int]:
    try:
        line, col = s.lc.item(i)
        return (line + 1, col + 1)
    except (KeyError, TypeError, AttributeError):
        return _pos_self(s)


def _pos_self(x: Any) -> tuple[int, int]:
    lc = getattr(x, "lc", None)
    if lc is not None and lc.line is not None:
        return (lc.line + 1, lc.col + 1)
    return (1, 1)


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
