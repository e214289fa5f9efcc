"""Reading a topology file fast: libyaml's event stream turned straight into
plain values, the positions diagnostics need, and the structural problems.

ruamel.yaml's round-trip reader is pure Python and far too slow for a file
checked as it is typed, so reading uses PyYAML's libyaml parser (PyYAML's own
parser when libyaml is missing: slower, same events) and resolves scalars as
ruamel's round-trip YAML 1.2 reading does (yamlscalar). Every step is linear in
the file: an alias shares the value it names, never copies it, so a billion
laughs costs what it weighs. What only a copy could give, or no topology
needs, is refused with a placed error: merge keys (`<<`), recursive aliases,
collections as keys, tags beyond the core schema, nesting past MAX_DEPTH."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from sys import intern
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from qnet_tui.model import values, yamlscalar
from qnet_tui.model.diagnostics import Diagnostic, Severity
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Position, SourceMap, Topology
from qnet_tui.model.validate import did_you_mean

FORMAT_VERSION = 1
MAX_DEPTH = 64
TOP_KEYS = ("version", "name", "description", "hosts", "nodes", "links", "scenarios")
ERROR = Severity.ERROR

# libyaml's parser when PyYAML was built with it; the loader classes are
# parsers too, and only their get_event is used.
PARSER: type = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(
    (yamlscalar.STR_TAG, yamlscalar.INT_TAG, yamlscalar.FLOAT_TAG, yamlscalar.BOOL_TAG, yamlscalar.NULL_TAG)
)
# Anything outside YAML's own set: #x9 | #xA | #xD | [#x20-#x7E] | #x85 |
# [#xA0-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Line breaks to libyaml (YAML 1.1), ordinary characters to ruamel (YAML 1.2):
# refused, or the two would read different lines and values.
_BREAKS = re.compile("[\x85\u2028\u2029]")
MERGE_REFUSED = "merge keys ('<<') are not supported in a topology file; write the keys out in each node"
TOO_DEEP = f"YAML is nested more than {MAX_DEPTH} levels deep; this is not a topology file"


class Refused(Exception):
    """The file cannot be read on: one placed error, nothing else."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


# Where things stand, as the parser's own mark objects (line, column; 0-based):
# kept as they come, since making a tuple of each would cost more. A mapping's
# marks: key -> (mark of the key, mark of the value, marks of the value when it
# is a collection that has them); a sequence's: [(mark of the item, its marks)].
Marks = dict[Any, tuple[Any, Any, Any]] | list[tuple[Any, Any]]


@dataclass(slots=True)
class Composed:
    root: Any
    at: Position
    marks: Marks | None  # the root's
    problems: list[Diagnostic] = field(default_factory=list)


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Everything made while reading stays alive to the end and holds no
    cycle; with the collector on, each collection would walk it all again
    (5x slower on a 4 MiB file)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # Move all that was made to the oldest generation without walking
            # it: the young ones would each walk it once more on the way up.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _at(mark: Any) -> Position:
    return (mark.line + 1, mark.column + 1)


def _offset_at(text: str, index: int) -> Position:
    return (text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1)


def check_characters(text: str) -> None:
    bad = _NOT_YAML.search(text)
    if bad is not None:
        raise Refused(f"character {bad.group()!r} is not allowed in YAML", *_offset_at(text, bad.start()))
    bad = _BREAKS.search(text)
    if bad is not None:
        raise Refused(
            f"character {bad.group()!r} is not allowed in a topology file: YAML 1.1 reads it as a line break, "
            "YAML 1.2 does not (write it as an escape in double quotes)",
            *_offset_at(text, bad.start()),
        )


def compose(text: str) -> Composed:
    """The one document of text as plain values (dict, list, str, int, float,
    bool, None, date), with marks; raises Refused."""
    check_characters(text)
    parser = PARSER(text)
    try:
        return _compose(parser.get_event)
    except yaml.MarkedYAMLError as exc:
        raise _syntax(exc, text) from None
    except yaml.YAMLError as exc:  # a reader error without a place
        raise Refused(f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        parser.dispose()


# An open collection (its end event has not come yet), a list for speed.
_VALUE, _MARKS, _KEY, _KEY_EVENT, _HEIGHT, _ANCHOR, _MARK, _DEPTH, _ALL_MARKS = range(9)
_NO_KEY = object()
_MAX_LEVELS = MAX_DEPTH + 1  # the top level, and MAX_DEPTH levels in it (as brackets count them)
_UNKNOWN = (None, None, None)  # the marks of an entry whose marks were not kept
_MARKED_DEPTH = 3  # top level, nodes/links, one node's body or one link: all that diagnostics place
MARKED_WHOLE = "scenarios"  # a top-level key whose value is marked all the way down (its steps nest deeper)


def _compose(get_event: Any) -> Composed:
    """The events' values, built in one pass without recursion."""
    plain, styled = yamlscalar.plain, yamlscalar.STYLED
    words, word_first, number_first = yamlscalar.WORDS, yamlscalar.WORD_FIRST, yamlscalar.NUMBER_FIRST
    out = Composed(_NO_KEY, (1, 1), None)
    # name -> (value, height, marks); height -1 while the collection is still open
    anchors: dict[str, tuple[Any, int, Any]] = {}
    stack: list[list[Any]] = []
    top: list[Any] | None = None
    top_value: Any = None
    top_marks: Any = None
    top_is_map = False
    documents = 0
    event: Any = None
    try:
        while True:
            event = get_event()
            cls = event.__class__
            if cls is ScalarEvent:
                text = event.value
                if event.tag is None and event.implicit[0]:
                    first = text[:1]
                    if first in word_first:
                        value = words.get(text, text)
                    elif first in number_first:
                        value = plain(text)
                    else:
                        value = text
                else:
                    value = _scalar(event, styled)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 0, None)
                if top_is_map:
                    key = top[_KEY]  # type: ignore[index]
                    if key is _NO_KEY:
                        if text == "<<" and event.tag is None and event.implicit[0]:
                            raise Refused(MERGE_REFUSED, *_at(event.start_mark))
                        if top[_DEPTH] >= _MARKED_DEPTH and value.__class__ is str:  # type: ignore[index]
                            value = intern(value)  # attribute names: one string each, not one per node
                        top[_KEY], top[_KEY_EVENT] = value, event  # type: ignore[index]
                        continue
                    top[_KEY] = _NO_KEY  # type: ignore[index]
                    if key in top_value:
                        _duplicate(top, key, out)  # type: ignore[arg-type]
                        continue
                    top_value[key] = value
                    if top_marks is not None:
                        top_marks[key] = (top[_KEY_EVENT].start_mark, event.start_mark, None)  # type: ignore[index]
                elif top is not None:
                    top_value.append(value)
                    if top_marks is not None:
                        top_marks.append((event.start_mark, None))
                else:
                    out.root, out.at = value, _at(event.start_mark)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                depth = len(stack) + 1
                if depth > _MAX_LEVELS:
                    raise Refused(TOO_DEEP, *_at(event.start_mark))
                top_is_map = cls is MappingStartEvent
                if event.tag is not None and event.tag != "!" and event.tag != (_MAP_TAG if top_is_map else _SEQ_TAG):
                    raise Refused(_tag_message(event.tag, "mapping" if top_is_map else "list"), *_at(event.start_mark))
                top_value = {} if top_is_map else []
                parent = top
                whole = parent is not None and (
                    parent[_ALL_MARKS] or (depth == 2 and parent[_KEY] == MARKED_WHOLE)  # type: ignore[index]
                )
                top_marks = ({} if top_is_map else []) if depth <= _MARKED_DEPTH or whole else None
                top = [top_value, top_marks, _NO_KEY, None, 1, event.anchor, event.start_mark, depth, whole]
                if event.anchor is not None:
                    anchors[event.anchor] = (top_value, -1, top_marks)
                stack.append(top)
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                done = stack.pop()
                value, height = done[_VALUE], done[_HEIGHT]
                if done[_ANCHOR] is not None:
                    anchors[done[_ANCHOR]] = (value, height, done[_MARKS])
                if not stack:
                    out.root, out.at, out.marks = value, _at(done[_MARK]), done[_MARKS]
                    top, top_is_map = None, False
                    continue
                top = stack[-1]
                top_value, top_marks = top[_VALUE], top[_MARKS]
                top_is_map = top_value.__class__ is dict
                key = top[_KEY]
                if top_is_map and key is not _NO_KEY and key not in top_value:  # the common case, inline
                    top[_KEY] = _NO_KEY
                    top_value[key] = value
                    if height >= top[_HEIGHT]:
                        top[_HEIGHT] = height + 1
                    if top_marks is not None:
                        top_marks[key] = (top[_KEY_EVENT].start_mark, done[_MARK], done[_MARKS])
                else:
                    _put(top, value, height, done[_MARK], done[_MARKS], out)
            elif cls is AliasEvent:
                try:
                    value, height, marks = anchors[event.anchor]
                except KeyError:
                    raise Refused(
                        f"YAML syntax: the alias *{event.anchor} names no anchor before it", *_at(event.start_mark)
                    ) from None
                if height < 0:
                    raise Refused(
                        f"the alias *{event.anchor} stands inside the collection it names; "
                        "a topology cannot hold a structure that contains itself",
                        *_at(event.start_mark),
                    )
                if top is None:
                    out.root, out.at, out.marks = value, _at(event.start_mark), marks
                elif top[_DEPTH] + height > _MAX_LEVELS:
                    raise Refused(f"{TOO_DEEP} (through the alias *{event.anchor})", *_at(event.start_mark))
                elif top_is_map and top[_KEY] is _NO_KEY:
                    if height:
                        raise Refused(
                            f"a key must be a single value, not {values.describe(value)}", *_at(event.start_mark)
                        )
                    top[_KEY], top[_KEY_EVENT] = value, event
                else:
                    _put(top, value, height, event.start_mark, marks, out)
            elif cls is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise Refused(
                        "YAML syntax: a second document starts here; a topology file holds one document",
                        *_at(event.start_mark),
                    )
                if event.version is not None and event.version != (1, 2):
                    raise Refused(
                        f"%YAML {event.version[0]}.{event.version[1]} is not supported: a topology file is YAML 1.2 "
                        "(remove the %YAML line)",
                        *_at(event.start_mark),
                    )
            elif cls is StreamEndEvent:
                break
    except yamlscalar.ScalarError as exc:  # a plain scalar read as a number, e.g. of 5000 digits
        raise Refused(f"YAML value cannot be read: {exc}", *_at(event.start_mark)) from None
    if out.root is _NO_KEY:
        raise Refused("file holds no YAML document")
    return out


def _put(top: list[Any], value: Any, height: int, mark: Any, marks: Any, out: Composed) -> None:
    """Put a finished collection or an alias's value (of height levels) into top."""
    if height >= top[_HEIGHT]:
        top[_HEIGHT] = height + 1
    container, top_marks = top[_VALUE], top[_MARKS]
    if container.__class__ is not dict:
        container.append(value)
        if top_marks is not None:
            top_marks.append((mark, marks))
        return
    key = top[_KEY]
    if key is _NO_KEY:
        raise Refused(f"a key must be a single value, not {values.describe(value)}", *_at(mark))
    top[_KEY] = _NO_KEY
    if key in container:
        _duplicate(top, key, out)
        return
    container[key] = value
    if top_marks is not None:
        top_marks[key] = (top[_KEY_EVENT].start_mark, mark, marks)


def _duplicate(top: list[Any], key: Any, out: Composed) -> None:
    """The second of two equal keys: reported; the first one counts, as in ruamel."""
    event = top[_KEY_EVENT]
    text = event.value if event.__class__ is ScalarEvent else f"*{event.anchor}"
    marks = top[_MARKS]
    first = f" (first at line {marks[key][0].line + 1})" if marks is not None and key in marks else ""
    out.problems.append(
        Diagnostic(ERROR, f"duplicate key '{text}'{first}; node ids and keys must be unique", *_at(event.start_mark))
    )


def _scalar(event: Any, styled: dict[str | None, type[str]]) -> Any:
    """A scalar off the hot path: quoted, a block, or tagged."""
    tag = event.tag
    if tag is None or tag == "!":
        # '!' is YAML's "not specific"; ruamel resolves it as if absent
        return yamlscalar.plain(event.value) if event.implicit[0] else styled.get(event.style, str)(event.value)
    if tag not in _SCALAR_TAGS:
        raise Refused(_tag_message(tag, "value"), *_at(event.start_mark))
    return yamlscalar.tagged(tag, event.value)


def _tag_message(tag: str, what: str) -> str:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"the YAML tag {short} is not supported on a {what}; a topology file uses plain YAML"


def _syntax(exc: yaml.MarkedYAMLError, text: str) -> Refused:
    mark = exc.problem_mark or exc.context_mark
    line, col = _at(mark) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    if "nesting depth" in problem:  # libyaml's own limit (1000), met while it looks ahead
        return Refused(TOO_DEEP, *(_too_deep_bracket(text) or (line, col)))
    if "tab character" in problem or _char_at(text, line, col) == "\t":
        problem = "a tab character; YAML indents with spaces only"
    elif exc.context:
        problem = f"{problem} ({exc.context})"
    return Refused(f"YAML syntax: {problem}", line, col)


def _too_deep_bracket(text: str) -> Position | None:
    """Where brackets first nest deeper than MAX_DEPTH (brackets in strings
    count too: this only places an error libyaml found)."""
    depth = 0
    for m in re.finditer(r"[][{}]", text):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _offset_at(text, m.start())
        elif depth:
            depth -= 1
    return None


def _char_at(text: str, line: int, col: int) -> str:
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    return text[start + col - 1 : start + col]


# -- the topology ----------------------------------------------------------------


@dataclass(slots=True)
class Reading:
    topology: Topology = field(default_factory=Topology)
    source: SourceMap = field(default_factory=SourceMap)
    problems: list[Diagnostic] = field(default_factory=list)
    mapping: bool = False  # the top level is a mapping: the text can be saved back into


def read(text: str) -> Reading:
    """The topology in text, where each part of it stands, and what is wrong
    with the file's structure (validate() checks the rest)."""
    out = Reading()
    with no_cyclic_gc():
        try:
            composed = compose(text)
        except Refused as exc:
            out.problems.append(Diagnostic(ERROR, exc.message, exc.line, exc.col))
            return out
        out.problems.extend(composed.problems)
        tree = composed.root
        if not isinstance(tree, dict):
            out.problems.append(
                Diagnostic(
                    ERROR,
                    f"the top level must be a mapping with version, name, nodes and links, not {values.describe(tree)}",
                    *composed.at,
                )
            )
            return out
        out.mapping = True
        _read_tree(tree, composed, out)
    return out


def _read_tree(tree: dict[Any, Any], composed: Composed, out: Reading) -> None:
    topo, smap, problems = out.topology, out.source.positions, out.problems
    entries = composed.marks if composed.marks.__class__ is dict else {}
    for key in tree:
        key_mark, value_mark, _ = entries.get(key, _UNKNOWN)
        here = smap[("top", key)] = _at(key_mark) if key_mark is not None else composed.at
        smap[("top-value", key)] = _at(value_mark) if value_mark is not None else here
        if key not in TOP_KEYS:
            problems.append(
                Diagnostic(
                    ERROR,
                    f"unknown top-level key {values.describe(key)}"
                    f"{did_you_mean(str(key), TOP_KEYS)}; a topology has {', '.join(TOP_KEYS)}",
                    *here,
                )
            )
    version = tree.get("version")
    if "version" not in tree:
        problems.append(Diagnostic(ERROR, f"missing 'version: {FORMAT_VERSION}' at the top"))
    elif version != FORMAT_VERSION or isinstance(version, bool):
        problems.append(
            Diagnostic(
                ERROR,
                f"version {values.describe(version)} is not supported; this qnet-tui reads version {FORMAT_VERSION}",
                *smap[("top-value", "version")],
            )
        )
    topo.name = tree.get("name")
    description = tree.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(
            Diagnostic(
                ERROR,
                f"description must be a string, not {values.describe(description)}",
                *smap[("top-value", "description")],
            )
        )
    else:
        topo.description = description
    nodes = tree.get("nodes")
    if nodes is not None and not isinstance(nodes, dict):
        problems.append(
            Diagnostic(
                ERROR,
                f"nodes must be a mapping from node id to its attributes, not {values.describe(nodes)}",
                *smap[("top-value", "nodes")],
            )
        )
    elif nodes:
        _read_nodes(nodes, entries.get("nodes", _UNKNOWN)[2], smap[("top-value", "nodes")], out)
    links = tree.get("links")
    if links is not None and not isinstance(links, list):
        problems.append(
            Diagnostic(
                ERROR,
                f"links must be a list of node id pairs, not {values.describe(links)}",
                *smap[("top-value", "links")],
            )
        )
    elif links:
        _read_links(links, entries.get("links", _UNKNOWN)[2], smap[("top-value", "links")], out)
    if "scenarios" in tree:
        topo.scenarios = tree["scenarios"]
        _mark_tree(("scn",), ("scn-key",), entries.get("scenarios", _UNKNOWN)[2], smap)
    if "hosts" in tree:
        # Marked to depth 3 (a host's keys) like every top-level section: all its problems need.
        topo.hosts = tree["hosts"]
        _mark_tree(("hosts",), ("hosts-key",), entries.get("hosts", _UNKNOWN)[2], smap)


def _mark_tree(at: tuple[Any, ...], key_at: tuple[Any, ...], marks: Any, smap: dict[tuple[Any, ...], Position]) -> None:
    """Where each value (and key) under a marked-whole collection stands, by
    its path: ("scn", name, 0, "link", 1) is the second end of the link of
    scenario name's first step. Scenarios are short; this is no hot path."""
    if marks.__class__ is dict:
        for key, (key_mark, value_mark, sub) in marks.items():
            if key_mark is not None:
                smap[(*key_at, key)] = _at(key_mark)
            if value_mark is not None:
                smap[(*at, key)] = _at(value_mark)
            if sub is not None:
                _mark_tree((*at, key), (*key_at, key), sub, smap)
    elif marks.__class__ is list:
        for i, (mark, sub) in enumerate(marks):
            if mark is not None:
                smap[(*at, i)] = _at(mark)
            if sub is not None:
                _mark_tree((*at, i), (*key_at, i), sub, smap)


def _read_nodes(nodes: dict[Any, Any], marks: Any, at: Position, out: Reading) -> None:
    """The hot loop of a big file: one pass, no call that can be saved. It
    empties nodes and marks as it goes, so that the memory of what was read
    is reused for the topology. Where marks are missing (a value from an alias
    to a deeper place), the enclosing collection's position stands in."""
    topo_nodes, smap, problems = out.topology.nodes, out.source.positions, out.problems
    kinds = {k.value: k for k in Kind}
    if marks.__class__ is not dict:
        marks = {}
    unknown = _UNKNOWN
    for node_id in list(nodes):
        body = nodes.pop(node_id)
        key_mark, body_mark, fields = marks.pop(node_id, unknown)
        pos = (key_mark.line + 1, key_mark.column + 1) if key_mark is not None else at
        if node_id.__class__ is not str and not isinstance(node_id, str):
            problems.append(Diagnostic(ERROR, f"node id {values.describe(node_id)} must be a string", *pos))
            continue
        smap[("node", node_id)] = pos
        if body is None:  # "tap0:" alone: a node with nothing said of it yet
            body = {}
        elif body.__class__ is not dict:
            problems.append(
                Diagnostic(
                    ERROR,
                    f"{node_id}: a node is a mapping with 'kind' and its attributes, not {values.describe(body)}",
                    *(_at(body_mark) if body_mark is not None else pos),
                    node=node_id,
                )
            )
            topo_nodes[node_id] = Node(node_id, None, {})  # type: ignore[arg-type] # so its links do not also fail
            continue
        if fields.__class__ is not dict:
            fields = {}
        attrs = {}
        for key, value in body.items():
            key_mark, value_mark, _ = fields.get(key, unknown)
            key_at = (key_mark.line + 1, key_mark.column + 1) if key_mark is not None else pos
            if key.__class__ is not str and not isinstance(key, str):
                problems.append(
                    Diagnostic(ERROR, f"{node_id}: key {values.describe(key)} must be a string", *key_at, node=node_id)
                )
                continue
            smap[("field", node_id, key)] = key_at
            smap[("value", node_id, key)] = (
                (value_mark.line + 1, value_mark.column + 1) if value_mark is not None else key_at
            )
            if key != "kind":
                attrs[key] = value
        kind = body.get("kind", _NO_KEY)
        if kind is _NO_KEY:
            kind = None
            problems.append(
                Diagnostic(ERROR, f"{node_id}: missing 'kind' (one of {', '.join(kinds)})", *pos, node=node_id)
            )
        elif kind.__class__ is str or isinstance(kind, str):
            kind = kinds.get(kind, kind)
        topo_nodes[node_id] = Node(node_id, kind, attrs, node_id)


def _read_links(links: list[Any], marks: Any, at: Position, out: Reading) -> None:
    topo_links, smap = out.topology.links, out.source.positions
    if marks.__class__ is not list:
        marks = []
    known = len(marks)
    for i, link in enumerate(links):
        link_mark, ends = marks[i] if i < known else _UNKNOWN[:2]
        pos = (link_mark.line + 1, link_mark.column + 1) if link_mark is not None else at
        n = len(topo_links)
        smap[("link", n)] = pos
        if (
            link.__class__ is not list
            or not 2 <= len(link) <= 3
            or not isinstance(a := link[0], str)
            or not isinstance(b := link[1], str)
        ):
            out.problems.append(
                Diagnostic(
                    ERROR,
                    f"a link is a pair of node ids, as in [br0, tap0] (and its options, as in "
                    f"[hub0, vm1, {{impair: delay=50ms}}]), not {values.describe(link)}",
                    *pos,
                )
            )
            continue
        if ends.__class__ is list:
            (m, _), (m2, _) = ends[:2]
            smap[("end", n, 0)] = (m.line + 1, m.column + 1)
            smap[("end", n, 1)] = (m2.line + 1, m2.column + 1)
        else:
            smap[("end", n, 0)] = smap[("end", n, 1)] = pos
        a, b = (a if a.__class__ is str else str(a), b if b.__class__ is str else str(b))
        if len(link) == 3:
            m = ends[2][0] if ends.__class__ is list and len(ends) > 2 else None
            opt_at = (m.line + 1, m.column + 1) if m is not None else pos
            smap[("options", n)] = opt_at
            _read_link_options(a, b, link[2], opt_at, out)  # a bad one is reported; the link stands
        topo_links.append((a, b))


def _read_link_options(a: str, b: str, options: Any, at: Position, out: Reading) -> None:
    """A link's third item: {impair: SPEC} (both ways) or {impair: {END: SPEC}}
    (towards END); a placed error when it is neither."""
    where = f"link {a} - {b}"
    if options.__class__ is not dict or set(options) - {"impair"}:
        extra = ", ".join(map(str, set(options) - {"impair"})) if options.__class__ is dict else None
        said = f"unknown option {extra}" if extra else values.describe(options)
        out.problems.append(Diagnostic(ERROR, f"{where}: a link's options are a mapping with impair, not {said}", *at))
        return
    impair = options.get("impair")
    if isinstance(impair, str):
        out.topology.impair[(a, b)] = out.topology.impair[(b, a)] = impair
        return
    by_end = impair.__class__ is dict and impair and set(impair) <= {a, b}
    if by_end and all(isinstance(v, str) for v in impair.values()):
        for to, spec in impair.items():
            out.topology.impair[(b, a) if to == a else (a, b)] = spec
        return
    out.problems.append(
        Diagnostic(
            ERROR,
            f"{where}: impair is a text form (as in delay=50ms loss=1%) for both ways, or a mapping from an end "
            f"({a} or {b}) to the text form for frames towards it; not {values.describe(impair)}",
            *at,
        )
    )
