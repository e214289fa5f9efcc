"""Colour themes as YAML files: the shipped ones load, broken ones are reported one error each."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from textual.app import App
from textual.color import Color
from textual.theme import Theme

from qnet_tui.ui.themes import CANVAS_VARIABLES, DEFAULT_THEME, load_themes, theme_folders

REPO_THEMES = Path(__file__).parents[2] / "themes"
SHIPPED = ("qnet-dark", "qnet-light", "qnet-high-contrast")

GOOD = 'name: good\nprimary: "#336699"\nvariables:\n  node-hub: "#ff8800"\n'


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_folders_start_with_the_repository_then_the_install_prefix():
    folders = theme_folders()
    assert folders[0] == REPO_THEMES
    assert Path(sys.prefix) / "share" / "qnet-tui" / "themes" in folders


def test_shipped_themes_load_without_errors():
    themes, errors = load_themes([REPO_THEMES])
    assert errors == []
    assert sorted(t.name for t in themes) == sorted(SHIPPED)
    assert DEFAULT_THEME in SHIPPED
    assert all(isinstance(t, Theme) for t in themes)


def test_default_folders_find_the_shipped_themes():
    themes, errors = load_themes()
    assert errors == []
    assert set(SHIPPED) <= {t.name for t in themes}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_theme_defines_every_canvas_variable(name):
    theme = {t.name: t for t in load_themes([REPO_THEMES])[0]}[name]
    assert set(CANVAS_VARIABLES) <= set(theme.variables)
    for variable in CANVAS_VARIABLES:
        Color.parse(theme.variables[variable])
    generated = theme.to_color_system().generate()
    assert generated["background"]


def test_shipped_themes_are_what_they_say():
    themes = {t.name: t for t in load_themes([REPO_THEMES])[0]}
    assert themes["qnet-dark"].dark and not themes["qnet-light"].dark
    contrast = themes["qnet-high-contrast"]
    assert Color.parse(contrast.background) == Color(0, 0, 0)
    assert Color.parse(contrast.foreground) == Color(255, 255, 255)
    kinds = [contrast.variables[v] for v in CANVAS_VARIABLES if v.startswith("node-") and v != "node-selected-border"]
    assert len(set(kinds)) == len(kinds) == 6


def test_every_shipped_file_starts_with_a_comment():
    for path in REPO_THEMES.glob("*.yaml"):
        assert path.read_text().startswith("# "), path


def test_canvas_defaults_are_rich_colours():
    from rich.color import Color as RichColor

    assert set(CANVAS_VARIABLES) == {
        "node-host-nic",
        "node-bridge",
        "node-tap",
        "node-hub",
        "node-guest-nic",
        "node-socket",
        "topology-link",
        "link-selected",
        "node-selected-border",
    }
    for value in CANVAS_VARIABLES.values():
        RichColor.parse(value)


def test_canvas_variables_are_normalised_for_rich(tmp_path):
    from rich.color import Color as RichColor

    write(
        tmp_path,
        "t.yaml",
        'name: t\nprimary: "#336699"\nvariables:\n  node-tap: ansi_red\n  topology-link: "#12345680"\n',
    )
    themes, errors = load_themes([tmp_path])
    assert errors == []
    variables = themes[0].variables
    assert variables == {"node-tap": "#800000", "topology-link": "#123456"}
    for value in variables.values():
        RichColor.parse(value)


BROKEN = {
    "syntax.yaml": ('name: x\nprimary: "#fff\n', r"syntax\.yaml:3:1: YAML syntax: .*quoted scalar"),
    "indent.yaml": ("name: x\n primary: red\n", r"indent\.yaml:\d+:\d+: YAML syntax: "),
    "colour.yaml": ('name: x\nprimary: "#GGHHII"\n', r"colour\.yaml: 'primary': '#GGHHII' is not a colour"),
    "var-colour.yaml": (
        'name: x\nprimary: red\nvariables:\n  node-hub: "not-a-colour"\n',
        r"var-colour\.yaml: variable 'node-hub': 'not-a-colour' is not a colour",
    ),
    "comment.yaml": ("name: x\nprimary: #ff0000\n", r"comment\.yaml: 'primary': no colour given .*quotes"),
    "noname.yaml": ('primary: "#ff0000"\n', r"noname\.yaml: missing 'name'"),
    "noprimary.yaml": ("name: x\n", r"noprimary\.yaml: missing 'primary'"),
    "unknown.yaml": ("name: x\nprimary: red\nprimry: blue\n", r"unknown\.yaml: unknown key 'primry' \(did you mean"),
    "unknown-var.yaml": (
        "name: x\nprimary: red\nvariables:\n  node-hots-nic: red\n",
        r"unknown-var\.yaml: unknown variable 'node-hots-nic' \(did you mean 'node-host-nic'\?\)",
    ),
    "dark.yaml": ("name: x\nprimary: red\ndark: yes\n", r"dark\.yaml: 'dark' must be true or false"),
    "duplicate-key.yaml": (
        "name: x\nprimary: red\nprimary: blue\n",
        r"duplicate-key\.yaml:3:1: YAML syntax: found duplicate key",
    ),
    "list.yaml": ("- name: x\n", r"list\.yaml: the top level must be a mapping"),
    "empty.yaml": ("", r"empty\.yaml: empty file"),
    "control.yaml": ('name: x\nprimary: "re\x01d"\n', r"control\.yaml:2:13: YAML syntax: character U\+0001"),
    "style.yaml": (
        "name: x\nprimary: red\nvariables:\n  link-style: wobbly\n",
        r"style\.yaml: variable 'link-style': 'wobbly' is not a text style",
    ),
}


@pytest.mark.parametrize("filename", sorted(BROKEN))
def test_broken_file_gives_one_error_and_good_files_still_load(tmp_path, filename):
    text, pattern = BROKEN[filename]
    write(tmp_path, "a-good.yaml", GOOD)
    bad = write(tmp_path, filename, text)
    write(tmp_path, "z-good.yaml", GOOD.replace("good", "also-good"))
    themes, errors = load_themes([tmp_path])
    assert sorted(t.name for t in themes) == ["also-good", "good"]
    assert len(errors) == 1, errors
    assert errors[0].startswith(str(bad))
    assert re.search(pattern, errors[0]), errors[0]
    assert "\n" not in errors[0]


def test_all_broken_files_together_one_error_each(tmp_path):
    for filename, (text, _) in BROKEN.items():
        write(tmp_path, filename, text)
    write(tmp_path, "good.yaml", GOOD)
    themes, errors = load_themes([tmp_path])
    assert [t.name for t in themes] == ["good"]
    assert len(errors) == len(BROKEN)
    for filename in BROKEN:
        assert sum(e.startswith(str(tmp_path / filename)) for e in errors) == 1


def test_several_problems_in_one_file_are_one_error(tmp_path):
    write(tmp_path, "bad.yaml", 'primary: "nope"\ncolour: red\n')
    themes, errors = load_themes([tmp_path])
    assert themes == []
    assert len(errors) == 1
    assert "missing 'name'" in errors[0] and "'nope' is not a colour" in errors[0] and "'colour'" in errors[0]


def test_textual_variables_accept_css_values(tmp_path):
    write(
        tmp_path,
        "t.yaml",
        "name: t\nprimary: red\nvariables:\n"
        '  primary-muted: "#336699 50%"\n  border: auto 87%\n  link-background: initial\n'
        "  button-focus-text-style: b reverse\n",
    )
    themes, errors = load_themes([tmp_path])
    assert errors == []
    assert themes[0].variables["border"] == "auto 87%"


def test_earlier_folder_wins_and_duplicates_are_ignored(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "t.yaml", 'name: t\nprimary: "#111111"\n')
    write(second, "t.yaml", 'name: t\nprimary: "#222222"\n')
    write(second, "other-file-same-name.yaml", 'name: t\nprimary: "#333333"\n')
    write(second, "u.yaml", 'name: u\nprimary: "#444444"\n')
    themes, errors = load_themes([first, second])
    assert errors == []
    assert {t.name: t.primary for t in themes} == {"t": "#111111", "u": "#444444"}


def test_the_same_folder_twice_is_harmless():
    themes, errors = load_themes([REPO_THEMES, REPO_THEMES])
    assert errors == []
    assert len(themes) == len(SHIPPED)


def test_same_name_twice_in_one_folder_is_reported(tmp_path):
    write(tmp_path, "a.yaml", 'name: t\nprimary: "#111111"\n')
    write(tmp_path, "b.yaml", 'name: t\nprimary: "#222222"\n')
    themes, errors = load_themes([tmp_path])
    assert [(t.name, t.primary) for t in themes] == [("t", "#111111")]
    assert len(errors) == 1 and errors[0].startswith(str(tmp_path / "b.yaml")) and "a.yaml" in errors[0]


def test_missing_folder_and_unreadable_file(tmp_path):
    write(tmp_path, "latin1.yaml", "")
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\nprimary: red\n")
    themes, errors = load_themes([tmp_path / "nowhere", tmp_path])
    assert themes == []
    assert len(errors) == 1 and "not UTF-8" in errors[0]


def test_a_directory_named_like_a_theme_is_skipped(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    write(tmp_path, "good.yaml", GOOD)
    themes, errors = load_themes([tmp_path])
    assert [t.name for t in themes] == ["good"]
    assert errors == []


async def test_themes_register_and_apply_in_an_app():
    class ThemedApp(App[None]):
        def get_theme_variable_defaults(self) -> dict[str, str]:
            return dict(CANVAS_VARIABLES)

    themes, errors = load_themes([REPO_THEMES])
    assert errors == []
    app = ThemedApp()
    for theme in themes:
        app.register_theme(theme)
    async with app.run_test():
        for theme in themes:
            app.theme = theme.name
            variables = app.get_css_variables()
            for name in CANVAS_VARIABLES:
                assert variables[name] == theme.variables[name]
        app.theme = "textual-light"
        variables = app.get_css_variables()
        for name in CANVAS_VARIABLES.keys() - {"topology-link"}:  # Textual generates its own topology-link
            assert variables[name] == CANVAS_VARIABLES[name]
