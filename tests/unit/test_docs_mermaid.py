"""docs/topologies.md shows every sample topology as Mermaid, as export makes it now.

Regenerate it with: .venv/bin/python -m tests.unit.test_docs_mermaid"""

from __future__ import annotations

from pathlib import Path

from qnet_tui.model.export import export
from qnet_tui.model.yamlio import load_file

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "topologies.md"
REGENERATE = ".venv/bin/python -m tests.unit.test_docs_mermaid"


def render() -> str:
    parts = [
        "# The sample topologies",
        "",
        "Every file of `sample_topologies/`, drawn by `.venv/bin/qnet-tui export FILE --to mermaid`.",
        "Shapes: hub `{{hexagon}}`, bridge `[[subroutine]]`, guest and guest NIC `(rounded)`, tap",
        "`[/parallelogram/]`, socket `>flag]`, host NIC `[(cylinder)]`; each VLAN is a box holding its hub",
        "and the ports on it alone; a dotted line ties a guest to its NICs.",
        "",
        f"<!-- Generated: {REGENERATE} (tests/unit/test_docs_mermaid.py checks it is up to date). -->",
    ]
    for sample in sorted((ROOT / "sample_topologies").glob("*.yaml")):
        t = load_file(sample).topology
        rel = sample.relative_to(ROOT).as_posix()
        parts += ["", f"## {sample.name}", ""]
        if t.description:
            parts += [str(t.description), ""]
        parts += ["```mermaid", export(t, "mermaid", rel).text.rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"


def test_docs_topologies_is_up_to_date():
    assert DOC.exists(), f"{DOC.relative_to(ROOT)} is missing: {REGENERATE}"
    assert DOC.read_text() == render(), f"{DOC.relative_to(ROOT)} is out of date: {REGENERATE}"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}")
