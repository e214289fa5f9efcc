"""Writing a topology back into its file's YAML tree: ruamel.yaml's
round-trip mode, changing only what differs, so comments, key order and
quoting survive; then dumping the tree the way the file was written."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from qnet_tui.model import comments
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlread import FORMAT_VERSION


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


def _yaml() -> YAML:
    yaml = YAML()  # round-trip, YAML 1.2: "no" and 52:54:00:... stay strings
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = True  # duplicates are found on the node graph and reported there
    yaml.width = 4096
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # a link's options: [hub0, vm1, {impair: ...}]
    return yaml


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


def dump(tree: CommentedMap, style: Style) -> str:
    """The tree as text, in the file's style."""
    yaml = _yaml()
    yaml.indent(mapping=style.mapping, sequence=style.sequence, offset=style.offset)
    yaml.explicit_start = style.explicit_start
    out = io.StringIO()
    yaml.dump(tree, out)
    text = style.preamble + out.getvalue()
    if style.crlf:
        text = text.replace("\n", "\r\n")
    return ("\ufeff" if style.bom else "") + text


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
    _sync_link_options(tree["links"], topology.impair)
    _sync_section(tree, "hosts", topology.hosts)
    _sync_section(tree, "scenarios", topology.scenarios)
    return tree


def _sync_section(tree: CommentedMap, key: str, value: Any) -> None:
    """A section kept raw (scenarios, hosts) as the topology holds it,
    changing only what differs, so the rest keeps its comments, quoting and
    flow style. An empty section ('hosts:' alone) reads as none and stays."""
    if value is None:
        if tree.get(key) is not None:
            comments.delete(tree, key)
    elif key not in tree:
        tree[key] = value
    else:
        _sync_value(tree, key, value)


def _sync_value(parent: CommentedMap | CommentedSeq, key: Any, new: Any) -> None:
    old = parent[key]
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            comments.delete(old, k)
        for k, value in new.items():
            if k in old:
                _sync_value(old, k, value)
            else:
                old[k] = value
    elif isinstance(old, CommentedSeq) and isinstance(new, list) and len(old) == len(new):
        for i, value in enumerate(new):
            _sync_value(old, i, value)
    elif isinstance(old, CommentedSeq) and isinstance(new, list):
        seq = CommentedSeq(new)
        if old.fa.flow_style():
            seq.fa.set_flow_style()
        parent[key] = seq
    elif not _same(old, new):
        parent[key] = new


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
    # A link's options (its third item) do not make it another link.
    current = [tuple(x[:2]) if isinstance(x, list) and len(x) in (2, 3) else None for x in seq]
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


def _denoted(a: Any, b: Any, options: Any) -> dict[tuple[Any, Any], Any]:
    """The impairments a link's options give, by direction (as yamlread reads them)."""
    impair = options.get("impair") if isinstance(options, dict) else None
    if isinstance(impair, str):
        return {(a, b): impair, (b, a): impair}
    if isinstance(impair, dict):
        return {((b, a) if to == a else (a, b)): spec for to, spec in impair.items()}
    return {}


def _sync_link_options(seq: CommentedSeq, impair: dict[tuple[str, str], Any]) -> None:
    """Each link's third item says its impairments; one that already says them
    is left as written (its form, quoting and comments)."""
    for item in seq:
        if not isinstance(item, list) or len(item) not in (2, 3):
            continue
        a, b = item[0], item[1]
        wanted = {d: impair[d] for d in ((a, b), (b, a)) if d in impair}
        if _denoted(a, b, item[2] if len(item) == 3 else None) == wanted:
            continue
        if len(item) == 3:
            del item[2]
        if not wanted:
            continue
        if len(wanted) == 2 and wanted[(a, b)] == wanted[(b, a)]:
            value: Any = wanted[(a, b)]
        else:
            value = CommentedMap((to, spec) for (_, to), spec in wanted.items())
        options = CommentedMap(impair=value)
        if getattr(item, "fa", None) is not None and item.fa.flow_style():
            options.fa.set_flow_style()
            if isinstance(value, CommentedMap):
                value.fa.set_flow_style()
        item.append(options)
