"""The lab in the app: a widget that owns the LabClient, shows the traffic
panes, and runs, stops, captures and sends demo traffic. The app hands it
the document and the selection; it tells the app, by messages, when the
lab's state changes and what the canvas should show on each box."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message

from qnet_tui import protocol
from qnet_tui.model import guests, scenario
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlio import Document, SaveError, new_document
from qnet_tui.pcapfilter import FilterError, compile_filter
from qnet_tui.protocol import LabState
from qnet_tui.ui.checkline import flagged, mark_checks
from qnet_tui.ui.console import ConsoleScreen
from qnet_tui.ui.dialogs import ApplyChanges, CapturePrompt, ChooseLink, DemoTraffic, PathPrompt
from qnet_tui.ui.follow import FollowScreen
from qnet_tui.ui.labclient import Heard, LabClient
from qnet_tui.ui.traffic import PeerWatch, TrafficView, VlanPane, live_counters

STOP_WAIT_S = 30.0  # how long quitting waits for the lab to be gone
RING_S = 30.0  # what W keeps of a VLAN


# -- what the client's thread heard, one message class per kind ---------------------------


class LabHeard(Message):
    """A message of the worker, posted from the client's thread."""

    def __init__(self, client: LabClient | None, payload: Heard, seq: int = 0) -> None:
        super().__init__()
        self.client, self.payload, self.seq = client, payload, seq


class HelloHeard(LabHeard):
    pass


class StateHeard(LabHeard):
    pass


class StatsHeard(LabHeard):
    def can_replace(self, message: Message) -> bool:
        # A newer snapshot makes an unhandled older one of the same lab useless.
        return isinstance(message, StatsHeard) and message.client is self.client


class SamplesHeard(LabHeard):
    pass


class LogHeard(LabHeard):
    pass


class ErrorHeard(LabHeard):
    pass


class MalformedHeard(LabHeard):
    pass


class ConsoleHeard(LabHeard):
    pass


class AppliedHeard(LabHeard):
    pass


class ScenarioHeard(LabHeard):
    pass


class ImpairedHeard(LabHeard):
    pass


class CapturingHeard(LabHeard):
    pass


class CaptureSavedHeard(LabHeard):
    pass


class CaptureEndedHeard(LabHeard):
    pass


class FollowedHeard(LabHeard):
    pass


HEARD: dict[type, type[LabHeard]] = {
    protocol.Hello: HelloHeard,
    protocol.State: StateHeard,
    protocol.Stats: StatsHeard,
    protocol.Samples: SamplesHeard,
    protocol.Log: LogHeard,
    protocol.Error: ErrorHeard,
    protocol.Malformed: MalformedHeard,
    protocol.ConsoleOutput: ConsoleHeard,
    protocol.Applied: AppliedHeard,
    protocol.ScenarioState: ScenarioHeard,
    protocol.Impaired: ImpairedHeard,
    protocol.Capturing: CapturingHeard,
    protocol.CaptureSaved: CaptureSavedHeard,
    protocol.CaptureEnded: CaptureEndedHeard,
    protocol.Followed: FollowedHeard,
}


@dataclasses.dataclass
class Applying:
    """An apply on its way: what was sent and of which edit."""

    text: str  # the topology's YAML
    version: object  # the editor's version it is
    quiet: frozenset[str]  # its VM guests' NICs (see LabPanel._quiet_vm_nics)
    dry_run: bool = True


class LabExited(Message):
    def __init__(self, client: LabClient, code: int, reason: str) -> None:
        super().__init__()
        self.client, self.code, self.reason = client, code, reason


DEMO_NAMES = {"arp": "ARP who-has", "dhcp": "DHCP discover", "udp": "UDP burst"}


def sent_what(cmd: list[str]) -> str:
    """What a demo command sends, for its notice: the demo module runs under
    Python, whose name would say nothing."""
    if cmd[1:3] == ["-m", "qnet_tui.lab.demo"] and len(cmd) > 3:
        return DEMO_NAMES.get(cmd[3], cmd[3])
    return cmd[0].rsplit("/", 1)[-1]


# What a frame crosses on its way between two endpoints of one broadcast domain.
BETWEEN = frozenset({Kind.HUB, Kind.TAP, Kind.BRIDGE})


def ping_target(topology: Topology, node: str) -> str:
    """The IPv4 address to offer a ping from node: the nearest guest NIC or
    outside host (a host NIC's) in its broadcast domain, through hubs, taps
    and bridges: another guest of its VLAN before the host behind the tap."""
    seen, todo = {node}, [node]
    for here in todo:  # breadth first: the nearest first
        for peer in topology.neighbours(here):
            n = topology.nodes.get(peer)
            if peer in seen or n is None:
                continue
            seen.add(peer)
            if n.kind in BETWEEN:
                todo.append(peer)
            elif n.kind in (Kind.GUEST_NIC, Kind.HOST_NIC) and "ipv4" in n.attrs:
                return str(n.attrs["ipv4"]).split("/")[0]
    return ""


def vm_nics(t: Topology) -> frozenset[str]:
    """A VM guest's NICs are the lab's own connections to its QEMU: their
    coming and going is the VM's state, not a peer's, and not news."""
    return frozenset(nic for m in guests.machines(t) if m.is_vm for nic in m.nics)


class LabPanel(Vertical):
    DEFAULT_CSS = """
    LabPanel { display: none; height: 55%; }
    LabPanel.-shown { display: block; }
    """

    class StateChanged(Message):
        """The lab's state (or reason) changed: the title says it."""

    class Live(Message):
        """Per node, what its box says while the lab runs ({} when it stops)."""

        def __init__(self, counters: dict[str, str]) -> None:
            super().__init__()
            self.counters = counters

    class Restart(Message):
        """The user chose to restart the lab (stop it, then run the document)."""

    class LinksDown(Message):
        """The links with a direction down (pulled cables), as node pairs."""

        def __init__(self, links: frozenset[frozenset[str]]) -> None:
            super().__init__()
            self.links = links

    class Impairs(Message):
        """What the lab reported of links' impairments, by direction (the text
        form), and per port the frames they dropped; both {} when it stops.
        complete: specs are every impaired direction (the statistics'), not
        just those a reply named."""

        def __init__(self, specs: dict[tuple[str, str], str], drops: dict[str, int], complete: bool = False) -> None:
            super().__init__()
            self.specs, self.drops, self.complete = specs, drops, complete

    NOT_RUNNING: ClassVar[str] = "Run the lab first (r)"

    def __init__(self, allow_host: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.allow_host = allow_host  # passed on to the worker: see `qnet-tui --help`
        self.client: LabClient | None = None
        self.state: LabState | None = None
        self.reason: str | None = None
        self.version: object = None  # the editor's version the lab was started from
        self.peers = PeerWatch()
        self.malformed = 0  # worker lines that were no message: a version mismatch, a bug
        self.consoles: dict[str, ConsoleScreen] = {}  # open, by VM guest
        self.links_down: frozenset[frozenset[str]] = frozenset()  # as the last statistics said
        self.applying: Applying | None = None  # an apply asked of the worker
        self.playing: dict | None = None  # the scenario playing, as the worker last said (ScenarioStatus)
        self.impaired: dict[tuple[str, str], str] = {}  # by direction, as the lab's replies said
        self.impair_drops: dict[str, int] = {}  # per port, as the last statistics said
        self.impaired_complete = False  # impaired holds every impaired direction (the statistics said)
        self.rings: set[str] = set()  # hubs whose last RING_S the worker keeps for us (W)
        self.following: FollowScreen | None = None  # the conversation followed, on screen
        self._gone = asyncio.Event()  # set when the worker's exit is handled
        self._gone.set()

    def compose(self) -> ComposeResult:
        yield TrafficView(id="traffic")

    @property
    def traffic(self) -> TrafficView:
        return self.query_one(TrafficView)

    @property
    def running(self) -> bool:
        return self.client is not None and self.state is LabState.RUNNING

    @property
    def stopping(self) -> bool:
        """Told to stop (or stopped) and its worker not gone yet."""
        return self.client is not None and self.state in (LabState.STOPPING, LabState.STOPPED)

    async def gone(self) -> None:
        """Until the worker's exit is handled: r right after s starts the lab
        again once the old one is torn down, instead of being refused."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), STOP_WAIT_S)

    def hear(self, payload: Heard, seq: int = 0, client: LabClient | None = None) -> None:
        """Post what the worker said (from any thread) as its message class."""
        heard = HEARD.get(type(payload))
        if heard is not None:  # a reply meant for what the app does not show (link_state)
            self.post_message(heard(client or self.client, payload, seq))
        elif client is not None and seq:
            client.handled(payload, seq)

    def _set_state(self, state: LabState | None, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        self.post_message(self.StateChanged())

    # -- run and stop ---------------------------------------------------------------------

    def refusal(self, document: Document) -> tuple[str, str] | None:
        """Why this document cannot run now (title, text), or None."""
        if self.client is not None:
            return "Already running", f"Lab {document.topology.name} is {self.state}; stop it first (s)"
        t = document.topology
        real = [n for n in t.of_kind(Kind.HOST_NIC) if "interface" in n.attrs]
        if real and not self.allow_host:
            return "Not started", (
                f"{real[0].id} attaches this machine's interface {real[0].attrs['interface']}, which then leaves "
                "this machine for the lab while it runs. To allow that, start qnet-tui with --allow-host."
            )
        return None

    async def run(self, document: Document, changed: bool, version: object) -> None:
        """Start the worker on the document as it is on screen, saved or not.
        The YAML is written off the event loop (a large file takes seconds);
        the caller keeps the topology unedited until this returns."""
        t = document.topology
        if not changed and document.path and document.text is not None:
            text = document.text  # the file as read: nothing to write
        else:
            source = document if not changed and document.path else new_document(t)
            try:
                text = await asyncio.to_thread(source.dumps)
            except SaveError as exc:
                self.app.notify(str(exc), title="Cannot run", severity="error")
                return
        client = LabClient(
            text,
            str(t.name),
            on_message=lambda m, seq: self.hear(m, seq, client),
            on_exit=lambda code, reason: self.post_message(LabExited(client, code, reason)),
            allow_host=self.allow_host,
        )
        try:
            client.start()  # here, on the app's thread: the worker's death signal is tied to it
        except OSError as exc:
            self.app.notify(f"cannot start the worker: {exc}", title="Cannot run", severity="error", timeout=10)
            return
        self.client, self.version, self.peers = client, version, PeerWatch()
        self._quiet_vm_nics(t)
        self._gone.clear()
        self.traffic.clear()
        self.add_class("-shown")
        self._set_state(LabState.STARTING)

    def _quiet_vm_nics(self, t: Topology) -> None:
        self.peers.quiet = vm_nics(t)

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop()
            self._set_state(LabState.STOPPING)

    # -- apply: the running lab takes the edits --------------------------------------------------

    async def offer_apply(self, document: Document, version: object) -> None:
        """Ask the worker what the edits change (a dry run); AppliedHeard
        shows it and asks whether to apply, restart, or leave it."""
        if self.applying is not None:
            self.app.notify("A change is on its way to the lab; a moment", severity="warning")
            return
        t = document.topology
        try:
            text = await asyncio.to_thread(new_document(t).dumps)
        except SaveError as exc:
            self.app.notify(str(exc), title="Cannot apply", severity="error")
            return
        self.applying = Applying(text, version, vm_nics(t))
        self._send(protocol.Apply(text, dry_run=True))

    @on(AppliedHeard)
    async def _applied(self, event: AppliedHeard) -> None:
        if not self._ours(event) or self.applying is None:
            return
        applying, reply = self.applying, event.payload
        client = self.client
        if not reply.changes or not applying.dry_run:
            self.applying = None
            self.version = applying.version
            if reply.applied:
                self.peers.quiet = applying.quiet
                await asyncio.to_thread(client.rewrite, applying.text)
                changed = sum(not line.startswith(" ") for line in reply.changes)  # not the notes under them
                self.app.notify(f"{changed} changes applied to lab {client.lab}", title="Applied")
            else:
                self.app.notify(f"Lab {client.lab} already runs this topology", title="Nothing to apply")
            self.post_message(self.StateChanged())
            return

        def chosen(choice: str | None) -> None:
            if choice == "apply" and self.client is client:
                self.applying = dataclasses.replace(applying, dry_run=False)
                self._send(protocol.Apply(applying.text))
                return
            self.applying = None
            if choice == "restart":
                self.post_message(self.Restart())

        self.app.push_screen(ApplyChanges(client.lab, reply.changes, reply.refusal), chosen)

    async def stop_and_wait(self) -> None:
        """Stop the lab and wait until the worker is gone (quitting leaves nothing behind)."""
        if self.client is not None:
            self.client.stop()
            await asyncio.to_thread(self.client.wait, STOP_WAIT_S)

    def on_unmount(self) -> None:
        if self.client is not None:
            self.client.stop()

    # -- what the worker says -----------------------------------------------------------------

    def _ours(self, event: LabHeard) -> bool:
        if event.client is not None and event.seq:
            event.client.handled(event.payload, event.seq)
        return event.client is self.client

    @on(StateHeard)
    def _state(self, event: StateHeard) -> None:
        if self._ours(event):
            self._set_state(event.payload.state, event.payload.reason)
            if event.payload.state is LabState.STOPPED:
                self.post_message(self.Live({}))  # the boxes' counters go with the lab, not with its process
                self._links_down(frozenset())
                self._playing(None)
                self._impairs({}, {})

    @on(StatsHeard)
    def _stats(self, event: StatsHeard) -> None:
        if not self._ours(event):
            return
        stats: protocol.Stats = event.payload
        self.traffic.show(stats)
        self.post_message(self.Live(mark_checks(live_counters(stats), flagged(stats))))
        self._links_down(frozenset(frozenset((x["a"], x["b"])) for x in stats.links or ()))
        self._playing(stats.scenario)
        drops = {
            name: dropped
            for hub in stats.hubs
            for name, port in hub["ports"].items()
            if (dropped := port["drop_reasons"].get("impair-loss", 0) + port["drop_reasons"].get("impair-queue", 0))
        }
        if stats.impaired is None:  # a worker of before impairments were in the statistics
            self._impairs(self.impaired, drops)
        else:
            self._impairs({(x["a"], x["b"]): x["spec"] for x in stats.impaired}, drops, complete=True)
        for port, connected in self.peers.update(stats):
            if port in self.peers.quiet:
                continue
            self.app.notify(f"{port}: " + ("a peer connected" if connected else "the peer disconnected"), title="Lab")

    @on(SamplesHeard)
    def _samples(self, event: SamplesHeard) -> None:
        if self._ours(event):
            self.traffic.log_samples(event.payload.samples)

    @on(LogHeard)
    def _log(self, event: LogHeard) -> None:
        if self._ours(event) and event.payload.level in ("warning", "error"):
            self.app.notify(event.payload.message, title="Lab", severity=event.payload.level)

    @on(ErrorHeard)
    def _refused(self, event: ErrorHeard) -> None:
        if self._ours(event):
            if event.payload.message.startswith("apply:"):
                self.applying = None
            self.app.notify(event.payload.message, title="The lab refused", severity="error")

    @on(MalformedHeard)
    def _malformed(self, event: MalformedHeard) -> None:
        if self._ours(event):
            self.malformed += 1
            if self.malformed == 1:  # once per run: a stream of them would bury every other notice
                self.app.notify(
                    f"A message from the worker could not be read ({event.payload.reason}); "
                    "it was skipped, and so are any more like it.",
                    title="Lab",
                    severity="warning",
                )

    @on(ConsoleHeard)
    def _console_output(self, event: ConsoleHeard) -> None:
        if self._ours(event) and (screen := self.consoles.get(event.payload.guest)) is not None:
            screen.show(protocol.unbase64(event.payload.data) or b"")

    @on(ScenarioHeard)
    def _scenario_state(self, event: ScenarioHeard) -> None:
        if not self._ours(event):
            return
        said: protocol.ScenarioState = event.payload
        if said.state == "running":
            self._playing(said.fields())
            return
        self._playing(None)
        self.app.notify(f"Scenario {said.name} {said.state}: links as the file has them again", title="Lab")

    @on(ImpairedHeard)
    def _impaired(self, event: ImpairedHeard) -> None:
        if not self._ours(event):
            return
        reply: protocol.Impaired = event.payload
        both = {(reply.a, reply.b): reply.forward, (reply.b, reply.a): reply.backward}
        self._impairs({**self.impaired, **both}, complete=self.impaired_complete)
        self.app.notify(
            f"{reply.a} → {reply.b}: {reply.forward}\n{reply.b} → {reply.a}: {reply.backward}",
            title=f"Lab: link {reply.a} - {reply.b}",
        )

    def _impairs(
        self, specs: dict[tuple[str, str], str], drops: dict[str, int] | None = None, complete: bool = False
    ) -> None:
        drops = self.impair_drops if drops is None else drops
        if specs != self.impaired or drops != self.impair_drops or complete != self.impaired_complete:
            self.impaired, self.impair_drops, self.impaired_complete = specs, drops, complete
            self.post_message(self.Impairs(specs, drops, complete))

    def impair(self, a: str, b: str, spec: str) -> None:
        """Impair direction a -> b of the running lab (spec: a whole text form, "none" lifts it)."""
        self._send(protocol.Impair(a, b, spec, one_way=True))

    @on(HelloHeard)
    def _hello(self, event: HelloHeard) -> None:
        self._ours(event)

    @on(LabExited)
    def _exited(self, event: LabExited) -> None:
        if event.client is not self.client:
            return
        self.client = None
        self._gone.set()
        for hub in self.rings:  # the worker's rings went with it
            self._ring_shown(hub, False)
        self.rings.clear()
        if self.following is not None:
            self.following.end("the lab stopped")
            self.following = None
        self.post_message(self.Live({}))
        self._links_down(frozenset())
        self._playing(None)
        self._impairs({}, {})
        if self.state in (LabState.STOPPING, LabState.STOPPED) and event.code == 0:
            self._set_state(LabState.STOPPED)
            return
        reason = event.reason or "the worker stopped unexpectedly"
        self._set_state(LabState.FAILED, reason)
        self.app.notify(f"{reason}. Press r to start it again.", title="The lab failed", severity="error", timeout=15)

    # -- what the user does with a running lab ----------------------------------------------------

    def pane_of(self, topology: Topology, node: str | None) -> VlanPane | None:
        """The traffic pane of the VLAN (or direct pair) the node forwards in."""
        if node is None or node not in topology.nodes:
            return None
        panes = self.traffic.panes.values()
        if topology.nodes[node].kind is Kind.HUB:
            return next((pane for pane in panes if pane.hub == node), None)
        # By the port names the statistics carry: a pair's hub name joins
        # node ids with '-', and ids may hold '-' themselves.
        return next((pane for pane in panes if node in pane.ports), None)

    def _capturable(self, topology: Topology, node: str | None) -> VlanPane | None:
        """The pane of the node's VLAN or pair in the running lab, or None, said why."""
        if not self.running:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return None
        pane = self.pane_of(topology, node)
        if pane is None:
            self.app.notify("Select a hub, or a node on a hub or in a peer pair", severity="warning")
        return pane

    def capture(self, topology: Topology, node: str | None) -> None:
        """Start (asking where to) or stop a capture of the node's VLAN or pair."""
        pane = self._capturable(topology, node)
        if pane is None:
            return
        if pane.capturing:
            self._send(protocol.Capture(pane.hub, None))
            self.app.notify(f"Capture of {pane.hub} stopped: {pane.capturing}")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"{topology.name}-{pane.hub}-{stamp}.pcapng"

        def chosen(answer: tuple[Path, str] | None) -> None:
            if answer is not None:
                path, text = answer
                self.start_capture(pane.hub, str(path.resolve()), text or None)

        self.app.push_screen(
            CapturePrompt(f"Capture {pane.title} to", default.parent, str(default), must_exist=False), chosen
        )

    @work(thread=True, group="capture", exit_on_error=False)
    def start_capture(self, hub: str, path: str, filter_text: str | None) -> None:
        """Check the filter here first, for libpcap's words at once (in a thread:
        it may look a host name up), then ask the worker, which checks again."""
        if filter_text is not None:
            try:
                compile_filter(filter_text)
            except FilterError as exc:
                self.app.call_from_thread(
                    self.app.notify, f"capture: bad {exc}", title="Not captured", severity="error", timeout=10
                )
                return
        self.app.call_from_thread(self._send, protocol.Capture(hub, path, filter_text))

    def keep_last(self, topology: Topology, node: str | None) -> None:
        """W: the first press keeps the last RING_S of the node's VLAN in the
        worker; the next ones save them to a file (asking where), the ring going on."""
        pane = self._capturable(topology, node)
        if pane is None:
            return
        if pane.hub not in self.rings:
            self._send(protocol.CaptureStream(pane.hub, None, RING_S))
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"{topology.name}-{pane.hub}-last{RING_S:g}s-{stamp}.pcapng"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._send(protocol.CaptureSave(pane.hub, str(path.resolve())))

        title = f"Save the last {RING_S:g} s of {pane.title} to"
        self.app.push_screen(PathPrompt(title, default.parent, str(default), must_exist=False), chosen)

    def _ring_shown(self, hub: str, on: bool) -> None:
        for pane in self.traffic.panes.values():
            if pane.hub == hub:
                pane.border_subtitle = f"● keeping the last {RING_S:g} s: W saves" if on else ""

    @on(CapturingHeard)
    def _capturing(self, event: CapturingHeard) -> None:
        said: protocol.Capturing = event.payload
        if self._ours(event) and said.ring is not None:
            self.rings.add(said.hub)
            self._ring_shown(said.hub, True)
            self.app.notify(f"Keeping the last {said.ring:g} s of {said.hub}: W again saves them", title="Lab")

    @on(CaptureSavedHeard)
    def _capture_saved(self, event: CaptureSavedHeard) -> None:
        said: protocol.CaptureSaved = event.payload
        if self._ours(event):
            self.app.notify(f"The last {said.seconds:g} s of {said.hub}: {said.frames} frames in {said.path}")

    # -- follow a conversation ---------------------------------------------------------------

    @on(TrafficView.FollowWanted)
    def _follow(self, event: TrafficView.FollowWanted) -> None:
        r = event.request
        if not self.running:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return
        screen = FollowScreen(r)
        self.following = screen

        def closed(_: None) -> None:
            if self.following is screen:
                self.following = None
                if self.running:
                    self._send(protocol.Follow(r.hub))  # stop

        self.app.push_screen(screen, closed)
        self._send(protocol.Follow(r.hub, r.proto, r.a, r.a_port, r.b, r.b_port))

    @on(FollowedHeard)
    def _followed(self, event: FollowedHeard) -> None:
        said: protocol.Followed = event.payload
        if self._ours(event) and self.following is not None and said.hub == self.following.request.hub:
            self.following.add(said.chunks, said.frames, said.full)

    @on(CaptureEndedHeard)
    def _capture_ended(self, event: CaptureEndedHeard) -> None:
        said: protocol.CaptureEnded = event.payload
        if self._ours(event) and self.following is not None and said.hub == self.following.request.hub:
            self.following.end(said.reason)
        if self._ours(event) and said.hub in self.rings:
            self.rings.discard(said.hub)
            self._ring_shown(said.hub, False)
            self.app.notify(f"The last {RING_S:g} s of {said.hub} are no longer kept: {said.reason}", title="Lab")

    def _send(self, message: protocol.ClientMessage) -> None:
        if self.client is None or not self.client.send(message):
            self.app.notify("The lab is not connected (any more)", title="Not sent", severity="warning")

    def demo_traffic(self, topology: Topology, node: str | None) -> None:
        """Ask what to send from the selected guest NIC, then send it."""
        if not self.running or self.client.file is None:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return
        if node is None or topology.nodes[node].kind is not Kind.GUEST_NIC:
            self.app.notify("Select the guest NIC to send from", severity="warning")
            return
        target = ping_target(topology, node)
        lab_file = self.client.file
        machine = guests.machine_of(topology, node)
        vm_ifname = machine.ifname(node) if machine is not None and machine.is_vm else None

        def chosen(cmd: list[str] | None) -> None:
            if cmd:
                self.send_traffic(lab_file, node, cmd)

        self.app.push_screen(DemoTraffic(node, target, vm_ifname), chosen)

    @work(group="traffic", exit_on_error=False)
    async def send_traffic(self, lab_file: Path, node: str, cmd: list[str]) -> None:
        """Run cmd in the guest (`qnet-tui exec`) and say how it went."""
        title = f"{node}: {sent_what(cmd)}"
        try:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "qnet_tui", "exec", str(lab_file), node, "--", *cmd),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
        except OSError as exc:
            self.app.notify(f"cannot start qnet-tui exec: {exc.strerror}", title=title, severity="error")
            return
        lines = [x for x in out.decode(errors="replace").splitlines() if x.strip()]
        summary = next((x for x in lines if "packet loss" in x or x.startswith("sent ")), lines[-1] if lines else "")
        self.app.notify(
            summary or f"exit status {proc.returncode}",
            title=title,
            severity="information" if proc.returncode == 0 else "warning",
        )

    def vm_guest(self, topology: Topology, node: str | None) -> str | None:
        """The VM guest a node is (or is a NIC of); None, and the user told, if none."""
        machine = guests.machine_of(topology, node) if node in topology.nodes else None
        guest = machine.id if machine is not None and machine.guest is not None else node
        if guest is None or topology.nodes[guest].kind is not Kind.GUEST or topology.nodes[guest].get("vm") is not True:
            self.app.notify("Select a VM guest (vm: true) or one of its NICs", severity="warning")
            return None
        if not self.running:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return None
        return guest

    def open_console(self, topology: Topology, node: str | None) -> None:
        guest = self.vm_guest(topology, node)
        if guest is None or guest in self.consoles:
            return
        screen = self.consoles[guest] = ConsoleScreen(
            guest, lambda data: self._send(protocol.ConsoleInput.of(guest, data))
        )

        def closed(_: object) -> None:
            self.consoles.pop(guest, None)
            if self.client is not None:
                self.client.send(protocol.Console(guest, False))

        self._send(protocol.Console(guest, True))  # the scrollback comes first
        self.app.push_screen(screen, closed)

    def restart_vm(self, topology: Topology, node: str | None) -> None:
        guest = self.vm_guest(topology, node)
        if guest is not None:
            self._send(protocol.VmControl(guest))
            self.app.notify(f"Restarting the VM {guest}", title="Lab")

    def _links_down(self, links: frozenset[frozenset[str]]) -> None:
        if links != self.links_down:
            self.links_down = links
            self.post_message(self.LinksDown(links))

    def toggle_link(self, topology: Topology, node: str | None) -> None:
        """Pull the cable of the selected node's link, or put it back (a
        chooser when it has several): down both ways, or up from any state."""
        if not self.running:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return
        peers = topology.neighbours(node) if node in topology.nodes else []
        if not peers:
            self.app.notify("Select a node with a link", severity="warning")
            return

        def chosen(peer: str | None) -> None:
            if peer:
                up = frozenset((node, peer)) in self.links_down
                self._send(protocol.Link(node, peer, up))
                what = "putting it back" if up else "pulling the cable"
                self.app.notify(f"Link {node} - {peer}: {what}", title="Lab")

        if len(peers) == 1:
            chosen(peers[0])
        else:
            self.app.push_screen(CableChooser(node, peers, self.links_down), chosen)

    def _playing(self, status: dict | None) -> None:
        if status != self.playing:
            self.playing = status
            self.post_message(self.StateChanged())  # the title says the step

    @property
    def scenario_line(self) -> str:
        """The scenario playing, its time and step, for the title; "" if none."""
        p = self.playing
        if not p:
            return ""
        clock = f"{scenario.say_time(round(p['elapsed']))}/{scenario.say_time(p['duration'])}"
        return f"scenario {p['name']} {clock}, step {p['step']}/{p['steps']}: {p['doing']}"

    def scenario(self, topology: Topology) -> None:
        """Stop the scenario playing, or choose one of the file's to play."""
        if not self.running:
            self.app.notify(self.NOT_RUNNING, severity="warning")
            return
        if self.playing:
            self._send(protocol.Scenario(None))
            self.app.notify(f"Stopping scenario {self.playing['name']}", title="Lab")
            return
        found = scenario.read(topology)[0]
        if not found:
            self.app.notify("This file has no scenarios (scenarios: in its YAML)", severity="warning")
            return

        def chosen(name: str | None) -> None:
            if name:
                self._send(protocol.Scenario(name))

        if len(found) == 1:
            chosen(next(iter(found)))
        else:
            self.app.push_screen(ScenarioChooser(list(found.values())), chosen)

    def toggle(self) -> None:
        self.toggle_class("-shown")

    def pause_log(self) -> None:
        view = self.traffic
        view.paused = not view.paused
        self.app.notify("Frame logs paused (p resumes)" if view.paused else "Frame logs resumed")

    def filter_log(self) -> None:
        self.add_class("-shown")
        self.traffic.query_one("#filter").focus()

    def bpf_filter(self) -> None:
        self.add_class("-shown")
        self.traffic.query_one("#bpf").focus()

    def _panes_meant(self, topology: Topology, node: str | None) -> list[VlanPane]:
        """The pane a pane key acts on: the one holding the focus, else the
        selected node's; with neither, every pane."""
        focused = self.app.focused
        if focused is not None:
            pane = next((w for w in focused.ancestors_with_self if isinstance(w, VlanPane)), None)
            if pane is not None:
                return [pane]
        pane = self.pane_of(topology, node)
        return [pane] if pane is not None else [p for p in self.traffic.panes.values() if p.is_mounted]

    def toggle_conversations(self, topology: Topology, node: str | None) -> None:
        """The conversation table instead of the frame log, or back."""
        panes = self._panes_meant(topology, node)
        if not panes:
            self.app.notify("No traffic panes yet: run the lab first (r)", severity="warning")
            return
        self.add_class("-shown")
        wanted = not panes[0].showing_conversations
        for pane in panes:
            if pane.showing_conversations != wanted:
                pane.toggle_conversations()
        if wanted:  # its keys (m, u, >, -) at once; escape gives them back to the canvas
            panes[0].lower.focus()

    def enter_pane(self, topology: Topology, node: str | None) -> None:
        """The keys to a pane's frame log or conversation table (escape gives them back)."""
        panes = self._panes_meant(topology, node)
        if not panes:
            self.app.notify("No traffic panes yet: run the lab first (r)", severity="warning")
            return
        self.add_class("-shown")
        panes[0].lower.focus()


class CableChooser(ChooseLink):
    """Which of a node's links to pull or put back; dismisses with the peer."""

    def __init__(self, node: str, peers: list[str], down: frozenset[frozenset[str]]) -> None:
        super().__init__(node, peers)
        self.down = down

    def compose(self) -> ComposeResult:
        from textual.widgets import Label, OptionList
        from textual.widgets.option_list import Option

        with Vertical(classes="dialog"):
            yield Label(f"Pull (or put back) a cable of {self.node}:", classes="question")
            yield OptionList(
                *[
                    Option(
                        f"{self.node} ┄┄ {p}  (down: put back)"
                        if frozenset((self.node, p)) in self.down
                        else f"{self.node} ── {p}",
                        id=p,
                    )
                    for p in self.peers
                ],
                id="peers",
            )


class ScenarioChooser(ChooseLink):
    """Which of the file's scenarios to play; dismisses with its name."""

    def __init__(self, scenarios: list[scenario.Scenario]) -> None:
        super().__init__("", [s.name for s in scenarios])
        self.scenarios = scenarios

    def compose(self) -> ComposeResult:
        from textual.widgets import Label, OptionList
        from textual.widgets.option_list import Option

        with Vertical(classes="dialog"):
            yield Label("Play a scenario (S again stops it):", classes="question")
            yield OptionList(
                *[
                    Option(f"{s.name}  ({len(s.steps)} steps, {scenario.say_time(s.duration)})", id=s.name)
                    for s in self.scenarios
                ],
                id="scenarios",
            )
