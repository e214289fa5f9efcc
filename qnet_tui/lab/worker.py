"""The worker process: one lab, from start to a clean stop.

Start: refuse a second run of the same lab (a lock), remove what a killed
earlier run left (listed in its state file), fork a watchdog that cleans up
if this process dies without stopping (those three are runstate's), realize
the topology, serve the control socket. Run: forward frames, emit
statistics every tick. Stop (duration, Ctrl-C, SIGTERM, a client's "stop"):
close every fd, delete every namespace, remove the state file."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

from qnet_tui import protocol
from qnet_tui.lab import apply, links, netns, runstate
from qnet_tui.lab.capture import Capture, Ring, Sink, Stream, new_file, write_new
from qnet_tui.lab.console import ConsoleRelay
from qnet_tui.lab.control import Client, ControlServer, MessageError
from qnet_tui.lab.follow import Flow, FlowError, FollowSink
from qnet_tui.lab.impair import Impairment, ImpairmentError
from qnet_tui.lab.jobs import MAX_JOBS, Job, Jobs
from qnet_tui.lab.linkimpair import ImpairError, from_topology, impairment_of, place, set_impairment
from qnet_tui.lab.loop import Loop
from qnet_tui.lab.machines import Machines
from qnet_tui.lab.ports import Hub
from qnet_tui.lab.realize import Lab, RealizeError, kernel_path, realize, teardown
from qnet_tui.lab.remote import RemoteShare
from qnet_tui.lab.runstate import LabError
from qnet_tui.lab.scenario import Player, ScenarioError
from qnet_tui.lab.stats import Stats, format_table
from qnet_tui.lab.vmguests import VmGuest, VmGuestError
from qnet_tui.model import scenario
from qnet_tui.model.atomic import WriteFailed
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlio import load_text
from qnet_tui.pcapfilter import Filter, FilterError, compile_filter
from qnet_tui.protocol import LabState

WORKER_NICE = -5
EX_SOFTWARE = 70  # sysexits.h: the worker failed of itself, not of its input
MAX_RING_S = 3600.0  # a ring's window at most (its bytes are bounded too: lab/capture.py)
SAVE_WAIT_S = 10.0  # how long a stopping lab waits for a ring's file to be written whole


def exit_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM when the process that started this one
    (pid `parent`) dies, so a killed app never leaves its lab running."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    # The parent died before the request took hold: we were handed to init,
    # or to a subreaper (systemd --user), so compare with the pid, not with 1.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class Worker:
    def __init__(
        self,
        topology: Topology,
        file: str,
        *,
        interval: float = 1.0,
        duration: float | None = None,
        out: IO[str] | None = None,
        json_lines: bool = False,
        err: IO[str] | None = None,
        allow_host: bool = False,
        scenario: str | None = None,
        host: str | None = None,
        controller: str | None = None,
        lease: float | None = None,
        text: str | None = None,
    ) -> None:
        # A lab across machines (hosts: in the file): this worker runs one
        # machine's share (host; None: the controller's, which starts the others).
        self.machines = Machines(topology, text, file, host, controller, lease)
        self.topology = self.machines.local
        self.scenario = scenario  # to play once the lab runs
        self.name = self.machines.lab_name
        self.file = file
        self.interval = interval
        self.duration = duration
        self.out = out
        self.json_lines = json_lines
        self.allow_host = allow_host
        self.err = err or sys.stderr
        self.loop = Loop()
        self.jobs = Jobs(self.loop)  # slow requests' work, off the loop
        self._requests = itertools.count()
        self._file_request: dict[str, int] = {}  # by hub: the latest request for its capture to a file
        self.state = LabState.STARTING
        self.lock_fd = -1
        self.watchdog_w = -1
        self.control: ControlServer | None = None
        self.lab: Lab | None = None
        self.stats: Stats | None = None
        self.player: Player | None = None
        self._wake_r, self._wake_w = socket.socketpair()

    # -- messages ----------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        # Whoever read our messages may be gone (the app died): the lab still stops cleanly.
        with contextlib.suppress(OSError, ValueError):
            print(f"qnet-tui: {level}: {message}", file=self.err, flush=True)
        if self.control:
            self.control.broadcast(protocol.encode(protocol.Log(level, message)))

    def set_state(self, state: LabState, reason: str | None = None) -> None:
        self.state = state
        if self.control:
            self.control.broadcast(protocol.encode(protocol.State(state, reason)))

    # -- start ---------------------------------------------------------------------

    def acquire(self) -> None:
        if os.geteuid() != 0:
            raise LabError("a lab needs root for its network namespaces: run it with sudo")
        self.lock_fd = runstate.take_lock(self.name)
        removed = runstate.remove_leftovers(self.name, runstate.read_state(self.name), self.log)
        if removed:
            self.log("warning", f"removed what a killed run of lab {self.name} left behind: {', '.join(removed)}")
        strangers = [n for n in netns.existing() if netns.belongs_to(n, self.name)]
        if strangers:
            raise LabError(
                f"network namespaces {', '.join(strangers)} exist but were not made by lab {self.name}; "
                "remove them or rename the lab"
            )
        self._save_state()
        self.watchdog_w = runstate.start_watchdog(self.name)

    def _save_state(self) -> None:
        """Record what the lab has made; raises RealizeError (naming the file)
        when the record cannot be written: nothing more may be made then."""
        try:
            self._write_state()
        except WriteFailed as exc:
            path = protocol.state_path(self.name)
            raise RealizeError(f"cannot write the lab's state file {path}: {exc}") from None

    def _record(self) -> None:
        """on_record for the lab: while it is taken down, a failed record is
        said, not raised; the teardown must go on."""
        try:
            self._save_state()
        except RealizeError as exc:
            if self.state is not LabState.STOPPING:
                raise
            self.log("warning", str(exc))

    def _write_state(self) -> None:
        lab = self.lab
        runstate.write_state(
            self.name,
            {
                "pid": os.getpid(),
                "file": self.file,
                "started": time.time(),
                "namespaces": lab.namespaces if lab else [],
                "lent": lab.lent if lab else [],
                "sockets": lab.sockets if lab else [],
                "vms": lab.vms if lab else [],
            },
        )

    def start(self) -> None:
        scenarios = scenario.read(self.topology)[0]
        if self.scenario is not None and self.scenario not in scenarios:
            raise LabError(
                f"no scenario {self.scenario!r} in {self.file}; its scenarios: {', '.join(scenarios) or 'none'}"
            )
        try:
            self.acquire()
        except RealizeError as exc:  # the first state record could not be written
            raise LabError(str(exc)) from None
        # The worker is every guest's switch: when guests' programs take all
        # the CPU, a starved worker drops their frames. Ask for a little more
        # of it than they get, as the kernel's own networking does.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, WORKER_NICE)
        control = ControlServer(
            self.loop,
            protocol.control_path(self.name),
            self._on_client_message,
            self._hello,
            self._on_fault,
            on_drop=self._on_client_gone,
        )
        try:
            control.start()
        except OSError as exc:
            raise LabError(f"cannot serve the control socket {control.path}: {exc.strerror}") from None
        self.control = control
        self.set_state(LabState.STARTING)
        lab = self.lab = Lab(
            self.name,
            self.topology,
            protocol.lab_dir(self.name),
            self.loop,
            self.log,
            allow_host=self.allow_host,
            on_record=self._record,
            console_send=control.send,
        )
        lab.stitched, lab.plain = self.machines.stitched(), self.machines.plain()
        self.machines.keep_file()
        self.machines.launch(protocol.lab_dir(self.name), self.log)
        try:
            realize(lab)
            from_topology(lab)
        except (RealizeError, ImpairError) as exc:
            raise LabError(str(exc)) from None
        self.machines.stitch(lab, self.loop, self.log)
        self.machines.await_running(self.loop, self._on_share_message)
        self.stats = Stats(lab)
        self.player = Player(lab, scenarios, self.log, self._scenario_said)
        self.set_state(LabState.RUNNING)

    def _hello(self) -> list[bytes]:
        return [
            protocol.encode(protocol.Hello(self.name, self.file, os.getpid(), protocol.PROTOCOL_VERSION)),
            protocol.encode(protocol.State(self.state)),
        ]

    def _on_client_message(self, msg: protocol.Message, client: Client) -> None:
        """One client message; MessageError says why it is refused."""
        if isinstance(msg, protocol.Stop):
            self.log("info", "stop requested by a control client")
            self.loop.stop()
        elif isinstance(msg, protocol.Lease):
            self.machines.renew(msg.seconds)
        elif isinstance(msg, protocol.Capture):
            self._capture(msg, client)
        elif isinstance(msg, protocol.CaptureStream):
            self._capture_stream(msg, client)
        elif isinstance(msg, protocol.CaptureSave):
            self._capture_save(msg, client)
        elif isinstance(msg, protocol.Follow):
            self._follow(msg, client)
        elif isinstance(msg, protocol.VmControl):
            guest = self._vm(msg.guest, "vm")
            try:
                guest.restart()
            except VmGuestError as exc:
                self.log("error", str(exc))
                raise MessageError(str(exc)) from None
        elif isinstance(msg, protocol.Link):
            self._link(msg, client)
        elif isinstance(msg, protocol.Console):
            self._console(msg.guest).watch(client, msg.watch)
        elif isinstance(msg, protocol.Scenario):
            self._scenario(msg.name)
        elif isinstance(msg, protocol.Impair):
            self.control.send(client, protocol.encode(self._impair(msg)))
        elif isinstance(msg, protocol.Apply):
            self.control.send(client, protocol.encode(self._apply(msg)))
        elif isinstance(msg, protocol.ConsoleInput):
            data = protocol.unbase64(msg.data)
            if data is None:
                raise MessageError("console_input: data is not base64")
            if not self._console(msg.guest).type(data):
                raise MessageError(f"console of {msg.guest}: not connected (the VM is starting or gone); try again")

    def _impair(self, msg: protocol.Impair) -> protocol.Impaired:
        if self.lab is None:
            raise MessageError("impair: the lab is not up yet")
        try:
            spec = Impairment.parse(msg.spec)
            ways = [(msg.a, msg.b)] if msg.one_way else [(msg.a, msg.b), (msg.b, msg.a)]
            for a, b in ways:
                place(self.lab, a, b)  # both ways checked before either changes
        except (ImpairmentError, ImpairError) as exc:
            raise MessageError(f"impair {msg.a} {msg.b}: {exc}") from None
        for a, b in ways:
            set_impairment(self.lab, a, b, spec)
        forward, backward = (impairment_of(self.lab, a, b).format() for a, b in ((msg.a, msg.b), (msg.b, msg.a)))
        self.log("info", f"impair {msg.a} -> {msg.b}: {forward}; {msg.b} -> {msg.a}: {backward}")
        return protocol.Impaired(msg.a, msg.b, forward, backward)

    def _apply(self, msg: protocol.Apply) -> protocol.Applied:
        if self.lab is None or self.state is not LabState.RUNNING:
            raise MessageError("apply: the lab is not up yet")
        doc = load_text(msg.topology)
        errors = [d.text for d in doc.diagnostics() if d.is_error]
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise MessageError(f"apply: the topology has errors: {errors[0]}{more}")
        if self.machines.spread:
            raise MessageError("apply: a lab across machines takes no changes while it runs yet; stop and start it")
        plan = apply.plan(self.lab.topology, doc.topology, frozenset(self.lab.pinned), kernel_path())
        playing = self.player.scenario if self.player is not None else None
        if playing is not None and not plan.empty:
            plan.changes.append(f"  scenario {playing.name} stops: the links it changed are put back first")
        if plan.refusal or msg.dry_run or plan.empty:
            return protocol.Applied(plan.changes, False, plan.refusal)
        self.log("info", "applying: " + "; ".join(line.strip() for line in plan.changes))
        if playing is not None:
            self.player.stop("stopped: the lab takes a change")
        try:
            apply.carry_out(self.lab, doc.topology, plan, self._hub_gone)
        except apply.ApplyError as exc:
            self.log("error", f"apply: {exc}")
            raise MessageError(f"apply: {exc}") from None
        finally:
            self.topology = self.lab.topology
            self.player.scenarios = scenario.read(self.topology)[0]  # as the file has them now
        self.log("info", f"applied {sum(not line.startswith(' ') for line in plan.changes)} changes")
        return protocol.Applied(plan.changes, True)

    def _hub_gone(self, hub: Hub) -> None:
        self._end_captures(hub, f"hub {hub.name} is gone from the lab (apply)")

    def _link(self, msg: protocol.Link, client: Client) -> None:
        if self.lab is None:
            raise MessageError("link: the lab is not built yet")
        try:
            cable = links.find(self.lab, msg.a, msg.b)
            state = links.set_state(self.lab, cable, msg.up, msg.direction)
        except links.LinkError as exc:
            raise MessageError(str(exc)) from None
        text = links.describe(msg.a, msg.b, state)
        self.log("info", text)
        self.control.send(client, protocol.encode(protocol.LinkState(msg.a, msg.b, *state, text)))

    def _scenario(self, name: str | None) -> None:
        if self.player is None:
            raise MessageError("scenario: the lab is not up yet")
        try:
            if name is not None:
                self.player.start(name)
            elif not self.player.stop():
                raise MessageError("scenario: none is playing")
        except ScenarioError as exc:
            raise MessageError(str(exc)) from None

    def _scenario_said(self, status: dict) -> None:
        if self.control:
            self.control.broadcast(protocol.encode(protocol.ScenarioState(**status)))

    def _vm(self, guest: str, what: str) -> VmGuest:
        found = self.lab.vm_guests.get(guest) if self.lab else None
        if found is None:
            vms = ", ".join(self.lab.vm_guests) if self.lab else ""
            raise MessageError(
                f"{what}: no VM guest {json.dumps(guest)[:40]} in this lab; its VM guests: {vms or 'none'}"
            )
        return found

    def _console(self, guest: str) -> ConsoleRelay:
        return self._vm(guest, "console").console

    def _on_client_gone(self, client: Client) -> None:
        for guest in self.lab.vm_guests.values() if self.lab else ():
            guest.console.watchers.discard(client)
        for hub in self.lab.all_hubs if self.lab else ():
            for sink in list(hub.capture.sinks if hub.capture else ()):
                if sink.owner is client:  # its stream or ring ends with it
                    self._end_sink(hub, sink, None)

    def _on_fault(self, what: str) -> None:
        self.log("error", f"internal error {what} (the lab goes on):\n{traceback.format_exc(limit=8)}")

    def _refuse(self, why: str) -> MessageError:
        self.log("error", why)
        return MessageError(why)

    def _hub(self, hub_name: str, what: str = "capture") -> Hub:
        hubs = {h.name: h for h in self.lab.all_hubs} if self.lab else {}
        hub = hubs.get(hub_name)
        if hub is None:
            raise self._refuse(f"{what}: no hub {json.dumps(hub_name)[:40]}; hubs are {', '.join(hubs) or 'none'}")
        return hub

    def _hub_of(self, node: str, what: str = "capture") -> Hub:
        """A hub by its name, or the one hub node is a port of (a pair's end: the pair)."""
        hubs = self.lab.all_hubs if self.lab else ()
        for hub in hubs:
            if hub.name == node:
                return hub
        on = [hub for hub in hubs if any(p.name == node for p in hub.ports)]
        if len(on) == 1:
            return on[0]
        names = ", ".join(hub.name for hub in hubs) or "none"
        if not on:
            raise self._refuse(
                f"{what}: {json.dumps(node)[:40]} is no hub and on none; name a hub or a node on one (hubs: {names})"
            )
        raise self._refuse(f"{what}: {node} is on {len(on)} hubs ({', '.join(h.name for h in on)}); name one of them")

    def _busy(self) -> None:
        if self.jobs.full:
            raise self._refuse(f"the lab is busy with {MAX_JOBS} slow requests (filters, saves); try again soon")

    def _filtered(
        self,
        text: str | None,
        client: Client,
        then: Callable[[Filter | None], None],
        dropped: Callable[[], None] = lambda: None,
    ) -> None:
        """then(the filter text compiles to), or then(None) without one. The
        client compiled it too, but is not trusted to have. libpcap compiles it
        in a thread (lab/jobs.py): it may look a host name up, for seconds.
        then runs on the loop, late; what it refuses is the client's reply.
        dropped, if then never runs (a bad filter, the lab stopping first)."""
        if text is None or not text.strip():
            then(None)
            return
        try:
            self._busy()
        except MessageError:
            dropped()
            raise

        def compiled(job: Job) -> None:
            try:
                filt = job.result()
            except FilterError as exc:
                dropped()
                raise self._refuse(f"capture: bad {exc}") from None
            then(filt)

        self.jobs.start(
            lambda: compile_filter(text),
            lambda job: self.control.answer(client, lambda: compiled(job), f"after compiling filter {text!r}"),
            abandon=lambda job: dropped(),
            what=f"compiling filter {text!r}",
        )

    def _path(self, path: str, what: str) -> Path:
        if not (os.path.isabs(path) and "\0" not in path):
            raise self._refuse(
                f"{what}: give an absolute path for the pcapng file (a string without NUL bytes)"
                + (", or null to stop" if what == "capture" else "")
            )
        return Path(path)

    def _capture(self, msg: protocol.Capture, client: Client) -> None:
        """The app's capture of a hub to a file (one per hub); path None stops
        it. The latest request for a hub wins, though an earlier one's filter
        may finish compiling after it."""
        hub_name = self._hub(msg.hub).name
        target = self._path(msg.path, "capture") if msg.path is not None else None
        request = self._file_request[hub_name] = next(self._requests)

        def start(filt: Filter | None) -> None:
            if self._file_request.get(hub_name) != request:  # (only one with a filter waits)
                self.log("info", f"capture of {hub_name} to {msg.path}: replaced by a later one while compiling")
                return
            hub = self._hub(hub_name)  # again: an apply may have taken it away meanwhile
            if hub.capture is not None and hub.capture.file is not None:
                self._end_sink(hub, hub.capture.file, None)
            if target is None:
                return
            try:
                sink = Capture(target, filt)
            except OSError as exc:
                raise self._refuse(f"capture: cannot write {msg.path}: {exc.strerror}") from None
            hub.add_capture(sink)
            hub.capture.file = sink
            self.log("info", f"capturing {hub.name} to {msg.path}" + (f" (filter {filt.text!r})" if filt else ""))

        self._filtered(msg.filter if target is not None else None, client, start)

    def _capture_stream(self, msg: protocol.CaptureStream, client: Client) -> None:
        """A stream into the pipe that came with msg, or a ring; the client's
        while it stays. Answered (`capturing`) once its filter is compiled."""
        passed = client.take_fd()
        held = [passed] if passed is not None else []  # the pipe, ours to close unless a Stream takes it

        def close() -> None:
            while held:
                os.close(held.pop())

        def start(filt: Filter | None) -> None:
            try:
                if client.gone:
                    return  # it went while its filter compiled
                hub = self._hub_of(msg.node)  # again: an apply may have taken it away meanwhile
                sink: Sink
                if msg.ring is not None:
                    if not (math.isfinite(msg.ring) and 0 < msg.ring <= MAX_RING_S):
                        raise self._refuse(
                            f"capture: ring is {msg.ring!r}; give seconds, more than 0 and up to {MAX_RING_S:g}"
                        )
                    sinks = hub.capture.sinks if hub.capture else ()
                    if any(isinstance(s, Ring) and s.owner is client for s in sinks):
                        raise self._refuse(f"capture: this client keeps a ring of {hub.name} already")
                    sink = Ring(msg.ring, filt)
                else:
                    if not held or not stat.S_ISFIFO(os.fstat(held[0]).st_mode):
                        raise self._refuse("capture_stream: pass a pipe's write end with the message (SCM_RIGHTS)")
                    sink = Stream(held.pop(), filt)
            finally:
                close()
            sink.owner = client
            hub.add_capture(sink)
            what = f"keeping the last {msg.ring:g} s of {hub.name}" if msg.ring else f"streaming {hub.name}"
            self.log("info", what + (f" (filter {filt.text!r})" if filt else "") + " for a control client")
            self.control.send(
                client, protocol.encode(protocol.Capturing(hub.name, [p.name for p in hub.ports], msg.ring))
            )

        try:
            self._hub_of(msg.node)  # a wrong node is said at once, before any filter is compiled
        except MessageError:
            close()
            raise
        self._filtered(msg.filter, client, start, close)

    def _capture_save(self, msg: protocol.CaptureSave, client: Client) -> None:
        """Write the client's ring to a new file. Opened here, so a refusal
        (it exists, the folder is not writable) comes at once; written in a
        thread (lab/jobs.py): up to 256 MiB, while the hubs go on; answered
        (`capture_saved`) when it is whole, or refused if the write failed."""
        hub = self._hub(msg.hub, "capture_save")
        ring = (
            next((s for s in hub.capture.sinks if isinstance(s, Ring) and s.owner is client), None)
            if hub.capture
            else None
        )
        if ring is None:
            raise self._refuse(f"capture_save: no ring of {hub.name} kept for this client; start one first")
        path = self._path(msg.path, "capture_save")
        self._busy()
        blocks, frames = ring.contents()
        try:
            fd = new_file(path)
        except OSError as exc:
            raise self._refuse(f"capture_save: cannot write {msg.path}: {exc.strerror}") from None
        name, seconds = hub.name, ring.seconds

        def written(job: Job) -> None:
            try:
                size = job.result()
            except OSError as exc:  # what was written is removed
                raise self._refuse(f"capture_save: cannot write {msg.path}: {exc.strerror}") from None
            went = " (its client went)" if client.gone else ""
            self.log("info", f"wrote the last {seconds:g} s of {name} to {path}: {frames} frames{went}")
            self.control.send(client, protocol.encode(protocol.CaptureSaved(name, str(path), frames, size, seconds)))

        self.jobs.start(
            lambda: write_new(fd, path, blocks),
            lambda job: self.control.answer(client, lambda: written(job), f"after writing {path}"),
            abandon=lambda job: self.log("warning", f"the lab stopped before {path} was written whole"),
            must_finish=True,
            what=f"writing {path}",
        )

    def _follow(self, msg: protocol.Follow, client: Client) -> None:
        """Follow a flow of a hub for client (one per hub and client), or stop."""
        hub = self._hub_of(msg.hub, "follow")
        for sink in list(hub.capture.sinks if hub.capture else ()):
            if isinstance(sink, FollowSink) and sink.owner is client:
                self._end_sink(hub, sink, None)
        if msg.proto is None:
            return
        try:
            flow = Flow.of(msg.proto, msg.a, msg.a_port, msg.b, msg.b_port)
        except FlowError as exc:
            raise self._refuse(str(exc)) from None
        sink = FollowSink(flow)
        sink.owner = client
        hub.add_capture(sink)
        self.control.send(client, protocol.encode(protocol.Followed(hub.name, [], 0, [False, False])))
        self.log("info", f"following {flow.text()} on {hub.name} for a control client")

    def _send_followed(self) -> None:
        """Each tick: what each followed flow brought since the last."""
        for hub in self.lab.all_hubs:
            for sink in hub.capture.sinks if hub.capture else ():
                if isinstance(sink, FollowSink) and isinstance(sink.owner, Client):
                    chunks, frames, full = sink.take()
                    if chunks:
                        message = protocol.Followed(hub.name, chunks, frames, full)
                        self.control.send(sink.owner, protocol.encode(message))

    def _end_sink(self, hub: Hub, sink: Sink, reason: str | None) -> None:
        """Stop sink; its owner (a stream's or ring's client) is told why unless it went itself."""
        hub.remove_capture(sink)
        sink.close()
        if isinstance(sink, Capture):
            if sink.error:
                self.log("error", f"capture of {hub.name} failed: {sink.error}; {sink.frames} frames in {sink.path}")
            else:
                self.log("info", f"capture of {hub.name} stopped: {sink.frames} frames in {sink.path}")
            return
        missed = sink.missed_total if isinstance(sink, Stream) else 0
        if reason is not None and self.control is not None and isinstance(sink.owner, Client):
            self.control.send(sink.owner, protocol.encode(protocol.CaptureEnded(hub.name, reason, sink.frames, missed)))
        self.log(
            "info",
            f"{sink.kind} of {hub.name} ended ({reason or 'its client went'}): {sink.frames} frames, {missed} missed",
        )

    def _end_captures(self, hub: Hub, reason: str) -> None:
        for sink in list(hub.capture.sinks if hub.capture else ()):
            self._end_sink(hub, sink, reason)

    # -- run -------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.loop.running:
            return
        now = time.monotonic()
        for guest in self.lab.vm_guests.values():
            guest.poll()
        for hub in self.lab.all_hubs:
            for sink in list(hub.capture.sinks if hub.capture else ()):
                if sink.error:
                    self._end_sink(hub, sink, sink.error)
            for level, message in hub.check_loops(now):
                self.log(level, message)
        if self.machines.lease_ran_out():
            lease = self.machines.lease
            self.log("warning", f"no word from the controller for {lease:g} s (its lease ran out): stopping")
            self.loop.stop()
            return
        snapshot = self.machines.merge(self.stats.snapshot())
        snapshot["scenario"] = self.player.status()
        if self.out is not None:
            line = json.dumps(snapshot) if self.json_lines else format_table(snapshot)
            try:
                print(line, file=self.out, flush=True)
            except (BrokenPipeError, ValueError):
                self.out = None
        if self.control and self.control.clients:
            self.control.broadcast(protocol.encode(protocol.Stats(**snapshot)))
            self._send_followed()
            samples = self.stats.samples()
            if samples:
                self.control.broadcast(protocol.encode(protocol.Samples(samples)))
        else:
            self.stats.drop_samples()
        self.loop.call_later(self.interval, self._tick)

    def run(self) -> None:
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self.loop.add(self._wake_r.fileno(), self._on_wake)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            if self.duration is not None:
                self.loop.call_later(self.duration, self.loop.stop)
            self.loop.call_later(self.interval, self._tick)
            fast = [hub.name for hub in self.lab.hubs if hub.forwarding == "kernel"]
            if fast:
                self.log("info", f"the kernel forwards {', '.join(fast)} (hubs of namespace guests alone)")
            ringed = self.lab.ringed
            if ringed:
                self.log(
                    "info",
                    f"the worker forwards {', '.join(ringed)}: on a cycle of hubs and guests, where a guest bridging"
                    " its NICs makes a loop, which the worker cuts",
                )
            # Said once a signal stops the lab cleanly: whoever waits for it may send one.
            self.log("info", f"lab {self.name} is running ({len(self.lab.namespaces)} namespaces)")
            if self.scenario is not None:
                self.player.start(self.scenario)
            self.loop.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(-1)

    def _on_share_message(self, share: RemoteShare, msg: protocol.Message) -> None:
        """What another machine's share says: its samples and log join ours (its statistics are merged each tick)."""
        if isinstance(msg, protocol.Samples) and self.control and self.control.clients:
            self.control.broadcast(protocol.encode(msg))
        elif isinstance(msg, protocol.Log):
            self.log(msg.level, f"host {share.host.name}: {msg.message}")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.loop.stop()

    def _on_wake(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(512)

    # -- stop ------------------------------------------------------------------------

    def stop(self, reason: str | None = None) -> None:
        self.set_state(LabState.STOPPING, reason)
        saving = [job.what for job in self.jobs.running if job.must_finish]
        if saving:
            self.log("info", f"stopping: waiting for {', '.join(saving)} to finish ({SAVE_WAIT_S:g} s at most)")
        self.jobs.close(SAVE_WAIT_S)  # their replies go out while the clients are still there
        self.machines.stop()  # the other machines' shares go down while this one does
        for hub in self.lab.all_hubs if self.lab else ():
            self._end_captures(hub, "the lab stops")
        if self.stats is not None:
            self.stats.close()  # its netlink sockets hold the namespaces
            self.stats = None
        if self.lab is not None:
            teardown(self.lab)
            self.lab = None
        self.machines.finish()  # the other machines' shares, asked to stop above
        if self.lock_fd >= 0:  # ours to remove only while we hold the lab
            with contextlib.suppress(FileNotFoundError):
                protocol.state_path(self.name).unlink()
        self.set_state(LabState.FAILED if reason else LabState.STOPPED, reason)
        if self.control:
            self.control.close()
            self.control = None
        if self.watchdog_w >= 0:
            os.close(self.watchdog_w)  # the watchdog sees EOF, finds no state file, and exits
            self.watchdog_w = -1
        if self.lock_fd >= 0:
            runstate.release_lab_dir(self.name)
            os.close(self.lock_fd)
            self.lock_fd = -1
        self.loop.close()
        self._wake_r.close()
        self._wake_w.close()


def run_worker(worker: Worker) -> int:
    """Start, run until told to stop, stop; 0 on a clean run, 1 if it could not
    start (the message says why; nothing is left behind)."""
    try:
        try:
            worker.start()
        except LabError as exc:
            worker.log("error", str(exc))
            worker.stop(str(exc))
            return 1
        except BaseException:
            worker.stop("interrupted while starting")
            raise
        try:
            worker.run()
        except Exception as exc:  # a fault of the worker itself: said as such, and the lab still goes
            reason = f"internal error: {type(exc).__name__}: {exc}"
            worker.log("error", f"{reason}\n{traceback.format_exc(limit=8)}")
            worker.stop(reason)
            return EX_SOFTWARE
        except BaseException:
            worker.stop()
            raise
        worker.stop()
        worker.log("info", f"lab {worker.name} stopped; everything it made is removed")
        return 0
    except KeyboardInterrupt:
        return 130
