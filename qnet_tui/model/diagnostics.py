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

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}:{self.col}: {self.severity}: {self.message}"


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple[int, int, int]:
    return (d.line, d.col, 0 if d.is_error else 1)
