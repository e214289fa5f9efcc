"""Validation results: what is wrong, how badly, and where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    line: int = 1  # 1-based, as editors and compilers print them
    col: int = 1
    node: str | None = None  # the node the problem is about, for the UI to select
    link: int | None = None  # index into Topology.links
    field: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def text(self) -> str:
        """The message on one printable line, whatever bytes the file held."""
        return printable(self.message)

    def format(self, filename: str) -> str:
        return f"{printable(filename)}:{self.line}:{self.col}: {self.severity}: {self.text}"


def printable(text: str) -> str:
    # Control characters would break "one line per problem"; lone surrogates
    # (from "\\ud800" escapes in YAML) cannot be encoded for the terminal.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple[int, int, bool]:
    return (d.line, d.col, d.severity is not Severity.ERROR)  # errors first at one place


def first_problems(diagnostics: list[Diagnostic], limit: int) -> list[Diagnostic]:
    """At most limit of them, in file order; when some must go, warnings go
    before errors. A file with a thousand problems is fixed from the top."""
    if len(diagnostics) <= limit:
        return diagnostics
    errors, warnings = [], []
    for d in diagnostics:
        (errors if d.severity is Severity.ERROR else warnings).append(d)
    return sorted(errors[:limit] + warnings[: max(0, limit - len(errors))], key=sort_key)


def count_phrase(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    return f"{errors} error(s), {len(diagnostics) - errors} warning(s)"
