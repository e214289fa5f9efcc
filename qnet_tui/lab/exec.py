"""`qnet-tui exec FILE NODE -- CMD`: run a program inside a node of a running lab.

A guest's commands run in its namespace, with its hostname (in a UTS
namespace of the command's own); a guest NIC's run in its guest, with
QNET_IFNAME naming the NIC's interface there (eth0, eth1, ...)."""

from __future__ import annotations

import os
import sys

from qnet_tui.lab import netns
from qnet_tui.lab.ask import AskError, check_running, read_topology
from qnet_tui.lab.consoleclient import ConsoleClient, ConsoleError, run_command
from qnet_tui.model import guests, placement
from qnet_tui.model.diagnostics import printable
from qnet_tui.model.kinds import Kind

VM_EXEC_TIMEOUT_S = 60.0  # a command in a VM guest that has not ended by then is interrupted


def _fail(message: str, code: int = 1) -> int:
    print(f"qnet-tui exec: {printable(message)}", file=sys.stderr)
    return code


def _in_vm(file: str, lab: str, guest: str, cmd: list[str]) -> int:
    """Through the VM's console shell: its output, then its exit status as ours."""
    try:
        check_running(file, lab, "it enters the lab's VM guests")
    except AskError as exc:
        return _fail(str(exc))
    client = ConsoleClient(lab, guest)
    try:
        client.open()
        output, status = run_command(client, cmd, float(os.environ.get("QNET_EXEC_TIMEOUT", VM_EXEC_TIMEOUT_S)))
    except ConsoleError as exc:
        return _fail(f"{guest}: {exc}")
    finally:
        client.close()
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return status


def exec_in_lab(file: str, node_id: str, cmd: list[str], host: str | None = None) -> int:
    if not cmd:
        return _fail("give the command after --, as in: qnet-tui exec lab.yaml vm1 -- ping -c1 10.0.0.1", 2)
    try:
        t = read_topology(file, node_id, host=host)
    except AskError as exc:
        return _fail(str(exc))
    lab, node = str(t.name), t.nodes[node_id]
    runs_on = placement.machine_of(t).get(node_id, placement.THIS) if t.hosts is not None else placement.THIS
    if runs_on != (host or placement.THIS):
        return _fail(f"{node_id} runs on {placement.where(runs_on)}, not here")
    if node.is_qemu_vm:
        return _fail(f"{node_id} is a QEMU VM: run commands inside that VM")
    if node.kind is Kind.HOST_NIC and "interface" in node.attrs:
        return _fail(
            f"{node_id} lends this machine's interface {node.attrs['interface']} to the lab: it has no outside "
            "host to run commands in; use the hosts on that interface's network"
        )
    machine = guests.machine_of(t, node_id) if node.kind is Kind.GUEST_NIC else None
    if (node.kind is Kind.GUEST and node.get("vm") is True) or (machine is not None and machine.is_vm):
        return _in_vm(file, lab, machine.id if machine else node_id, cmd)
    hostname = None
    if node.kind is Kind.GUEST_NIC:
        machine = guests.machine_of(t, node_id)
        assert machine is not None  # a guest NIC, not a QEMU VM
        ns = netns.node_ns(lab, machine.id)
        os.environ["QNET_IFNAME"] = machine.ifname(node_id)
        hostname = machine.guest.get("hostname") if machine.guest is not None else None
    elif node.kind is Kind.GUEST:
        ns = netns.node_ns(lab, node_id)
        hostname = node.get("hostname")
    elif node.kind is Kind.HOST_NIC:
        ns = netns.node_ns(lab, node_id)  # the host NIC's outside host
    elif node.kind in (Kind.BRIDGE, Kind.TAP):
        ns = netns.host_ns(lab)
    else:
        return _fail(
            f"{node_id} is a {node.kind.title}: it has no namespace; commands run in guests, guest NICs (their "
            "guest), host NICs (their outside host), bridges and taps (the lab's host side)"
        )
    try:
        check_running(file, lab, "it enters the lab's network namespaces")
    except AskError as exc:
        return _fail(str(exc))
    if ns not in netns.existing():
        return _fail(f"lab {lab} is running but has no namespace {ns}")
    # Become the command (no child to outlive us or to pass signals on to):
    # enter the namespace, then exec.
    try:
        netns.enter(ns)
    except OSError as exc:
        return _fail(
            f"cannot enter {ns}: {exc.strerror} (was the lab started in another mount namespace, "
            "as `ip netns exec` makes?)"
        )
    if isinstance(hostname, str):
        try:
            netns.own_hostname(hostname)
        except OSError as exc:
            return _fail(f"cannot give the command {node_id}'s hostname {hostname}: {exc.strerror}")
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        return _fail(f"command not found: {cmd[0]}", 127)
    except PermissionError:
        return _fail(f"permission denied: {cmd[0]}", 126)
    except OSError as exc:
        return _fail(f"cannot run {cmd[0]}: {exc.strerror}", 126)
