"""Live traffic: one pane per VLAN (and per direct peer pair) with rates, a
60-second sparkline, the protocol mix, top talkers, drops, and a log of
decoded frames."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import Input, Sparkline, Static

from qnet_tui.model.diagnostics import printable
from qnet_tui.model.values import si
from qnet_tui.protocol import HubStats, Sample, Stats
from qnet_tui.ui.checkline import checks_line
from qnet_tui.ui.framelog import FrameLog

# Ports whose "connected" says whether a peer is there: a stream socket waits
# for (or dials) one QEMU. Taps and dgram sockets always count as connected.
PEER_KINDS = frozenset({"stream"})
NO_PEER = "no peer"

HISTORY = 300  # statistics ticks kept for the sparkline (60 s at five a second)
LOG_LINES = 300


EMULATED_DROPS = ("impair-loss", "impair-queue")


class VlanPane(Vertical):
    DEFAULT_CSS = """
    VlanPane { height: 100%; border: round $primary; padding: 0 1; }
    VlanPane .rates { height: 1; text-style: bold; }
    VlanPane Sparkline { height: 2; margin-bottom: 1; }
    VlanPane .detail { height: auto; }
    VlanPane FrameLog { height: 1fr; }
    """

    def __init__(self, key: str, title: str) -> None:
        super().__init__(id=f"pane-{key}")
        self.key = key
        self.border_title = title
        self.history: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self.last: dict[str, int] = {}  # the latest protocol counts, for tests and the canvas
        self.hub = ""  # the worker's name for this pane's hub
        self.ports: frozenset[str] = frozenset()  # and of its ports: the nodes that forward in it
        self.macs: dict[str, set[str]] = {}  # per port, the source MACs its sampled frames carried
        self.capturing: str | None = None
        self._waiting: HubStats | None = None  # came before the pane was composed

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first statistics", classes="rates")
        yield Sparkline(list(self.history), summary_function=max)
        yield Static("", classes="detail")
        yield FrameLog(LOG_LINES)

    def show(self, s: HubStats) -> None:
        if not self.query(Sparkline):  # not composed yet: the newest is shown once it is
            if self._waiting is None:
                self.call_after_refresh(self._show_waiting)
            self._waiting = s
            return
        self.last = dict(s["protocols"])
        self.hub = s["hub"]
        self.ports = frozenset(s["ports"])
        self.history.append(float(s["fps"]))
        self.query_one(Sparkline).data = list(self.history)
        rates = (
            f"{si(s['fps'], 'frames/s')}  {si(s['bps'] / 8, 'B/s')}   "
            f"total {s['frames']} frames, {si(s['bytes'], 'B')}   drops {s['drops']}"
        )
        capture = s["capture"]
        self.query_one(".rates", Static).update(rates)
        self.capturing = capture["path"] if capture else None
        protocols = "  ".join(f"{k} {v}" for k, v in s["protocols"].items() if v) or "no frames yet"
        ports = sorted(s["ports"].items(), key=lambda kv: kv[1]["rx_frames"], reverse=True)
        width = self.query_one(".detail", Static).content_size.width - len("talkers   ")
        talkers = fit_talkers(
            [(name, p["rx_frames"], self._macs(name)) for name, p in ports[:3] if p["rx_frames"]], width
        )
        dropping = "  ".join(
            f"{name}{' (cut: loop)' if p['looped'] else ''}: "
            + ", ".join(f"{why} {n}" for why, n in p["drop_reasons"].items() if n)
            for name, p in ports
            # An impairment's drops are no real drops (not in "drops"), but they are its effect: shown too.
            if p["drops"] or p["looped"] or any(p["drop_reasons"].get(why) for why in EMULATED_DROPS)
        )
        lines = [
            Text.assemble(("protocols ", "dim"), protocols),
            Text.assemble(("talkers   ", "dim"), talkers or "-"),
            Text.assemble(("drops     ", "dim"), dropping or "none"),
        ]
        if checks := checks_line(s.get("checks"), width):
            lines.append(checks)
        sockets = [(name, p["connected"]) for name, p in sorted(s["ports"].items()) if p["kind"] in PEER_KINDS]
        if sockets:
            states = []
            for name, connected in sockets:
                states += [("  " if states else ""), name, " "]
                states.append(("connected", "green") if connected else (NO_PEER, "yellow"))
            lines.append(Text.assemble(("sockets   ", "dim"), *states))
        if capture:
            # A row of its own: at the end of the rates it was cut. The folder was chosen in the prompt.
            name = capture["path"].rsplit("/", 1)[-1]
            size = si(capture["bytes"], "B")
            lines.append(
                Text.assemble(("capture   ", "dim"), ("● ", "red"), f"{capture['frames']} frames, {size} to {name}")
            )
        for line in lines:  # one line each: a count wrapped onto a line of its own reads as another row
            line.no_wrap, line.overflow = True, "ellipsis"
        self.query_one(".detail", Static).update(Text("\n").join(lines))

    def _show_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.show(waiting)

    def _macs(self, port: str) -> str:
        """The MAC behind a port (or how many), as far as the samples tell."""
        macs = self.macs.get(port, set())
        if len(macs) == 1:
            return next(iter(macs))
        return f"{len(macs)} MACs" if macs else ""

    def note_macs(self, samples: list[Sample]) -> None:
        """Remember which source MACs each port's frames carried (for talkers)."""
        for sample in samples:
            frame = sample["hex"]
            if len(frame) >= 24 and int(frame[12:14], 16) & 1 == 0:
                mac = ":".join(frame[i : i + 2] for i in range(12, 24, 2))
                self.macs.setdefault(sample["port"], set()).add(mac)

    def log_frames(self, samples: list[Sample]) -> None:
        self.query_one(FrameLog).write_frames(
            (
                f"{s['port']:>8} ",
                f"{s['length']:>5} B  {printable(s['summary'])}",
                f"{s['port']} {s['summary']} {s['hex']}".lower(),
            )
            for s in samples
        )


def fit_talkers(talkers: list[tuple[str, int, str]], width: int) -> str:
    """Talkers (port, frames, MACs) on one line of width (<= 0: no limit):
    every count first, then each one's MACs, the busiest first, while they fit."""
    short = [f"{name} {frames}" for name, frames, _ in talkers]
    if width > 0 and len("  ".join(short)) > width:
        out = ""
        for text in short:
            if len(out + "  " + text + " …") > width:
                return out + (" …" if out else "…")
            out += ("  " if out else "") + text
    texts = list(short)
    for i, (_, _, macs) in enumerate(talkers):
        whole = [*texts[:i], f"{short[i]} ({macs})", *texts[i + 1 :]]
        if macs and (width <= 0 or len("  ".join(whole)) <= width):
            texts = whole
    return "  ".join(texts)


def live_counters(snapshot: Stats) -> dict[str, str]:
    """Per node, what its box's bottom border says while the lab runs: a
    hub's rate; a port's counters, or that it is cut for a loop, or that a
    socket has no peer (the pane has the rest)."""
    live: dict[str, str] = {}
    for guest, vm in (snapshot.vms or {}).items():
        live[guest] = f"VM up · {vm['accel'].upper()}" if vm["state"] == "running" else f"VM {vm['state']}"
    for stats in snapshot.hubs:
        live[stats["hub"]] = f"{stats['fps']:.0f} frames/s"
        for name, port in stats["ports"].items():
            if port["looped"]:
                live[name] = "cut: loop"
            elif port["kind"] in PEER_KINDS and not port["connected"]:
                live[name] = NO_PEER
            else:
                live[name] = f"in {port['rx_frames']} out {port['tx_frames']}"
    return live


class PeerWatch:
    """Which socket ports have a peer, to tell the user when one connects or
    hangs up. Every socket starts without one, so a peer already there at the
    first statistics is news too."""

    def __init__(self) -> None:
        self.connected: dict[str, bool] = {}
        self.quiet: frozenset[str] = frozenset()  # ports whose changes are not told

    def update(self, snapshot: Stats) -> list[tuple[str, bool]]:
        """The ports whose peer came or went since the last snapshot, and which way."""
        changes = []
        for stats in snapshot.hubs:
            for name, port in stats["ports"].items():
                if port["kind"] in PEER_KINDS:
                    now = port["connected"]
                    if now != self.connected.get(name, False):
                        changes.append((name, now))
                    self.connected[name] = now
        return changes


class TrafficView(Vertical):
    """The panes, a filter for the frame log, and pause."""

    DEFAULT_CSS = """
    TrafficView { height: 1fr; border-top: solid $primary; }
    TrafficView #filter { height: 1; border: none; padding: 0 1; }
    TrafficView #panes { grid-size: 2; grid-gutter: 0 1; grid-rows: 20; height: auto; }
    TrafficView #panes-scroll { height: 1fr; overflow-y: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "done_filtering", "Done", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.paused = False
        self.panes: dict[str, VlanPane] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter the frame logs: a protocol, MAC, address or node (/ to type here)", id="filter")
        with Vertical(id="panes-scroll"):
            yield Grid(id="panes")

    def clear(self) -> None:
        for pane in self.panes.values():
            pane.remove()
        self.panes.clear()

    def show(self, snapshot: Stats) -> None:
        grid = self.query_one("#panes", Grid)
        items = [(f"v{k}", f"VLAN {k} ({s['hub']}{_by_kernel(s)})", s) for k, s in snapshot.vlans.items()]
        items += [(f"p{name}", f"peers {name}", s) for name, s in snapshot.peers.items()]
        for key, title, stats in items:
            pane = self.panes.get(key)
            if pane is None:
                pane = self.panes[key] = VlanPane(key, title)
                grid.mount(pane)
                pane.show(stats)
                wanted = self.query_one("#filter", Input).value
                pane.call_after_refresh(lambda p=pane, w=wanted: p.query_one(FrameLog).set_filter(w))
            else:
                pane.border_title = title  # a hub renamed in a running lab (apply)
                pane.show(stats)
        # A hub the running lab no longer has (apply removed or renumbered it).
        for key in self.panes.keys() - {key for key, _, _ in items}:
            self.panes.pop(key).remove()

    def log_samples(self, samples: list[Sample]) -> None:
        by_pane: dict[str, list[Sample]] = {}
        for sample in samples:
            key = f"v{sample['vlan']}" if sample["vlan"] is not None else f"p{sample['hub']}"
            by_pane.setdefault(key, []).append(sample)
        for key, items in by_pane.items():
            pane = self.panes.get(key)
            if pane is None or not pane.is_mounted:
                continue
            pane.note_macs(items)
            if not self.paused:
                pane.log_frames(items)

    @on(Input.Submitted, "#filter")
    def action_done_filtering(self) -> None:
        """Enter or escape in the filter: the keys are the editor's again (the filter stays)."""
        self.app.query_one("#canvas").focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        for log in self.query(FrameLog):
            log.set_filter(event.value)


def _by_kernel(stats: dict) -> str:
    """A hub the kernel floods for says so: its figures are the kernel's counters."""
    return ", kernel" if stats.get("forwarding") == "kernel" else ""
