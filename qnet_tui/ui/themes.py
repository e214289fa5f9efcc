"""Colour themes kept as YAML data files and loaded into Textual `Theme` objects.

A theme file holds one mapping whose keys are the arguments of `textual.theme.Theme`
(name, primary, secondary, accent, foreground, background, surface, panel, boost,
warning, error, success, dark, luminosity_spread, text_alpha, ansi) plus `variables`,
a mapping of CSS variables: Textual's own and the topology canvas colours of
`CANVAS_VARIABLES`.

Theme files are looked up in the repository's top-level `themes/` folder (a source
checkout or an editable install) and in `<prefix>/share/qnet-tui/themes`, where a
pip install puts them (pyproject.toml: `[tool.setuptools.data-files]`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import site
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from textual.color import Color, ColorParseError
from textual.css.constants import VALID_STYLE_FLAGS
from textual.design import ColorSystem
from textual.theme import Theme

DEFAULT_THEME = "qnet-dark"

# The canvas's own CSS variables, with defaults that read on dark and light
# backgrounds alike, so that Textual's built-in themes work too. The canvas hands
# these to Rich, so a theme's values are normalised to "#RRGGBB" on loading.
CANVAS_VARIABLES: dict[str, str] = {
    "node-host-nic": "#4A90D9",  # a host NIC box
    "node-bridge": "#2AA198",  # a bridge box
    "node-tap": "#9B6DD6",  # a tap box
    "node-hub": "#E07B39",  # a hub box
    "node-guest-nic": "#5BA35B",  # a guest NIC box
    "node-socket": "#D9534F",  # a socket box
    "topology-link": "#808080",  # a link's line
    "link-selected": "#E5A50A",  # the lines of the selected node's links
    "node-selected-border": "#E5A50A",  # the selected node's box
}

SHARE_DIR = Path("share") / "qnet-tui" / "themes"

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)
BOOL_KEYS = ("dark", "ansi")
NUMBER_KEYS = ("luminosity_spread", "text_alpha")
THEME_KEYS = frozenset(f.name for f in dataclasses.fields(Theme))
REQUIRED_KEYS = ("name", "primary")

_PERCENT = re.compile(r"\d+(\.\d*)?%")
_KEYWORD_COLOURS = frozenset({"auto", "initial", "transparent"})
_textual_variables: frozenset[str] | None = None


def theme_folders() -> list[Path]:
    """Where theme files are looked up, in order: the repository's `themes/`
    (a source checkout or editable install), then the copy installed under the
    environment's prefix, then the one a `pip install --user` puts under the
    user base. Folders may not exist."""
    folders: list[Path] = []
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():  # not when installed: that would be site-packages/themes
        folders.append(root / "themes")
    folders.append(Path(sys.prefix) / SHARE_DIR)
    user_base = site.getuserbase()
    if user_base:
        folders.append(Path(user_base) / SHARE_DIR)
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def load_themes(folders: Iterable[Path | str] | None = None) -> tuple[list[Theme], list[str]]:
    """Every `*.yaml` theme in `folders` (default: `theme_folders()`), and one
    error string per file that could not be loaded, naming the file.

    Never raises: a broken file is reported and skipped. A theme name already
    loaded from an earlier folder is skipped silently (the repository and an
    installed copy may both hold it); the same name twice in one folder is
    reported, and the first file (by file name) wins."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for folder in theme_folders() if folders is None else folders:
        folder = Path(folder)
        try:
            paths = sorted(p for p in folder.glob("*.yaml") if p.is_file())
        except OSError:
            continue
        found_here: dict[str, Path] = {}
        for path in paths:
            theme, error = load_theme_file(path)
            if error is not None:
                errors.append(error)
                continue
            assert theme is not None
            if theme.name in found_here:
                errors.append(
                    f"{path}: theme name {theme.name!r} is already used by {found_here[theme.name].name}; "
                    "this file is ignored"
                )
            elif theme.name not in themes:
                themes[theme.name] = theme
                found_here[theme.name] = path
    return list(themes.values()), errors


def load_theme_file(path: Path | str) -> tuple[Theme | None, str | None]:
    """A theme from one file, or None and an error string naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        return None, f"{path}: cannot read: {exc.strerror or exc}"
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        return None, f"{path}:{where}YAML syntax: {problem}"
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char[0]) if char else 0
        return None, f"{path}:{line}:{col}: YAML syntax: character U+{code:04X} is not allowed in YAML"
    except (YAMLError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"{path}: YAML error: {first}"
    if data is None:
        return None, f"{path}: empty file; a theme needs at least name and primary"
    if not isinstance(data, dict):
        return None, f"{path}: the top level must be a mapping of theme keys, not {_describe(data)}"
    problems = _check(data)
    if problems:
        return None, f"{path}: {'; '.join(problems)}"
    variables = dict(data.get("variables") or {})
    for name in CANVAS_VARIABLES.keys() & variables.keys():
        variables[name] = Color.parse(variables[name]).hex6
    try:
        theme = Theme(**{**data, "variables": variables})
        theme.to_color_system().generate()
    except Exception as exc:  # anything the checks above missed must not stop the other themes
        return None, f"{path}: not a usable theme: {exc}"
    return theme, None


def _check(data: dict[Any, Any]) -> list[str]:
    problems = []
    for key in data:
        if key not in THEME_KEYS:
            problems.append(f"unknown key {key!r}{_suggest(key, THEME_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            problems.append(f"missing {key!r}")
    name = data.get("name")
    if "name" in data and (not isinstance(name, str) or not name.strip()):
        problems.append(f"'name' must be a non-empty string, not {_describe(name)}")
    elif isinstance(name, str) and name != name.strip():
        problems.append(f"'name' {name!r} has leading or trailing spaces")
    for key in COLOUR_KEYS:
        if key in data:
            problem = _colour_problem(data[key])
            if problem:
                problems.append(f"{key!r}: {problem}")
    for key in BOOL_KEYS:
        if key in data and not isinstance(data[key], bool):
            problems.append(f"{key!r} must be true or false, not {_describe(data[key])}")
    for key in NUMBER_KEYS:
        value = data.get(key)
        if key in data and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{key!r} must be a number, not {_describe(value)}")
    if "variables" in data:
        problems.extend(_check_variables(data["variables"]))
    return problems


def _check_variables(variables: Any) -> list[str]:
    if variables is None:
        return []
    if not isinstance(variables, dict):
        return [f"'variables' must be a mapping of CSS variable names to values, not {_describe(variables)}"]
    problems = []
    known = _known_variables()
    for name, value in variables.items():
        if not isinstance(name, str) or name not in known:
            problems.append(f"unknown variable {name!r}{_suggest(name, known)}")
        elif name in CANVAS_VARIABLES:
            problem = _colour_problem(value)
            if problem:
                problems.append(f"variable {name!r}: {problem}")
        elif "style" in name.split("-"):
            problem = _text_style_problem(value)
            if problem:
                problems.append(f"variable {name!r}: {problem}")
        else:
            problem = _css_colour_problem(value)
            if problem:
                problems.append(f"variable {name!r}: {problem}")
    return problems


def _colour_problem(value: Any) -> str | None:
    """Why `value` is not a colour Textual can parse, or None."""
    if value is None:
        return 'no colour given (an unquoted "#" starts a YAML comment: write "#RRGGBB" in quotes)'
    if not isinstance(value, str):
        return f'a colour must be a string such as "#1E90FF", not {_describe(value)}'
    try:
        Color.parse(value)
    except ColorParseError:
        return f"{value!r} is not a colour (use #RGB, #RRGGBB, #RRGGBBAA, rgb(...), hsl(...) or a colour name)"
    return None


def _css_colour_problem(value: Any) -> str | None:
    """As `_colour_problem`, also allowing what Textual's colour variables may
    hold: auto, initial, transparent, and a trailing opacity such as "50%"."""
    if isinstance(value, str):
        words = value.split()
        if len(words) == 2 and _PERCENT.fullmatch(words[1]):
            words = words[:1]
        if len(words) == 1 and words[0] in _KEYWORD_COLOURS:
            return None
        if len(words) == 1 and words[0] != value:
            return _colour_problem(words[0])
    return _colour_problem(value)


def _text_style_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f'a text style must be a string such as "bold", not {_describe(value)}'
    bad = [word for word in value.split() if word not in VALID_STYLE_FLAGS]
    if bad or not value.split():
        return f"{value!r} is not a text style (words from: {', '.join(sorted(VALID_STYLE_FLAGS))})"
    return None


def _known_variables() -> frozenset[str]:
    """Textual's own CSS variables and the canvas's."""
    global _textual_variables
    if _textual_variables is None:
        names = set(ColorSystem(primary="#000000").generate())
        names |= set(ColorSystem(primary="#000000", ansi=True).generate())
        _textual_variables = frozenset(names)
    return _textual_variables | CANVAS_VARIABLES.keys()


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
