"""The README's example file is a valid topology, its test command is CI's,
and every command it shows works as written after its own set-up."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from qnet_tui.model.yamlio import load_text

ROOT = Path(__file__).parents[2]
VENV = ".venv/bin/"
# What the Quick start's set-up puts in .venv only: the project's console scripts
# and its test tools. Nothing installs them where a shell (or sudo) finds them.
VENV_ONLY = {"python", "pip", "pytest", "ruff", "lint-imports"} | set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
)
# The word that starts a command: at the start of the code, after a prompt,
# sudo, a shell operator, or "or:" in a comment giving an alternative.
COMMAND = re.compile(r"(?:^|&&|;|\|(?=\s)|\bor:)\s*(?:\$\s+)?(?:sudo\s+)?(?P<program>[\w./-]+)(?=\s|$)", re.M)
REPO_PATH = re.compile(r"(?<![\w/.-])(?:sample_topologies|benchmarks|tests|themes|\.ci)/[\w./-]*\w")


def code(markdown: str) -> list[str]:
    """The code of a Markdown text: fenced blocks (not YAML or JSON, which are
    no commands), indented blocks line by line, and inline code spans."""
    found: list[str] = []
    paragraph: list[str] = []  # prose: a code span may go on over a line break
    fence: str | None = None
    for line in [*markdown.splitlines(), ""]:
        stripped = line.strip()
        if fence is not None or stripped.startswith("```") or line.startswith("    ") or not stripped:
            found += re.findall(r"`([^`]+)`", " ".join(paragraph))
            paragraph.clear()
        if stripped.startswith("```"):
            fence = stripped[3:] if fence is None else None
        elif fence is not None:
            if fence not in ("yaml", "json"):
                found.append(stripped)
        elif line.startswith("    "):
            found.append(stripped)
        else:
            paragraph.append(stripped)
    return found


def bare_commands(markdown: str) -> list[str]:
    """Commands that would say 'command not found' after the set-up: a program
    of the virtual environment called without its .venv/bin/ path."""
    bad = []
    for text in code(markdown):
        for m in COMMAND.finditer(text):
            program = m["program"]
            name = program.rsplit("/", 1)[-1]
            if name in VENV_ONLY and program != VENV + name:
                bad.append(text)
    return bad


@pytest.mark.parametrize(
    ("markdown", "bad"),
    [
        ("    sudo qnet-tui run lab.yaml", True),
        ("run `qnet-tui validate lab.yaml` first", True),
        ("    $ qnet-tui validate lab.yaml\n    lab.yaml:7:27: error: hub0", True),
        ("    sudo .venv/bin/qnet-tui run x.yaml   # or: sudo qnet-tui --allow-host x.yaml", True),
        ("    python3 -m venv .venv && pytest", True),
        ("    sudo venv/bin/qnet-tui run lab.yaml", True),
        ("```\nruff check qnet_tui\n```", True),
        ("    sudo .venv/bin/qnet-tui run lab.yaml", False),
        ("    sudo .venv/bin/python -m pytest", False),
        ("the lab's folder, `/run/qnet-tui/L/`, and `qnet-tui's` name", False),
        ("```yaml\nqnet-tui: 1\n```", False),
        ("Run\n`qnet-tui validate\nlab.yaml` first", True),
        ("`a`, `b\n\nc` qnet-tui run", False),  # a span ends with its paragraph
    ],
)
def test_bare_commands_are_found(markdown, bad):
    assert bool(bare_commands(markdown)) == bad


def test_readme_commands_work_after_its_set_up():
    readme = (ROOT / "README.md").read_text()
    setup = re.search(r"^    (sudo apt-get .*)$", readme, re.M).group(1)
    # The set-up makes .venv and installs the project (with its test tools) there.
    assert "python3 -m venv .venv" in setup and f"{VENV}pip install -e '.[test]'" in setup
    assert bare_commands(readme) == []
    shown = {m["program"] for text in code(readme) for m in COMMAND.finditer(text)}
    assert {f"{VENV}qnet-tui", f"{VENV}python"} <= shown
    # What the commands name in the repository is there.
    missing = {path for text in code(readme) for path in REPO_PATH.findall(text) if not (ROOT / path).exists()}
    assert missing == set()


def test_readme_says_qemu_args_needs_qemu_7_2():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "QEMU 7.2 or newer" in readme


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


def test_readme_names_every_check_ci_runs():
    """Past the set-up (pip), each program .ci/run calls is named, whole, where the README speaks of .ci/run."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"`\.ci/run`[^)]*", readme).group(0)
    checks = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith(VENV) and not line.startswith(f"{VENV}pip")
    ]
    assert checks, "no checks found in .ci/run"
    for check in checks:
        assert f"`{check}`" in said or check.endswith("-m pytest"), f".ci/run runs {check}; the README does not say so"
