"""A link impairment's spec and its text form, `delay=50ms jitter=5ms loss=1%
rate=10mbit limit=1000`: what a topology file's `impair:` and `qnet-tui impair`
say, and what the worker's Impairer (lab/impair.py) carries out.

The text form is a whole spec, as `tc qdisc change ... netem` is: a field left
out is off, and `none` turns everything off (mininet #881: "loss 0" was left
out of the command, so the old loss stayed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_LIMIT = 1000  # frames, as netem's default

_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(us|ms|s)?$")
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}  # to milliseconds
_RATE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?$")
# To kbit/s; "bps" is bytes per second, as in tc.
_RATE_UNITS = {
    "bit": 0.001,
    "kbit": 1.0,
    "mbit": 1000.0,
    "gbit": 1e6,
    "bps": 0.008,
    "kbps": 8.0,
    "mbps": 8000.0,
    "gbps": 8e6,
    None: 1.0,
}


class ImpairmentError(ValueError):
    """A text form that does not parse; the message names the field."""


@dataclass(frozen=True, slots=True)
class Impairment:
    """One direction of a link. Percentages are 0-100; zero is off."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in +-jitter around delay (never below zero)
    loss_pct: float = 0.0  # independent random loss
    # Gilbert-Elliott: per frame, good->bad with ge_p, bad->good with ge_r;
    # a frame is lost with ge_bad in the bad state, ge_good in the good one.
    ge_p_pct: float = 0.0
    ge_r_pct: float = 100.0
    ge_bad_pct: float = 100.0
    ge_good_pct: float = 0.0
    dup_pct: float = 0.0
    corrupt_pct: float = 0.0  # one bit flipped somewhere in the frame
    reorder_pct: float = 0.0  # sent at once, ahead of the delayed ones (needs a delay)
    rate_kbit: float = 0.0  # 0: no rate limit
    limit: int = DEFAULT_LIMIT  # frames queued in this direction (waiting or delayed) before drops

    @property
    def active(self) -> bool:
        return self != NONE

    @property
    def gilbert(self) -> bool:
        return self.ge_p_pct > 0

    @classmethod
    def parse(cls, text: str) -> Impairment:
        """The text form: space-separated key=value, or `none`."""
        values: dict[str, object] = {}
        words = text.split()
        if not words:
            raise ImpairmentError("empty impairment: give key=value pairs or 'none'")
        for word in words:
            if word == "none":
                if len(words) > 1:
                    raise ImpairmentError("'none' stands alone: it turns every impairment off")
                return NONE
            key, sep, value = word.partition("=")
            if not sep or not value:
                raise ImpairmentError(f"{word!r}: expected key=value (keys: {', '.join(KEYS)})")
            if key not in KEYS:
                raise ImpairmentError(f"{key!r}: unknown impairment (keys: {', '.join(KEYS)})")
            if key in values:
                raise ImpairmentError(f"{key!r} given twice")
            values[key] = value
        spec = {}
        for key, value in values.items():
            spec.update(_PARSERS[key](key, str(value)))
        if spec.get("jitter_ms", 0) and not spec.get("delay_ms", 0):
            raise ImpairmentError("jitter needs a delay (jitter varies the delay around its value)")
        if spec.get("reorder_pct", 0) and not spec.get("delay_ms", 0):
            raise ImpairmentError("reorder needs a delay (reordered frames skip the delay the others wait)")
        return replace(NONE, **spec)

    def format(self) -> str:
        """The text form parse() reads back to an equal Impairment."""
        if not self.active:
            return "none"
        out = []
        if self.delay_ms:
            out.append(f"delay={_num(self.delay_ms)}ms")
        if self.jitter_ms:
            out.append(f"jitter={_num(self.jitter_ms)}ms")
        if self.loss_pct:
            out.append(f"loss={_num(self.loss_pct)}%")
        if self.gilbert:
            ge = (self.ge_p_pct, self.ge_r_pct, self.ge_bad_pct, self.ge_good_pct)
            out.append("ge=" + ",".join(f"{_num(v)}%" for v in ge))
        if self.dup_pct:
            out.append(f"dup={_num(self.dup_pct)}%")
        if self.corrupt_pct:
            out.append(f"corrupt={_num(self.corrupt_pct)}%")
        if self.reorder_pct:
            out.append(f"reorder={_num(self.reorder_pct)}%")
        if self.rate_kbit:
            out.append(f"rate={_rate_text(self.rate_kbit)}")
        if self.limit != DEFAULT_LIMIT:
            out.append(f"limit={self.limit}")
        return " ".join(out)


NONE = Impairment()


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _rate_text(kbit: float) -> str:
    for unit, size in (("gbit", 1e6), ("mbit", 1e3)):
        if kbit >= size and kbit % size == 0:
            return f"{_num(kbit / size)}{unit}"
    return f"{_num(kbit)}kbit"


def _time(key: str, value: str) -> dict[str, float]:
    m = _TIME.match(value)
    if not m:
        raise ImpairmentError(f"{key}={value}: expected a time such as 50ms, 1.5s or 500us")
    return {f"{key}_ms": float(m[1]) * _TIME_UNITS[m[2]]}


def _pct(key: str, value: str) -> float:
    text = value.removesuffix("%")
    try:
        pct = float(text)
    except ValueError:
        raise ImpairmentError(f"{key}={value}: expected a percentage such as 1% or 0.5%") from None
    if not 0 <= pct <= 100:
        raise ImpairmentError(f"{key}={value}: a percentage is between 0% and 100%")
    return pct


def _field_pct(name: str) -> object:
    return lambda key, value: {name: _pct(key, value)}


def _ge(key: str, value: str) -> dict[str, float]:
    parts = value.split(",")
    if not 2 <= len(parts) <= 4:
        raise ImpairmentError(f"{key}={value}: expected P,R[,BAD[,GOOD]] (Gilbert-Elliott, e.g. ge=1%,30%)")
    pcts = [_pct(key, p) for p in parts] + [100.0, 0.0][len(parts) - 2 :]
    if pcts[0] > 0 and pcts[1] == 0:
        raise ImpairmentError(f"{key}={value}: R is 0%, so the first burst would never end")
    return dict(zip(("ge_p_pct", "ge_r_pct", "ge_bad_pct", "ge_good_pct"), pcts, strict=True))


def _rate(key: str, value: str) -> dict[str, float]:
    m = _RATE.match(value.lower())
    if not m:
        raise ImpairmentError(f"{key}={value}: expected a rate such as 10mbit, 512kbit or 1gbit")
    return {"rate_kbit": float(m[1]) * _RATE_UNITS[m[2]]}


def _limit(key: str, value: str) -> dict[str, int]:
    if not value.isdigit() or int(value) < 1:
        raise ImpairmentError(f"{key}={value}: expected a number of frames, at least 1")
    return {"limit": int(value)}


_PARSERS = {
    "delay": _time,
    "jitter": _time,
    "loss": _field_pct("loss_pct"),
    "ge": _ge,
    "dup": _field_pct("dup_pct"),
    "corrupt": _field_pct("corrupt_pct"),
    "reorder": _field_pct("reorder_pct"),
    "rate": _rate,
    "limit": _limit,
}
KEYS = tuple(_PARSERS)
