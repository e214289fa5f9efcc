"""When the app's cyclic garbage collector runs.

Left to itself, it walks the whole UI in the middle of a keypress now and
then (100-180 ms on a 300-node topology). Objects made at start-up are
frozen out of its reach, and it runs when the app is idle instead: a second
after the last edit (the app asks), the young generation often (quick), and
everything each FULL_GC_S. Textual's strips refer to themselves (their own
caches), so only a full collection frees a line once drawn: under a flood
about 0.02 MiB/s (benchmarks/soak.py), for ~30 ms each minute."""

from __future__ import annotations

import gc

from textual.app import App

FULL_GC_S = 60.0  # seconds between full collections while the app runs
YOUNG_GC_S = 5.0


# Python functions, not gc.collect itself: Textual's timers count a callback's
# parameters, and cannot for a builtin (the timer dies, and with it the app).
def collect_young() -> None:
    gc.collect(1)


def collect_all() -> None:
    gc.collect()


def take_over(app: App, full_gc_s: float = FULL_GC_S) -> None:
    """From now on, the app's timers collect: call once it is mounted."""
    gc.freeze()
    gc.disable()
    app.set_interval(YOUNG_GC_S, collect_young)
    app.set_interval(full_gc_s, collect_all)


def give_back() -> None:
    gc.enable()
    gc.unfreeze()
