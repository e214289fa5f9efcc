"""Deleting from a round-trip tree without taking a neighbour's comments along.

ruamel.yaml stores the comment lines *above* an entry as the trailing comment
of the entry before it (on its deepest last value). Deleting that earlier entry
would delete them; here they are handed to the entry before it instead."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

_EOL = 2  # index of the end-of-line/trailing token in a ca.items entry


def _trailing_slots(container: CommentedBase, key: Any) -> list[tuple[list, int]]:
    """Every (ca.items entry, index) that may hold trailing comments of the
    entry `key` of container, its own slot first, then those of its subtree."""
    slots = []
    entry = container.ca.items.get(key)
    if entry is not None and len(entry) > _EOL:
        slots.append((entry, _EOL))
    value = container[key]
    if isinstance(value, (CommentedMap, CommentedSeq)):
        for sub in value if isinstance(value, CommentedMap) else range(len(value)):
            slots.extend(_trailing_slots(value, sub))
    return slots


def _last_token(container: CommentedBase, key: Any) -> tuple[list, int] | None:
    best, best_line = None, -1
    for entry, i in _trailing_slots(container, key):
        token = entry[i]
        if isinstance(token, CommentToken):
            line = getattr(token.start_mark, "line", None)
            line = 10**9 if line is None else line  # ours, added after the file was read
            if line >= best_line:
                best, best_line = (entry, i), line
    return best


def _deepest_last(container: CommentedBase, key: Any) -> tuple[CommentedBase, Any]:
    value = container[key]
    while isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
        container, key = value, (list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
        value = container[key]
    return container, key


def delete(container: CommentedMap | CommentedSeq, key: Any) -> None:
    """del container[key], moving the comment lines that stand below the
    entry (and so above the next one) onto the entry before it."""
    keys = list(container) if isinstance(container, CommentedMap) else list(range(len(container)))
    position = keys.index(key)
    rest = ""
    found = _last_token(container, key)
    if found:
        entry, i = found
        _first, newline, rest = entry[i].value.partition("\n")
        rest = rest if newline else ""
    del container[key]
    if not rest.strip():
        return
    if position == 0:
        # Nothing above to hang them on: they become the container's leading comment.
        comment = container.ca.comment
        if comment is None:
            container.ca.comment = comment = [None, []]
        for line in rest.splitlines():
            if line.strip():
                column = len(line) - len(line.lstrip())
                comment[1].append(CommentToken(line.lstrip() + "\n", CommentMark(column), None))
        return
    previous = keys[position - 1]
    found = _last_token(container, previous)
    if found:
        entry, i = found
        token = entry[i]
        token.value = token.value if token.value.endswith("\n") else token.value + "\n"
        token.value += rest
        return
    holder, last = _deepest_last(container, previous)
    entry = holder.ca.items.setdefault(last, [None, None, None, None])
    entry[_EOL] = CommentToken("\n" + rest, CommentMark(0), None)
