"""How the canvas says a link is impaired: a short label set under one of its
boxes ("⇄ 50ms±5 1%", or "→50ms ←1%" when the two directions differ), from
the text forms of model/impairment.py. Pure: no Textual."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qnet_tui.model.impairment import Impairment, ImpairmentError

Way = tuple[str, str]


def parsed(text: Any) -> Impairment | None:
    """The impairment a text form says; None when it does not parse."""
    if not isinstance(text, str):
        return None
    try:
        return Impairment.parse(text)
    except ImpairmentError:
        return None


def active(text: Any) -> bool:
    """Whether a direction's text form impairs anything (a bad one counts: it is shown as such)."""
    spec = parsed(text)
    return text is not None and (spec is None or spec.active)


# What each key of the text form becomes in a label (limit is left out: a queue's size is no news).
_SHORT = {
    "delay": "",
    "jitter": "±",
    "loss": "",
    "ge": "ge",
    "dup": "dup",
    "corrupt": "cor",
    "reorder": "ro",
    "rate": "",
}


def short(text: Any) -> str:
    """The text form cut to what a label has room for: 50ms±5ms 1% ge dup2% 10mbit."""
    spec = parsed(text)
    if spec is None:
        return "?"  # validation says what is wrong with it
    out: list[str] = []
    for word in spec.format().split():
        key, _, value = word.partition("=")
        if key == "jitter" and out:
            out[-1] += f"±{value}"
        elif key == "ge":
            out.append("ge")
        elif key in _SHORT:
            out.append(_SHORT[key] + value)
    return " ".join(out) or "none"


def link_label(impair: Mapping[Way, Any], here: str, there: str, there_is_left: bool) -> str:
    """The label of link here-there, set under here's box; arrows point the
    way frames go on screen (there_is_left: there's box is left of here's).
    Empty when neither direction is impaired."""
    out_text, in_text = impair.get((here, there)), impair.get((there, here))
    out_on, in_on = active(out_text), active(in_text)
    if not out_on and not in_on:
        return ""
    if out_on and in_on and short(out_text) == short(in_text):
        return f"⇄ {short(out_text)}"
    to_there, to_here = ("←", "→") if there_is_left else ("→", "←")
    parts = []
    if out_on:
        parts.append(f"{to_there}{short(out_text)}")
    if in_on:
        parts.append(f"{to_here}{short(in_text)}")
    return " ".join(parts)
