"""The list of validation problems under the canvas: at most MAX_PROBLEMS
of them, placed (line:col) while the file is as it was read, by node once
it is edited."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from qnet_tui.model.diagnostics import Diagnostic, count_phrase, first_problems

MAX_PROBLEMS = 100  # problems the panel lists; it says how many more there are


class ProblemList(OptionList):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: list[Diagnostic] = []

    def show(self, diagnostics: list[Diagnostic], placed: bool) -> None:
        # A list of 100,000 options would cost more than the validation did.
        self.shown = first_problems(diagnostics, MAX_PROBLEMS)
        self.clear_options()
        if not diagnostics:
            self.add_option(Option(Text.assemble(("valid", "green"), ": no problems"), id="none", disabled=True))
            return
        options = []
        for i, d in enumerate(self.shown):
            colour = "red" if d.is_error else "yellow"
            place = f"{d.line}:{d.col} " if placed else ""
            node = f"[{d.node}] " if d.node and not placed else ""
            options.append(Option(Text.assemble((f"{d.severity} ", colour), place, node, d.text), id=str(i)))
        if hidden := len(diagnostics) - len(self.shown):
            more = f"and {hidden} more not shown ({count_phrase(diagnostics)} in all)"
            options.append(Option(Text(more, style="italic"), id="more", disabled=True))
        self.add_options(options)

    def problem(self, option_id: str | None) -> Diagnostic | None:
        return self.shown[int(option_id)] if option_id and option_id.isdigit() else None
