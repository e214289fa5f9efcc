"""YAML 1.2 scalars resolved as ruamel.yaml's round-trip reading resolves them.

A plain scalar is matched against ruamel's YAML 1.2 implicit resolvers, in
ruamel's order, chosen by its first character: so plain `no`, `yes` and
52:54:00:12:34:56 stay strings, `true` is a bool, `0x10` an int, `1e3` a float,
`~`, `null` and nothing are None, 2001-12-14 a date. Quoted and block scalars
are strings, of ruamel's classes that remember the style (see STYLED). Where
ruamel makes an object no topology could use (a TaggedScalar for a plain `=`,
`<<` as a value or `!!str 10`) this gives the plain value."""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)


class ScalarError(ValueError):
    """A scalar that cannot be read as what it says it is."""


# A string's quotes or block style, kept as ruamel keeps them: an undo puts
# back the very value that was read, and a later save writes it as it was.
STYLED: dict[str | None, type[str]] = {
    "'": SingleQuotedScalarString,
    '"': DoubleQuotedScalarString,
    "|": LiteralScalarString,
    ">": FoldedScalarString,
}

# ruamel.yaml's resolver.py, the entries for YAML 1.2.
_FLOAT = re.compile(
    r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_IS_TIMESTAMP = re.compile(
    r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
    (?:[Tt]|[ \t]+)[0-9][0-9]?
    :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
    (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
    re.X,
)
# ruamel.yaml's util.py: the parts of a timestamp.
_TIMESTAMP = re.compile(
    r"""^(?P<year>[0-9][0-9][0-9][0-9])
    -(?P<month>[0-9][0-9]?)
    -(?P<day>[0-9][0-9]?)
    (?:(?:[Tt]|[ \t]+)
    (?P<hour>[0-9][0-9]?)
    :(?P<minute>[0-9][0-9])
    :(?P<second>[0-9][0-9])
    (?:\.(?P<fraction>[0-9]*))?
    (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)(?::(?P<tz_minute>[0-9][0-9]))?))?)?$""",
    re.X,
)
WORDS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
}
# Only these first characters (text[:1]) can make a plain scalar anything but a string.
WORD_FIRST = frozenset(("", *"tTfFnN~"))
NUMBER_FIRST = frozenset("-+0123456789.")
_DIGITS = frozenset("0123456789")
_BASES = {"0b": 2, "0o": 8, "0x": 16}

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
# ruamel's !!bool takes YAML 1.1's words too.
_TAGGED_BOOLS = {
    **dict.fromkeys(("true", "yes", "on", "y"), True),
    **dict.fromkeys(("false", "no", "off", "n"), False),
}


def plain(text: str) -> Any:
    """The value of an untagged plain scalar."""
    first = text[:1]
    if first in WORD_FIRST:
        return WORDS.get(text, text)
    if first not in NUMBER_FIRST:
        return text
    if _FLOAT.match(text):
        return to_float(text)
    if _INT.match(text):
        return to_int(text)
    if first in _DIGITS and _IS_TIMESTAMP.match(text):
        return to_timestamp(text)
    return text


def tagged(tag: str, text: str) -> Any:
    """The value of a scalar with one of the core schema's tags (the caller
    refuses any other tag)."""
    if tag == STR_TAG:
        return text
    if tag == INT_TAG:
        return to_int(text)
    if tag == FLOAT_TAG:
        return to_float(text)
    if tag == NULL_TAG:
        return None
    if tag == BOOL_TAG:
        try:
            return _TAGGED_BOOLS[text.lower()]
        except KeyError:
            raise ScalarError(f"{text!r} is not a boolean") from None
    raise ScalarError(f"the tag {tag} is not supported")


def to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    if digits[:1] in ("+", "-"):
        digits = digits[1:]
    base = _BASES.get(digits[:2], 10)
    try:
        return sign * int(digits[2:] if base != 10 else digits, base)
    except ValueError as exc:  # also an integer of more than 4300 digits
        raise ScalarError(str(exc).split(";")[0]) from None


def to_float(text: str) -> float:
    digits = text.replace("_", "").lower()
    sign = -1.0 if digits[:1] == "-" else 1.0
    if digits[:1] in ("+", "-"):
        digits = digits[1:]
    if digits == ".inf":
        return sign * math.inf
    if digits == ".nan":
        return math.nan
    try:
        return sign * float(digits)
    except ValueError as exc:
        raise ScalarError(str(exc)) from None


def to_timestamp(text: str) -> datetime.date:
    m = _TIMESTAMP.match(text)
    if m is None:
        raise ScalarError(f"{text!r} is not a timestamp")
    g = m.groupdict()
    try:
        if g["hour"] is None:
            return datetime.date(int(g["year"]), int(g["month"]), int(g["day"]))
        tz = None
        if g["tz_sign"]:
            delta = datetime.timedelta(hours=int(g["tz_hour"]), minutes=int(g["tz_minute"] or 0))
            tz = datetime.timezone(-delta if g["tz_sign"] == "-" else delta)
        elif g["tz"] == "Z":
            tz = datetime.UTC
        fraction = g["fraction"] or ""
        micro = int((fraction[:6] + "000000")[:6])
        if len(fraction) > 6 and fraction[6] > "4":  # rounded, and no carry into the seconds, as ruamel does
            micro = micro + 1 if micro < 999999 else 0
        return datetime.datetime(
            int(g["year"]),
            int(g["month"]),
            int(g["day"]),
            int(g["hour"]),
            int(g["minute"]),
            int(g["second"]),
            micro,
            tz,
        )
    except ValueError as exc:
        raise ScalarError(str(exc)) from None
