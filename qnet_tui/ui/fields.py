"""A form for the attributes of one node kind, built from the kinds table,
with each field checked as it is typed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Switch

from qnet_tui.model.kinds import FIELDS, Field, Kind

# What a Select holds when nothing is chosen: Select.NULL since Textual 0.86
# (Select.BLANK is now False, which a Select refuses as a value).
NOTHING: Any = getattr(Select, "NULL", Select.BLANK)


def parse(field: Field, text: str) -> tuple[Any, str | None]:
    """A field's typed text -> (value or None for 'not set', problem)."""
    text = text.strip()
    if not text:
        return None, ("is required" if field.required else None)
    if field.type is int:
        try:
            value: Any = int(text, 0)
        except ValueError:
            return None, f"must be {field.type_name}, not {text!r}"
    else:
        value = text
    return value, field.problem(value)


def show(value: Any) -> str:
    return "" if value is None else str(value)


class FieldEditor(Vertical):
    """Inputs for one kind's fields. Posts Committed when the user finishes a
    field (enter, leaving it, a switch or a choice)."""

    DEFAULT_CSS = """
    FieldEditor { height: auto; margin-bottom: 1; }
    /* A blank line above each field, none below: its hint and problem go right under it. */
    FieldEditor > Horizontal.row { height: auto; margin: 1 0 0 0; }
    FieldEditor > Horizontal.row:first-child { margin-top: 0; }
    FieldEditor .name { width: 11; padding: 0 1 0 0; }
    /* One line each, focused too: Textual's focus border would leave no room for the value. */
    FieldEditor Input, FieldEditor Input:focus { width: 1fr; height: 1; border: none; padding: 0 1; }
    FieldEditor Select { width: 1fr; }
    FieldEditor Select > SelectCurrent, FieldEditor Select:focus > SelectCurrent {
        height: 1; border: none; padding: 0 1;
    }
    FieldEditor Switch, FieldEditor Switch:focus { height: 1; border: none; padding: 0; }
    FieldEditor Select:focus > SelectCurrent, FieldEditor Switch:focus { background-tint: $foreground 10%; }
    FieldEditor .problem { color: $error; padding-left: 11; width: 100%; height: auto; }
    FieldEditor .hint { color: $text-muted; padding-left: 12; width: 100%; height: auto; }
    """

    class Committed(Message):
        def __init__(self, editor: FieldEditor, name: str, value: Any) -> None:
            super().__init__()
            self.editor = editor
            self.name = name
            self.value = value  # None: remove the attribute

        @property
        def control(self) -> FieldEditor:
            return self.editor

    def __init__(
        self, kind: Kind, attrs: dict[str, Any], choices: Mapping[str, Sequence[str]] | None = None, **kwargs
    ) -> None:
        """choices: for fields whose values the topology decides (a NIC's
        guest: the guests there are), what to offer; with none to offer, the
        field stays an input, and the editor says why what is typed is refused."""
        super().__init__(**kwargs)
        self.kind = kind
        self.attrs = dict(attrs)
        self.fields = {f.name: f for f in FIELDS[kind]}
        self.choices = {name: tuple(options) for name, options in (choices or {}).items() if name in self.fields}

    def _options(self, field: Field, value: Any) -> tuple[str, ...]:
        options = self.choices.get(field.name, field.choices)
        if field.name in self.choices and isinstance(value, str) and value not in options:
            options = (*options, value)  # what the file says, right or wrong, stays visible
        return options

    def compose(self) -> ComposeResult:
        for field in FIELDS[self.kind]:
            value = self.attrs.get(field.name, field.default if field.type is bool else None)
            options = self._options(field, value)
            with Horizontal(classes="row"):
                yield Label(field.name + (" *" if field.required else ""), classes="name")
                wid = f"field-{field.name}"
                if field.type is bool:
                    yield Switch(value=bool(value), id=wid, tooltip=field.help)
                elif options:
                    yield Select(
                        [(c, c) for c in options],
                        value=value if value in options else NOTHING,
                        allow_blank=not field.required,
                        # Unset, a field with a default says which: the form does not guess for the file.
                        prompt=f"{field.default} (default)" if field.default is not None else "Select",
                        id=wid,
                        tooltip=field.help,
                    )
                else:
                    yield Input(value=show(value), id=wid, tooltip=field.help)
            if not (field.type is bool or options):
                # What to type, under the field while it is empty: wrapped, where a
                # placeholder would be cut to the width of a narrow inspector.
                hint = Label(field.help, classes="hint", id=f"hint-{field.name}")
                hint.display = value is None
                yield hint
            problem = Label("", classes="problem", id=f"problem-{field.name}")
            problem.display = False
            yield problem

    def show_problem(self, name: str, text: str | None) -> None:
        """Mark a field: as it is typed, or refused from outside the form (say, a VLAN another hub has)."""
        label = self.query_one(f"#problem-{name}", Label)
        label.update(f"{name} {text}" if text else "")
        label.display = bool(text)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").removeprefix("field-")
        if name in self.fields:
            self.query_one(f"#hint-{name}").display = not event.value
            self.show_problem(name, parse(self.fields[name], event.value)[1])

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self._commit_input(event.input)

    @on(Input.Blurred)
    def _left(self, event: Input.Blurred) -> None:
        self._commit_input(event.input)

    def _commit_input(self, widget: Input) -> None:
        name = (widget.id or "").removeprefix("field-")
        if name not in self.fields:
            return
        value, problem = parse(self.fields[name], widget.value)
        self.show_problem(name, problem)
        if problem is None and value != self.attrs.get(name):
            self.attrs[name] = value
            self.post_message(self.Committed(self, name, value))

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        name = (event.switch.id or "").removeprefix("field-")
        if name in self.fields and self.attrs.get(name, self.fields[name].default) != event.value:
            self.attrs[name] = event.value
            self.post_message(self.Committed(self, name, event.value))

    @on(Select.Changed)
    def _chosen(self, event: Select.Changed) -> None:
        name = (event.select.id or "").removeprefix("field-")
        if name not in self.fields:
            return
        value = None if event.value is NOTHING else event.value
        if value != self.attrs.get(name):
            self.attrs[name] = value
            self.post_message(self.Committed(self, name, value))

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """The form's attributes (unset ones left out) and its problems."""
        attrs: dict[str, Any] = {}
        problems = []
        for name, field in self.fields.items():
            widget = self.query_one(f"#field-{name}")
            if isinstance(widget, Switch):
                if widget.value != field.default:
                    attrs[name] = widget.value
                continue
            if isinstance(widget, Select):
                value, problem = (
                    (None, "is required" if field.required else None)
                    if widget.value is NOTHING
                    else (widget.value, None)
                )
            else:
                value, problem = parse(field, widget.value)
            if problem:
                problems.append(f"{name} {problem}")
                self.show_problem(name, problem)
            elif value is not None:
                attrs[name] = value
        return attrs, problems
