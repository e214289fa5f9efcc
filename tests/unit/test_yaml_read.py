"""Reading with libyaml: the values and positions ruamel's round-trip reading
gave, work in proportion to the file, and what is refused, placed."""

from __future__ import annotations

import datetime
import gc
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from qnet_tui.model import yamlread, yamlwrite
from qnet_tui.model.yamlio import SaveError, load_file, load_text

ROOT = Path(__file__).parents[2]
SAMPLES = sorted((ROOT / "sample_topologies").glob("*.yaml"))


def ruamel_load(text: str) -> Any:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = True
    return yaml.load(text)


def attr_text(scalar: str) -> str:
    return f"version: 1\nname: x\nnodes:\n  t:\n    kind: tap\n    v: {scalar}\n"


# Written as they would be after 'v: '; block scalars span lines.
SCALARS = [
    *["no", "yes", "No", "off", "on", "y", "n", "52:54:00:12:34:56", "12:30", "190:20:30", "1:20"],
    *["true", "True", "TRUE", "false", "False", "FALSE", "tRue", "truex"],
    *["~", "null", "Null", "NULL", "nUll", "", "nothing", "none"],
    *["10", "+10", "-10", "010", "08", "00", "0", "+0", "-0", "0_", "1_000", "1__0", "_1"],
    *["0o17", "0o8", "0o", "0x1F", "0x1f", "0X1F", "0x_1", "-0x10", "0x", "0b101", "0b", "-0b11"],
    *["1.5", "1.", "-.5", ".5", "1e3", "1.0e3", "1E3", "1e+3", "1.e5", ".e5", "1e", "e5", "0.", "+.5e+3"],
    *[".5e3", "0.1_0", "1_0.5", ".inf", "-.Inf", "+.INF", ".nan", ".NaN", "+", ".", "..."],
    *["2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-1-1"],
    *["2001-1-1 1:00:00", "2001-12-14T21:59:43Z", "2002-12-14 21:59:43.1234567"],
    *["'no'", '"10"', "'~'", '""', "''", "'a''b'", '"a\\tb"', '"\\u00e9"', "é", "tap0", "10.0.0.1/24"],
    *["fd00::2/64", "a b", "x #c", "!!int '10'", "!!int 0x10", "!!float 1", "!!bool true"],
    *["!!bool yes", "!!bool Off", "!!null ''", "!!null x", "! 10", "! true", "! 'q'", "&a 5", "&a '5'"],
    *["[1, '2', ~]", "{a: 1, b: [no]}", "[]", "{}", "!!map {a: 1}", "!!seq [1]"],
    *["|\n      a\n      b\n", ">\n      a\n      b\n", "|-\n      a\n", ">+\n      a\n\n"],
]


def comparable(value: Any) -> Any:
    """A value with its YAML type spelled out, nan made equal to itself."""
    if isinstance(value, dict):
        return ("map", [(comparable(k), comparable(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [comparable(v) for v in value])
    for kind in (bool, int, float, str, datetime.datetime, datetime.date, type(None)):
        if isinstance(value, kind):
            if kind is float and math.isnan(value):
                return ("float", "nan")
            if kind is datetime.datetime and value.tzinfo is not None:  # ruamel's tz names differ
                return (kind.__name__, value.astimezone(datetime.UTC).replace(tzinfo=None))
            return (kind.__name__, kind(value) if kind in (bool, int, float, str) else value)
    return (type(value).__name__, value)


@pytest.mark.parametrize("scalar", SCALARS)
def test_values_are_read_as_ruamel_reads_them(scalar):
    text = attr_text(scalar)
    doc = load_text(text)
    assert doc.problems == []
    expected = ruamel_load(text)["nodes"]["t"]["v"]
    assert comparable(doc.topology.nodes["t"].attrs["v"]) == comparable(expected)


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("!!str 10", "10"),  # ruamel: a TaggedScalar, which no field takes
        ("!!str ~", "~"),
        ("=", "="),  # ruamel: a TaggedScalar of YAML 1.1's "value" tag
        ("<<", "<<"),  # a merge key only as a key
    ],
)
def test_where_ruamel_gives_an_object_no_topology_can_use_the_value_is_plain(scalar, value):
    doc = load_text(attr_text(scalar))
    assert doc.problems == []
    assert doc.topology.nodes["t"].attrs["v"] == value


def test_quotes_and_block_styles_are_remembered_as_ruamel_does():
    doc = load_text(attr_text("'a'") + '    w: "b"\n    x: |\n      c\n    y: plain\n')
    original = ruamel_load(attr_text("'a'") + '    w: "b"\n    x: |\n      c\n    y: plain\n')["nodes"]["t"]
    for key in "vwxy":
        assert type(doc.topology.nodes["t"].attrs[key]) is type(original[key])


# -- positions -------------------------------------------------------------------

HAND = """\
# comment
version: 1
name: 'hand'
description: >-
  folded
  text
nodes:
  eth0:   # x
    kind: host_nic
    ipv4: 10.0.0.1/24
  br0: {kind: bridge, stp: false}
  tap0:
  hub0: &h
    kind: hub

    vlan: 7
  vm1: {kind: guest_nic, mac: "52:54:00:00:00:01", x-list: [1, [2, 3]], x-map: {a: {b: c}}}
  12: {kind: tap}
  vm2: [a, b]
  vm3:
    kind: guest_nic
    7: x
links:
- [eth0, br0]
-   - br0
    - tap0
- [tap0, hub0, x]
- {a: b}
- [hub0,
   vm1]
"""
FLOW = "{version: 1, name: f, nodes: {a: {kind: tap}, b: {kind: hub, vlan: 1}}, links: [[a, b], [b, a]]}\n"


def ruamel_positions(text: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """Where the old ruamel reading placed each part, from its tree's lc."""
    tree = ruamel_load(text)

    def key(m, k):
        line, col = m.lc.key(k)
        return (line + 1, col + 1)

    def value(m, k):
        line, col = m.lc.value(k)
        return (line + 1, col + 1)

    def item(s, i):
        line, col = s.lc.item(i)
        return (line + 1, col + 1)

    out: dict[tuple[Any, ...], tuple[int, int]] = {}
    for k in tree:
        out[("top", k)], out[("top-value", k)] = key(tree, k), value(tree, k)
    nodes = tree.get("nodes")
    for node_id, body in nodes.items() if isinstance(nodes, CommentedMap) else ():
        if not isinstance(node_id, str):
            continue
        out[("node", node_id)] = key(nodes, node_id)
        for name in body if isinstance(body, CommentedMap) else ():
            if isinstance(name, str):
                out[("field", node_id, name)], out[("value", node_id, name)] = key(body, name), value(body, name)
    good = 0
    for i, link in enumerate(tree.get("links") or []):
        out[("link", good)] = item(tree["links"], i)
        if isinstance(link, CommentedSeq) and len(link) in (2, 3) and all(isinstance(x, str) for x in link[:2]):
            out[("end", good, 0)], out[("end", good, 1)] = item(link, 0), item(link, 1)
            if len(link) == 3:  # its options: the link stands even when they are wrong
                out[("options", good)] = item(link, 2)
            good += 1

    def walk(path: tuple[Any, ...], node: Any) -> None:  # the scenarios, marked all the way down
        if isinstance(node, CommentedMap):
            for k in node:
                out[("scn-key", *path, k)], out[("scn", *path, k)] = key(node, k), value(node, k)
                walk((*path, k), node[k])
        elif isinstance(node, CommentedSeq):
            for i, sub in enumerate(node):
                out[("scn", *path, i)] = item(node, i)
                walk((*path, i), sub)

    walk((), tree.get("scenarios"))
    hosts = tree.get("hosts")  # marked to a host's keys, as the top-level sections are
    for name, body in hosts.items() if isinstance(hosts, CommentedMap) else ():
        out[("hosts-key", name)], out[("hosts", name)] = key(hosts, name), value(hosts, name)
        for k in body if isinstance(body, CommentedMap) else ():
            out[("hosts-key", name, k)], out[("hosts", name, k)] = key(body, k), value(body, k)
    return out


@pytest.mark.parametrize("name", [p.name for p in SAMPLES] + ["hand", "flow"])
def test_positions_are_where_ruamel_put_them(name):
    text = {"hand": HAND, "flow": FLOW}.get(name) or (ROOT / "sample_topologies" / name).read_text()
    assert load_text(text).source.positions == ruamel_positions(text)


@pytest.mark.parametrize("name", [p.name for p in SAMPLES] + ["hand", "flow", "refused"])
def test_without_libyaml_pyyaml_reads_the_same(monkeypatch, name):
    text = {"hand": HAND, "flow": FLOW, "refused": "version: 1\nnodes:\n  t:\n    <<: {kind: tap}\n"}.get(name)
    text = text or (ROOT / "sample_topologies" / name).read_text()
    with_libyaml = load_text(text)
    monkeypatch.setattr(yamlread, "PARSER", yaml.BaseLoader)
    without = load_text(text)
    assert without.topology == with_libyaml.topology
    assert without.source == with_libyaml.source
    assert without.problems == with_libyaml.problems


def test_carriage_returns_alone_end_lines_too():
    doc = load_text("# a comment\rversion: 1\rname: x\rnodes: {t: {kind: tap}}\r")
    assert doc.problems == [] and doc.topology.name == "x"
    assert doc.source.positions[("node", "t")] == (4, 9)
    assert [d.message for d in load_text("# only\r# comments\r").problems] == [
        "file is empty; a topology starts with 'version: 1'"
    ]


def test_every_structural_problem_is_placed():
    messages = {(d.line, d.col): d.message for d in load_text(HAND).problems}
    assert messages == {
        (12, 3): "tap0: missing 'kind' (one of host_nic, bridge, tap, hub, guest_nic, socket, guest)",
        (18, 3): "node id 12 must be a string",
        (19, 8): "vm2: a node is a mapping with 'kind' and its attributes, not a list",
        (22, 5): "vm3: key 7 must be a string",
        (27, 16): "link tap0 - hub0: a link's options are a mapping with impair, not 'x'",
        (28, 3): "a link is a pair of node ids, as in [br0, tap0] (and its options, as in "
        "[hub0, vm1, {impair: delay=50ms}]), not a mapping",
    }


# -- refused, placed ---------------------------------------------------------------

REFUSED = [
    ("merge key", "nodes:\n  t0: &d {kind: tap}\n  t1:\n    <<: *d\n", "merge keys ('<<') are not supported", (6, 5)),
    ("recursive alias", "nodes:\n  t0: &d {kind: tap, x: [*d]}\n", "stands inside the collection it names", (4, 26)),
    ("undefined alias", "nodes:\n  t0: *nope\n", "the alias *nope names no anchor", (4, 7)),
    ("list as key", "nodes:\n  ? [a, b]\n  : {kind: tap}\n", "a key must be a single value, not a list", (4, 5)),
    ("alias of a list as key", "x: &l [a]\nnodes: {*l : 1}\n", "a key must be a single value, not a list", (4, 9)),
    ("local tag", "nodes:\n  t0: {kind: !foo tap}\n", "the YAML tag !foo is not supported", (4, 14)),
    ("binary tag", "description: !!binary aGk=\n", "the YAML tag !!binary is not supported", (3, 14)),
    ("set tag", "nodes: !!set {a, b}\n", "the YAML tag !!set is not supported on a mapping", (3, 8)),
    ("tag on the wrong node", "nodes: !!seq {a: 1}\n", "the YAML tag !!seq is not supported on a mapping", (3, 8)),
    ("bad tagged int", "nodes:\n  h: {kind: hub, vlan: !!int ten}\n", "YAML value cannot be read", (4, 24)),
    ("bad tagged bool", "nodes:\n  b: {kind: bridge, stp: !!bool maybe}\n", "'maybe' is not a boolean", (4, 26)),
    ("bad date", "description: 2001-13-45\n", "YAML value cannot be read: month must be in 1..12", (3, 14)),
    ("second document", "nodes: {}\n---\nnodes: {}\n", "a second document starts here", (4, 1)),
    ("line separator", "description: a\u2028b\n", "YAML 1.1 reads it as a line break", (3, 15)),
]


@pytest.mark.parametrize(("name", "body", "message", "where"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_one_placed_error(name, body, message, where):
    doc = load_text("version: 1\nname: x\n" + body)
    assert [(d.line, d.col) for d in doc.problems if message in d.message] == [where], doc.problems
    assert not doc.editable


def test_yaml_1_1_documents_are_refused():
    doc = load_text("%YAML 1.1\n---\nversion: 1\nname: x\nnodes: {b: {kind: bridge, stp: yes}}\n")
    assert [(d.message, d.line) for d in doc.problems] == [
        ("%YAML 1.1 is not supported: a topology file is YAML 1.2 (remove the %YAML line)", 1)
    ]
    assert load_text("%YAML 1.2\n---\nversion: 1\nname: x\n").problems == []


def test_aliases_deepen_nesting_too():
    # 40 + 40 levels: each part is fine, the alias makes 80
    deep = "[" * 40 + "]" * 40
    doc = load_text(f"version: 1\nname: x\nx-a: &d {deep}\nnodes:\n  t: {{kind: tap, x: {'[' * 39}*d{']' * 39}}}\n")
    assert [(d.message, d.line, d.col) for d in doc.problems] == [
        ("YAML is nested more than 64 levels deep; this is not a topology file (through the alias *d)", 5, 60)
    ]


def test_duplicate_keys_keep_the_first_as_ruamel_does():
    doc = load_text("version: 1\nname: x\nnodes:\n  a: {kind: tap}\n  b: {kind: hub, vlan: 1, vlan: 2}\n  a: 1\n")
    assert [(d.message, d.line, d.col) for d in doc.problems] == [
        ("duplicate key 'vlan' (first at line 5); node ids and keys must be unique", 5, 27),
        ("duplicate key 'a' (first at line 4); node ids and keys must be unique", 6, 3),
    ]
    assert doc.topology.nodes["a"].kind == "tap" and doc.topology.nodes["b"].attrs == {"vlan": 1}


def test_shared_values_are_shared_not_copied():
    doc = load_text("version: 1\nname: x\nnodes:\n  a: {kind: tap, x: &l [1, 2]}\n  b: {kind: tap, x: *l}\n")
    nodes = doc.topology.nodes
    assert nodes["a"].attrs["x"] is nodes["b"].attrs["x"] == [1, 2]


# -- not a regular file ----------------------------------------------------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "lab.yaml"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "qnet_tui", "validate", str(fifo)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stdout == f"{fifo}:1:1: error: cannot read: a FIFO, not a regular file\n"


@pytest.mark.parametrize(("path", "what"), [(".", "a folder"), ("/dev/null", "a character device")])
def test_other_files_that_are_not_regular_are_refused(tmp_path, path, what):
    target = tmp_path if path == "." else Path(path)
    doc = load_file(target)
    assert [d.message for d in doc.problems] == [f"cannot read: {what}, not a regular file"]


def test_a_missing_file_says_so(tmp_path):
    assert [d.message for d in load_file(tmp_path / "nope.yaml").problems] == ["cannot read: No such file or directory"]


# -- work in proportion to the file -------------------------------------------------------


def _taps(n: int) -> str:
    return "".join(f"  t{i}:\n    kind: tap\n" for i in range(n))


FAMILIES = {
    "nodes": lambda n: "nodes:\n" + _taps(n),
    "merge keys": lambda n: "nodes:\n  t0: &d {kind: tap}\n" + "".join(f"  t{i}: {{<<: *d}}\n" for i in range(1, n)),
    "merged big mapping": lambda n: (
        "nodes:\n  t0: &d {kind: tap, "
        + ", ".join(f"x{i}: {i}" for i in range(n))
        + "}\n"
        + "".join(f"  t{i}:\n    <<: *d\n    y: 1\n" for i in range(1, n))
    ),
    "aliases of a big list": lambda n: (
        f"x-all: &a [{', '.join(map(str, range(n)))}]\nnodes:\n"
        + "".join(f"  t{i}: {{kind: tap, x: *a}}\n" for i in range(n))
    ),
    "duplicate keys": lambda n: "nodes:\n" + "".join(f"  t: {{kind: tap, x: {i}}}\n" for i in range(n)),
    "links": lambda n: "nodes:\n" + _taps(2) + "links:\n" + "".join("  - [t0, t1]\n" for _ in range(n)),
    "nested lists": lambda n: "nodes:\n  t: {kind: tap, x: [" + ", ".join(["[[[[1]]]]"] * n) + "]}\n",
}


def _calls_to_read(text: str) -> int:
    """Function calls, Python's and C's, made while reading text: a count of
    work that does not depend on the machine's speed."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += 1

    sys.setprofile(count)
    try:
        load_text(text)
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("family", FAMILIES)
def test_reading_is_linear(family):
    make = FAMILIES[family]
    small, large = (_calls_to_read("version: 1\nname: x\n" + make(n)) for n in (400, 800))
    assert large <= 2.2 * small, (small, large)


def _collections_while_reading(text: str) -> list[int]:
    runs = []

    def note(phase, info):
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        load_text(text)
    finally:
        gc.callbacks.remove(note)
    return runs


def test_the_cyclic_garbage_collector_does_not_walk_what_is_read_again_and_again():
    # With the collector on, a collection every few hundred objects made
    # would walk all that was read so far.
    runs = _collections_while_reading("version: 1\nname: x\nnodes:\n" + _taps(20_000))
    assert len(runs) <= 2, runs  # not one for every few hundred objects made
    assert gc.isenabled()


# -- saving goes through ruamel, read only then ----------------------------------------------


def test_ruamel_reads_the_file_only_to_save(monkeypatch):
    made = []
    real = yamlwrite._yaml
    monkeypatch.setattr(yamlwrite, "_yaml", lambda: made.append(1) or real())
    doc = load_text("version: 1\nname: x   # kept\nnodes:\n  h: {kind: hub, vlan: 1}\n")
    doc.diagnostics()
    assert made == []
    doc.topology.nodes["h"].attrs["vlan"] = 2
    saved = "version: 1\nname: x   # kept\nnodes:\n  h: {kind: hub, vlan: 2}\nlinks: []\n"
    assert doc.dumps() == saved
    assert doc.dumps() == saved
    assert len(made) == 3  # one read, two dumps


@pytest.mark.skipif(
    yamlread.PARSER is not getattr(yaml, "CBaseLoader", None), reason="libyaml takes what ruamel does not"
)
def test_a_file_ruamel_cannot_read_back_is_not_saved(tmp_path):
    path = tmp_path / "lab.yaml"
    text = "version: 1\nname:\tx\nnodes:\n  h: {kind: hub, vlan: 1}\n"  # a tab after ':' is valid YAML
    path.write_text(text)
    doc = load_file(path)
    assert doc.problems == [] and doc.topology.name == "x"
    doc.topology.nodes["h"].attrs["vlan"] = 2
    why = r"cannot read it \(found character '\\t' .* at line 2, column 6\); the file on disk is unchanged"
    with pytest.raises(SaveError, match=why):
        doc.save()
    assert path.read_text() == text
    assert os.listdir(tmp_path) == ["lab.yaml"]
