"""The README's example file is a valid topology, and its test command is CI's."""

from __future__ import annotations

import re
from pathlib import Path

from qnet_tui.model.yamlio import load_text

ROOT = Path(__file__).parents[2]


def test_readme_example_validates():
    readme = (ROOT / "README.md").read_text()
    example = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if b.startswith("# Comments"))
    doc = load_text(example)
    assert doc.diagnostics() == []
    assert len(doc.topology.nodes) == 5


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"sudo (\.venv/bin/python -m pytest)", readme).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()
