"""Malformed files are diagnostics with a place, never exceptions."""

from __future__ import annotations

import pytest

from qnet_tui.model.yamlio import MAX_FILE_BYTES, load_bytes

LAUGHS = (
    "version: 1\nname: x\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
    + "nodes:\n  t: {kind: tap, note: *j}\nlinks: [*j, *j]\n"
)

CASES = [
    ("empty", b"", "file is empty", (1, 1)),
    ("only comments", b"# nothing\n\n", "file is empty", (1, 1)),
    (
        "tab indent",
        b"version: 1\nnodes:\n\tt0: {kind: tap}\n",
        "a tab character; YAML indents with spaces only",
        (3, 1),
    ),
    ("bad syntax", b"version: 1\nname: x\nnodes: {a: [}\n", "node content", (3, 13)),
    ("unclosed quote", b'version: 1\nname: "x\n', "YAML syntax", (3, 1)),
    ("list root", b"- 1\n- 2\n", "the top level must be a mapping", (1, 1)),
    ("scalar root", b"hello\n", "the top level must be a mapping", (1, 1)),
    ("not utf-8", b"version: 1\nname: \xff\xfe\n", "not UTF-8 text: byte 0xff", (2, 7)),
    ("control char", b"version: 1\nname: a\x07b\n", "is not allowed in YAML", (2, 8)),
    ("deep flow", b"version: 1\nnodes: " + b"[" * 10000 + b"]" * 10000, "nested more than 64 levels", (2, 72)),
    (
        "deep block",
        b"version: 1\nnodes:\n" + b"".join(b" " * i + b"k%d:\n" % i for i in range(1, 1500)),
        "nested more than 64 levels",
        (67, 66),  # the 65th level below the top: k65, indented by 65
    ),
    (
        "huge int",
        b"version: 1\nname: x\nnodes:\n  h: {kind: hub, vlan: " + b"9" * 5000 + b"}\n",
        "YAML value cannot be read",
        (4, 24),
    ),
    ("too large", b"version: 1\n" + b"#" * MAX_FILE_BYTES, "larger than 4 MiB", (1, 1)),
    ("nodes a list", b"version: 1\nname: x\nnodes: [a, b]\n", "nodes must be a mapping", (3, 8)),
    ("links a mapping", b"version: 1\nname: x\nlinks: {a: b}\n", "links must be a list", (3, 8)),
    ("link of four", b"version: 1\nname: x\nlinks:\n  - [a, b, c, d]\n", "a link is a pair of node ids", (4, 5)),
    (
        "link options not a mapping",
        b"version: 1\nname: x\nlinks:\n  - [a, b, c]\n",
        "link a - b: a link's options are a mapping with impair, not 'c'",
        (4, 12),
    ),
    (
        "node id not a string",
        b"version: 1\nname: x\nnodes:\n  12: {kind: tap}\n",
        "node id 12 must be a string",
        (4, 3),
    ),
    ("duplicate top key", b"version: 1\nname: x\nname: y\n", "duplicate key 'name'", (3, 1)),
]


@pytest.mark.parametrize(("name", "data", "message", "where"), CASES, ids=[c[0] for c in CASES])
def test_malformed(name, data, message, where):
    doc = load_bytes(data)
    errors = [d for d in doc.diagnostics() if d.is_error]
    hits = [d for d in errors if message in d.message]
    assert hits, [d.message for d in errors]
    assert (hits[0].line, hits[0].col) == where
    assert not doc.editable


def test_billion_laughs_is_cheap():
    # Aliases are shared, never expanded: were they, this would not finish.
    doc = load_bytes(LAUGHS.encode())
    messages = [d.message for d in doc.diagnostics()]
    assert "t: unknown key 'note'; a tap has host" in messages
    assert any(m.startswith("a link is a pair of node ids, as in [br0, tap0]") for m in messages)
