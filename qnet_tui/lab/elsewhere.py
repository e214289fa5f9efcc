"""The command-line verbs on a node another machine runs (a lab across
machines): `exec`, `console`, `capture` and `follow` go there over ssh and
run as the same verb on that machine's share, whose worker keeps the file it
was given (lab/machines.py). Output comes back through ssh: a capture's
pcapng to this machine's stdout or -w FILE, an exec's exit status as ours."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

from qnet_tui import protocol
from qnet_tui.lab.remote import remote_line, share_name, ssh_command
from qnet_tui.model import placement
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Topology
from qnet_tui.model.yamlio import load_file

TTY_VERBS = ("exec", "console")  # a terminal of their own there, when this one has one


def end_when_reader_goes() -> None:
    """For a verb run here for another machine (--host, through its ssh): when
    its ssh goes (sshd closes the reading end of our stdout), end as on
    SIGTERM, even while nothing is written that would fail on it. (Not stdin's
    end: a script's ssh may have given us an empty one from the start.)"""

    def wait() -> None:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR and POLLHUP only: they are always watched
        while not poller.poll():
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, daemon=True).start()


def share_topology(lab: str, host: str) -> str:
    """Where the share of lab on host keeps its file, on that machine (a root worker's folder)."""
    return str(protocol.topology_path(share_name(lab, host)))


def machine_of_node(t: Topology, node: str) -> str:
    """Which machine a verb on node runs on: the node's; a hub's, this one if it has a port here."""
    if t.hosts is None or node not in t.nodes:
        return placement.THIS
    if t.nodes[node].kind is Kind.HUB:
        machines = placement.hub_machines(t).get(node, {placement.THIS})
        return placement.THIS if placement.THIS in machines else sorted(machines)[0]
    return placement.machine_of(t).get(node, placement.THIS)


def hop(verb: str, node: str, argv: list[str], out: str | None = None) -> int | None:
    """Run verb for node where it runs, replacing this process with ssh; None
    when it runs here (or the file has errors: the verb says them). argv: the
    verb's arguments there, the topology file first; out: capture's -w FILE,
    written here."""
    file = argv[0]
    doc = load_file(file)
    if any(d.is_error for d in doc.problems) or node not in doc.topology.nodes:
        return None
    t = doc.topology
    machine = machine_of_node(t, node)
    if machine == placement.THIS:
        return None
    host = placement.hosts(t).get(machine)
    if host is None or not host.ssh:
        print(
            f"qnet-tui {verb}: {printable(node)} runs on host {machine}, which has no ssh: in hosts:; "
            f"run it there: qnet-tui {verb} FILE ... --host {machine}",
            file=sys.stderr,
        )
        return 1
    line = remote_line(host, [verb, "--host", machine, share_topology(str(t.name), machine), *argv[1:]])
    tty = verb in TTY_VERBS and os.isatty(sys.stdin.fileno())
    ssh = [*ssh_command(), "-o", "BatchMode=yes", "-t" if tty else "-T", host.ssh, line]
    if out is not None and out != "-":
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            print(f"qnet-tui {verb}: {out} exists; give a new file name", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"qnet-tui {verb}: cannot write {out}: {exc.strerror}", file=sys.stderr)
            return 1
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    sys.stdout.flush()
    # Ctrl-C ends ssh, and with it the verb there: even if this process was
    # started ignoring SIGINT (a shell's background job), which ssh would inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvp(ssh[0], ssh)
    except OSError as exc:
        print(f"qnet-tui {verb}: cannot run {ssh[0]}: {exc.strerror}", file=sys.stderr)
        return 1
