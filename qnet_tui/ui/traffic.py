"""Live traffic: one pane per VLAN (and per direct peer pair) with rates, a
60-second sparkline, the protocol mix, top talkers, drops, and below them a
log of decoded frames or the table of conversations (o). A text filter and
a BPF display filter (libpcap compiles it, in a thread) choose what the
logs and tables show; enter on a frame of a log shows it in full."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Sparkline, Static

from qnet_tui.model.diagnostics import printable
from qnet_tui.model.values import si
from qnet_tui.pcapfilter import Filter, FilterError, compile_filter
from qnet_tui.protocol import HubStats, Sample, Stats
from qnet_tui.ui.checkline import checks_line
from qnet_tui.ui.conversations import ConversationTable
from qnet_tui.ui.follow import FollowRequest
from qnet_tui.ui.framedetail import FrameDetail
from qnet_tui.ui.framelog import FrameLog, Line

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
    VlanPane ConversationTable { height: 1fr; display: none; }
    VlanPane.-conversations FrameLog { display: none; }
    VlanPane.-conversations ConversationTable { display: block; }
    """

    def __init__(self, key: str, title: str) -> None:
        super().__init__(id=f"pane-{key}")
        self.key = key
        self.title = title  # the border's, without the filter it shows
        self.bpf: Filter | None = None
        self.border_title = title
        self.history: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self.last: dict[str, int] = {}  # the latest protocol counts, for tests and the canvas
        self.hub = ""  # the worker's name for this pane's hub
        self.ports: frozenset[str] = frozenset()  # and of its ports: the nodes that forward in it
        self.macs: dict[str, set[str]] = {}  # per port, the source MACs its sampled frames carried
        self.capturing: str | None = None
        self._waiting: tuple[HubStats, float] | None = None  # came before the pane was composed

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first statistics", classes="rates")
        yield Sparkline(list(self.history), summary_function=max)
        yield Static("", classes="detail")
        yield FrameLog(LOG_LINES)
        yield ConversationTable()

    @property
    def showing_conversations(self) -> bool:
        return self.has_class("-conversations")

    def toggle_conversations(self) -> None:
        """The frame log or the conversation table below the figures (the one in view keeps the focus)."""
        had_focus = self.app.focused is not None and self in self.app.focused.ancestors_with_self
        self.toggle_class("-conversations")
        if had_focus:
            self.lower.focus()

    def address_names(self) -> dict[str, str]:
        """IP addresses -> the nodes the worker named for them, from the last conversation table."""
        conversations = self.query_one(ConversationTable).conversations
        names: dict[str, str] = {}
        for row in conversations["flows"] if conversations else ():
            for side in ("a", "b"):
                if row[f"{side}_node"]:
                    names[row[side]] = row[f"{side}_node"]
        return names

    @property
    def lower(self) -> Widget:
        """What is below the figures now: the frame log or the conversation table."""
        return self.query_one(ConversationTable) if self.showing_conversations else self.query_one(FrameLog)

    def retitle(self, title: str | None = None) -> None:
        self.title = title or self.title
        self.border_title = self.title + (f" · bpf: {self.bpf.text}" if self.bpf else "")

    def set_bpf(self, bpf: Filter | None) -> None:
        self.bpf = bpf
        self.retitle()
        self.query_one(FrameLog).set_bpf(bpf)
        self.query_one(ConversationTable).set_bpf(bpf)

    def show(self, s: HubStats, now: float = 0.0) -> None:
        if not self.query(Sparkline):  # not composed yet: the newest is shown once it is
            if self._waiting is None:
                self.call_after_refresh(self._show_waiting)
            self._waiting = (s, now)
            return
        self.query_one(ConversationTable).show(s.get("conversations"), now)
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
            # A remote port's frames entered the lab on another machine: its port there is the talker.
            [(n, p["rx_frames"], self._macs(n)) for n, p in ports if p["rx_frames"] and p["kind"] != "vxlan"][:3],
            width,
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
        if remote := remote_line(s["ports"]):
            lines.append(remote)
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
            self.show(*waiting)

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
            Line(
                f"{s['port']:>8} ",
                f"{s['length']:>5} B  {printable(s['summary'])}",
                f"{s['port']} {s['summary']}".lower(),
                s["hex"].lower(),
                s["length"],
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
    """The panes, the filters of their logs and tables, and pause."""

    DEFAULT_CSS = """
    TrafficView { height: 1fr; border-top: solid $primary; }
    TrafficView #filters { height: 1; }
    TrafficView #filters Input { height: 1; border: none; padding: 0 1; width: 1fr; }
    TrafficView #bpf-error { height: auto; color: $error; padding: 0 1; display: none; }
    TrafficView #bpf-error.-shown { display: block; }
    TrafficView #bpf-error.-busy { color: $text-muted; }
    TrafficView #panes { grid-size: 2; grid-gutter: 0 1; grid-rows: 20; height: auto; }
    TrafficView #panes-scroll { height: 1fr; overflow-y: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "done_filtering", "Done", show=False)]

    class BpfCompiled(Message):
        """A BPF display filter compiled (filter), or refused (error: libpcap's words)."""

        def __init__(self, text: str, bpf: Filter | None, error: str | None) -> None:
            super().__init__()
            self.text, self.bpf, self.error = text, bpf, error

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.paused = False
        self.panes: dict[str, VlanPane] = {}
        self.bpf: Filter | None = None  # the display filter applied

    def compose(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Input(placeholder="/ text filter: a protocol, MAC, address or node", id="filter")
            yield Input(placeholder="b BPF display filter (tcpdump's syntax), enter applies", id="bpf")
        yield Static("", id="bpf-error")
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
                pane.show(stats, snapshot.time)
                wanted, bpf = self.query_one("#filter", Input).value, self.bpf
                pane.call_after_refresh(lambda p=pane, w=wanted, f=bpf: self._filter_new(p, w, f))
            else:
                pane.retitle(title)  # a hub renamed in a running lab (apply)
                pane.show(stats, snapshot.time)
        # A hub the running lab no longer has (apply removed or renumbered it).
        for key in self.panes.keys() - {key for key, _, _ in items}:
            self.panes.pop(key).remove()

    @staticmethod
    def _filter_new(pane: VlanPane, text: str, bpf: Filter | None) -> None:
        pane.query_one(FrameLog).set_filter(text)
        if bpf is not None:
            pane.set_bpf(bpf)

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
        """Enter or escape in a filter: the keys are the editor's again (the filter stays)."""
        self.app.query_one("#canvas").focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        for log in self.query(FrameLog):
            log.set_filter(event.value)

    # -- the BPF display filter ------------------------------------------------------------

    @on(Input.Submitted, "#bpf")
    def _bpf_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self._bpf_applied(None)
            return
        self._say_bpf(f"compiling {text!r}...", error=False)
        self.compile_bpf(text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="bpf", description="compiling a BPF filter")
    def compile_bpf(self, text: str) -> None:
        """libpcap's compile, off the event loop: a host name in the filter is looked up."""
        try:
            self.post_message(self.BpfCompiled(text, compile_filter(text), None))
        except FilterError as exc:
            self.post_message(self.BpfCompiled(text, None, str(exc)))

    @on(BpfCompiled)
    def _bpf_compiled(self, event: BpfCompiled) -> None:
        if event.text != self.query_one("#bpf", Input).value.strip():
            return  # compiled for a text since changed
        if event.bpf is None:
            self._say_bpf(event.error or "cannot compile", error=True)  # and the filter applied stays
            return
        self._bpf_applied(event.bpf)

    def _bpf_applied(self, bpf: Filter | None) -> None:
        self.bpf = bpf
        self._say_bpf("")
        for pane in self.panes.values():
            if pane.is_mounted:
                pane.set_bpf(bpf)
        self.action_done_filtering()

    def _say_bpf(self, text: str, error: bool = True) -> None:
        shown = self.query_one("#bpf-error", Static)
        shown.update(Text(text))
        shown.set_class(bool(text), "-shown")
        shown.set_class(not error, "-busy")

    # -- a frame in full ----------------------------------------------------------------------

    @on(FrameLog.Chosen)
    def _frame_chosen(self, event: FrameLog.Chosen) -> None:
        pane = next((p for p in event.log.ancestors if isinstance(p, VlanPane)), None)

        def follow(request: FollowRequest) -> None:
            if pane is not None:
                names = pane.address_names()
                named = dataclasses.replace(
                    request, hub=pane.hub, a_name=names.get(request.a), b_name=names.get(request.b)
                )
                self.post_message(self.FollowWanted(named))

        self.app.push_screen(FrameDetail(event.line, pane.title if pane else "frame", follow))

    # -- follow a conversation (the lab panel asks the worker) ----------------------------

    class FollowWanted(Message):
        def __init__(self, request: FollowRequest) -> None:
            super().__init__()
            self.request = request

    @on(ConversationTable.FollowWanted)
    def _follow_row(self, event: ConversationTable.FollowWanted) -> None:
        pane = next((p for p in event.table.ancestors if isinstance(p, VlanPane)), None)
        if pane is None:
            return
        r = event.row
        ends = (r["a"], r["a_port"], r["b"], r["b_port"], r["a_node"], r["b_node"])
        self.post_message(self.FollowWanted(FollowRequest(pane.hub, r["proto"] or "", *ends)))


def remote_line(ports: dict) -> Text | None:
    """A hub's remote ports (VXLAN to other machines): whom each reaches, and the path MTU it found."""
    parts: list[str | tuple[str, str]] = []
    for name, p in sorted(ports.items()):
        if p["kind"] != "vxlan":
            continue
        pmtu = p.get("pmtu")
        path = f"path MTU {pmtu}" if pmtu else "path MTU unknown"
        parts += [("  " if parts else ""), f"{name} {p.get('peer') or '?'} {path}"]
        if pmtu and not p.get("probed"):
            parts.append(("(the route's: no probe answered)", "dim"))
    return Text.assemble(("remote    ", "dim"), *parts) if parts else None


def _by_kernel(stats: dict) -> str:
    """A hub the kernel floods for says so: its figures are the kernel's
    counters; one stitched between machines (lab/machines.py) names them."""
    stitched = {name.partition(":")[2] for name, p in stats["ports"].items() if p["kind"] == "vxlan"}
    machines = ["this machine"] * ("controller" in stitched) + sorted(stitched - {"controller"})
    across = f", across {' + '.join(machines)}" if stitched else ""
    return (", kernel" if stats.get("forwarding") == "kernel" else "") + across
