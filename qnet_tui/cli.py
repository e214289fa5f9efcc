"""The command line: `qnet-tui [FILE]` opens the editor; subcommands do the rest."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qnet_tui import __version__

if TYPE_CHECKING:
    from qnet_tui.model.yamlio import Document

PROG = "qnet-tui"

COMMANDS: dict[str, str] = {
    "validate": "check topology files; one line per problem, exit 1 on any error",
    "run": "make a topology real in namespaces and forward its frames (headless)",
    "exec": "run a command inside a running lab, at a guest NIC, a host NIC, a bridge or a tap",
    "console": "attach this terminal to a VM guest's serial console in a running lab (Ctrl-] leaves)",
    "impair": "impair a link of a running lab both ways: delay, loss, dup, corrupt, reorder, rate ('none' lifts it)",
    "link": "take a link of a running lab down or up (a pulled cable), both ways or one",
    "apply": "change a running lab into what its file now says: only what differs changes",
    "capture": "stream pcapng of a running lab's hub (one interface per port) to stdout or a file, for Wireshark",
    "follow": "print a TCP or UDP conversation's payload, both ways and in order, while a running lab carries it",
    "qemu-args": "print the arguments that attach a QEMU VM to a 'qemu: true' guest NIC or a socket node",
    "import-qemu": "turn QEMU networking arguments (-- ARGS) into a topology file (-o FILE)",
    "export": "write a topology as containerlab YAML, a Mermaid diagram or Graphviz DOT (--to)",
    "import": "turn a containerlab topology (.clab.yml) or a GNS3 project (.gns3) into a topology file (-o OUT)",
    "guest-image": "build (or check) the built-in VM guest: a Debian cloud kernel and a busybox initramfs",
}

EX_SOFTWARE = 70  # sysexits.h: an internal error, never a verdict on the input
MAX_SHOWN = 200  # problems validate prints per file: past that, fixing the first ones comes first


def _epilog() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines) + f"\n\n'{PROG} COMMAND --help' tells more about a command."


ALLOW_HOST_HELP = (
    "let host NICs marked with 'interface:' borrow that interface of this machine while the lab runs "
    "(it is moved into the lab and given back, addresses and routes included, when the lab stops)"
)


def _tui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [-h] [--version] [--theme NAME] [--allow-host] [FILE]\n       {PROG} COMMAND ...",
        description="Draw QEMU-style virtual networks, make them real, and watch their traffic.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--theme", metavar="NAME", help="the colour theme to start with")
    parser.add_argument("--allow-host", action="store_true", help=ALLOW_HOST_HELP)
    parser.add_argument("file", nargs="?", metavar="FILE", help="topology file to open (a new one if absent)")
    return parser


LEASE_DEFAULT = 10.0  # lab/remote.py's LEASE_S: the parser is built without importing the worker


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (nan or inf would spin the loop or never end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number of seconds")
    return value


# Examples under a command's help, where its arguments need showing.
EXAMPLES: dict[str, str] = {
    "exec": f"example:\n  sudo {PROG} exec lab.yaml vm1 -- ping -c 3 10.0.0.1",
    "console": (
        "what the console printed before is shown first (the last 64 KiB); the whole of it is in\n"
        f"/run/qnet-tui/LAB/GUEST.console.log while the lab runs.\nexample:\n  sudo {PROG} console lab.yaml router"
    ),
    "link": (
        "down both ways: the ends lose carrier (NO-CARRIER in a guest); one direction: frames that way are\n"
        f"dropped (counted as link-down) and carrier stays.\nexamples:\n  sudo {PROG} link lab.yaml hub1 vm2 down\n"
        f"  sudo {PROG} link lab.yaml hub1 vm2 down --direction hub1-vm2"
    ),
    "apply": (
        "what the change leaves alone keeps forwarding; a node whose settings change is made anew (a VM\n"
        "guest restarts); links move ports between hubs. The lab's name and lent host interfaces need a\n"
        f"restart.\nexamples:\n  sudo {PROG} apply lab.yaml --dry-run\n  sudo {PROG} apply lab.yaml"
    ),
    "qemu-args": (
        "needs QEMU 7.2 or newer (-netdev stream and dgram); start the lab first, then paste the\n"
        f"arguments into the VM's command line:\n  sudo {PROG} qemu-args lab.yaml vm2"
    ),
    "impair": (
        "SPEC is a whole impairment: what it leaves out is off, 'none' turns everything off.\n"
        "keys: delay=50ms jitter=5ms loss=1% ge=P,R[,BAD[,GOOD]] (Gilbert-Elliott bursts) dup=1% corrupt=0.1%\n"
        "      reorder=25% (needs a delay) rate=10mbit limit=1000 (frames queued, delayed ones included)\n"
        f"example:\n  sudo {PROG} impair lab.yaml hub0 vm1 delay=50ms loss=1%\n"
        f"  sudo {PROG} impair lab.yaml hub0 vm1 none"
    ),
    "capture": (
        "NODE is a hub, a node on one hub (its hub), or an end of a direct peer pair (the pair). Each port\n"
        "is an interface of its own (Wireshark: frame.interface_name); frames an emulated fault dropped are\n"
        "there with a comment (frame.comment). A reader too slow for the lab misses frames: the next frame\n"
        "written says how many. Runs until Ctrl-C, the lab stops, or the reader goes.\n"
        "--ring S keeps the last S seconds in memory (at most 256 MiB of frames) instead, and writes them\n"
        "to -w FILE (last.pcapng, then last-2.pcapng ...) on Enter or SIGUSR1, as often as asked.\n"
        f"examples:\n  sudo {PROG} capture lab.yaml hub1 | tshark -r -\n"
        f"  sudo {PROG} capture lab.yaml vm1 | wireshark -k -i -\n"
        f"  sudo {PROG} capture lab.yaml hub1 -w hub1.pcapng --filter 'icmp or arp'\n"
        f"  sudo {PROG} capture lab.yaml hub1 --ring 30 -w last.pcapng"
    ),
    "follow": (
        "NODE is a hub, or a node on one hub (its hub). A and B are the two ends, ADDRESS:PORT ([fd00::1]:80 for\n"
        "IPv6). What crosses the hub from now on is shown: a line '==> END' each time the other side sends, and\n"
        "the bytes (no text: dots); --raw a writes what A sent, byte for byte. Runs until Ctrl-C or the lab stops.\n"
        f"example:\n  sudo {PROG} follow lab.yaml hub1 tcp 10.0.0.1:40000 10.0.0.2:80\n"
        f"  sudo {PROG} follow lab.yaml vm2 udp 10.0.0.2:5353 10.0.0.1:5000 --raw b > answers.bin"
    ),
    "import-qemu": f"example:\n  {PROG} import-qemu -o lab.yaml -- -netdev tap,id=t0 -device e1000,netdev=t0",
    "export": (
        "clab: guests and stand-in host NICs as linux nodes (alpine:latest; addresses, MACs and routes as exec\n"
        "commands), hubs and bridges as bridge nodes, links as endpoints. mermaid: graph LR, kinds as shapes,\n"
        "VLANs as subgraphs. dot: an undirected Graphviz graph, VLANs as clusters. What the format has no\n"
        "word for is reported on stderr, one line per element, and left out.\n"
        f"examples:\n  {PROG} export lab.yaml --to clab -o lab.clab.yml\n"
        f"  {PROG} export lab.yaml --to mermaid\n"
        f"  {PROG} export lab.yaml --to dot | dot -Tsvg > lab.svg"
    ),
    "import": (
        "containerlab: linux nodes become guests, bridges hubs, links between two nodes hubs of two ports;\n"
        "'ip addr add', 'ip link set IF address', 'ip route add default via' exec lines give the NICs their\n"
        "addresses, MACs and default routes. GNS3: qemu and vpcs nodes become guests, hubs and switches hubs,\n"
        "clouds host NICs. What has no equivalent is reported, one line per element.\n"
        f"examples:\n  {PROG} import lab.clab.yml -o lab.yaml\n  {PROG} import project.gns3 -o lab.yaml"
    ),
    "guest-image": (
        "downloads linux-image-cloud-amd64's kernel and busybox-static with apt-get (unpacked, never installed;\n"
        "needs 'apt-get update' done once) into /var/cache/qnet-tui/guest (as root; QNET_CACHE_DIR overrides);\n"
        "built again when a package or the guest's /init changes. It also says whether VMs get KVM or TCG.\n"
        f"example:\n  sudo {PROG} guest-image"
    ),
}


def _command_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {name}",
        description=COMMANDS[name],
        epilog=EXAMPLES.get(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if name == "validate":
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("-q", "--quiet", action="store_true", help="no summary line per file")
        parser.add_argument(
            "--all", action="store_true", help=f"every problem (without it, the first {MAX_SHOWN} of each file)"
        )
    elif name == "run":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds")
        parser.add_argument("--json", action="store_true", help="statistics as one JSON object per line")
        parser.add_argument("--interval", type=_seconds, default=1.0, metavar="S", help="seconds between statistics")
        parser.add_argument("--allow-host", action="store_true", help=ALLOW_HOST_HELP)
        parser.add_argument(
            "--scenario", metavar="NAME", help="play the file's scenario NAME once the lab runs (see scenarios: in it)"
        )
        parser.add_argument(
            "--host", metavar="NAME", help="run only host NAME's share of a lab across machines (hosts: in FILE)"
        )
        parser.add_argument(
            "--controller",
            metavar="ADDRESS",
            help="with --host: the underlay address of the machine that runs the nodes without host:",
        )
        parser.add_argument(
            "--lease",
            type=_seconds,
            metavar="S",
            help="with --host: stop when the controller has not renewed for S seconds; "
            f"without: the lease given to the other machines' shares (default {LEASE_DEFAULT:g})",
        )
        # A share started by its controller: the controller's file name, for messages.
        parser.add_argument("--origin", metavar="FILE", help=argparse.SUPPRESS)
        # For the app, which runs the worker: stop the lab when the app dies, however it dies.
        parser.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    elif name == "exec":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument(
            "node",
            metavar="NODE",
            help="a guest NIC (its namespace), a host NIC (its outside host's namespace), "
            "or a bridge or tap (the lab's host side, where bridges and taps live)",
        )
        parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command and its arguments")
        parser.add_argument("--host", help=argparse.SUPPRESS)  # on the share of host NAME (lab/elsewhere.py)
    elif name == "apply":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    elif name == "capture":
        parser.add_argument("file", metavar="FILE", help="the topology file of a running lab")
        parser.add_argument("node", metavar="NODE", help="a hub, a node on one hub, or an end of a peer pair")
        parser.add_argument(
            "-w", dest="out", default="-", metavar="FILE|-", help="where the pcapng goes: a new file, or - for stdout"
        )
        parser.add_argument(
            "--ring",
            type=_seconds,
            metavar="SECONDS",
            help="keep the last SECONDS (at most 256 MiB) in memory; Enter or SIGUSR1 writes them to -w FILE",
        )
        parser.add_argument(
            "--filter", metavar="EXPR", help="a capture filter in tcpdump's syntax (libpcap's), e.g. 'icmp or arp'"
        )
        parser.add_argument("--host", help=argparse.SUPPRESS)
    elif name == "follow":
        parser.add_argument("file", metavar="FILE", help="the topology file of a running lab")
        parser.add_argument("node", metavar="NODE", help="a hub, or a node on one hub")
        parser.add_argument("proto", choices=("tcp", "udp"), metavar="PROTO", help="tcp or udp")
        parser.add_argument("a", metavar="A", help="one end, ADDRESS:PORT")
        parser.add_argument("b", metavar="B", help="the other end, ADDRESS:PORT")
        parser.add_argument("--raw", choices=("a", "b"), help="only what that end sent, byte for byte")
        parser.add_argument("--host", help=argparse.SUPPRESS)
    elif name == "console":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("guest", metavar="GUEST", help="a guest with vm: true (or one of its guest NICs)")
        parser.add_argument("--host", help=argparse.SUPPRESS)
    elif name == "impair":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("a", metavar="A", help="one end of the link")
        parser.add_argument("b", metavar="B", help="the other end")
        parser.add_argument("spec", nargs="+", metavar="SPEC", help="key=value ..., or none")
        parser.add_argument("--one-way", action="store_true", help="only frames from A to B (B to A keeps its own)")
    elif name == "link":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("a", metavar="A", help="one end of the link")
        parser.add_argument("b", metavar="B", help="the other end")
        parser.add_argument("state", choices=("down", "up"))
        parser.add_argument(
            "--direction", metavar="A-B|B-A", help="only the frames going that way (default: both ways)"
        )
    elif name == "qemu-args":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument(
            "node",
            nargs="?",
            metavar="NODE",
            help="a guest NIC marked 'qemu: true' or a socket node (default: every one of them)",
        )
    elif name == "import-qemu":
        parser.add_argument(
            "-o",
            "--output",
            required=True,
            metavar="FILE",
            help="the topology file to write; it must not exist yet, and its name names the lab",
        )
        parser.add_argument(
            "args",
            nargs=argparse.REMAINDER,
            metavar="-- ARGS",
            help="QEMU's networking arguments after --, as on its command line: -net nic|tap|socket|bridge,vlan=N, "
            "-nic, -netdev tap|bridge|socket|stream|dgram|hubport, -device MODEL,netdev=ID; "
            "what cannot be mapped is reported by its position",
        )
    elif name == "export":
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("--to", required=True, choices=("clab", "mermaid", "dot"), help="the format")
        parser.add_argument(
            "-o", "--output", metavar="OUT", help="the file to write; it must not exist yet (default: stdout)"
        )
    elif name == "import":
        parser.add_argument(
            "file", metavar="FILE", help="a containerlab topology (.clab.yml, .yml) or a GNS3 project (.gns3)"
        )
        parser.add_argument(
            "-o",
            "--output",
            required=True,
            metavar="OUT",
            help="the topology file to write; it must not exist yet",
        )
    elif name == "guest-image":
        parser.add_argument("--rebuild", action="store_true", help="build it again even if it is up to date")
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from qnet_tui.model.diagnostics import count_phrase, first_problems, has_errors, printable
    from qnet_tui.model.yamlio import load_file

    failed = False
    for name in args.files:
        diagnostics = load_file(name).diagnostics()
        shown = diagnostics if args.all else first_problems(diagnostics, MAX_SHOWN)
        for d in shown:
            print(d.format(name))
        if hidden := len(diagnostics) - len(shown):
            print(
                f"{printable(name)}: {hidden} more problem(s) not shown; {count_phrase(diagnostics)} in all "
                "(--all shows every one)",
                file=sys.stderr,
            )
        failed |= has_errors(diagnostics)
        if not args.quiet:
            verdict = "invalid" if has_errors(diagnostics) else "valid"
            print(f"{printable(name)}: {verdict}: {count_phrase(diagnostics)}", file=sys.stderr)
    return 1 if failed else 0


def _load_valid(
    file: str, command: str, outcome: str, text: str | None = None, name: str | None = None
) -> Document | None:
    """The document of file (or of text, named name) if it has no errors; else they are printed, placed."""
    from qnet_tui.model.diagnostics import printable
    from qnet_tui.model.yamlio import load_file, load_text

    doc = load_file(file) if text is None else load_text(text)
    shown = file if text is None else name or file
    errors = [d for d in doc.diagnostics() if d.is_error]
    if not errors:
        return doc
    for d in errors:
        print(d.format(shown), file=sys.stderr)
    print(f"{PROG} {command}: {printable(shown)} has errors; {outcome}", file=sys.stderr)
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from qnet_tui.lab.worker import Worker, run_worker
    from qnet_tui.model import placement

    if args.file == "-":  # a share started by its controller: the topology comes on stdin
        text = sys.stdin.read()
        file = args.origin or "<stdin>"
    else:
        text, file = None, str(Path(args.file).resolve())
    doc = _load_valid(args.file, "run", "nothing was started", text, file)
    if doc is None:
        return 1
    if args.host is not None and args.host not in placement.hosts(doc.topology):
        known = ", ".join(placement.hosts(doc.topology)) or f"none: {file} has no hosts: section"
        print(f"{PROG} run: --host {args.host}: no such host in {file} (its hosts: {known})", file=sys.stderr)
        return 1
    if args.host is None and args.controller is not None:
        print(f"{PROG} run: --controller goes with --host (a share of a lab across machines)", file=sys.stderr)
        return 1
    if text is None and doc.topology.hosts is not None:
        text = Path(args.file).read_text()  # what the other machines' shares are given
    worker = Worker(
        doc.topology,
        file,
        interval=args.interval,
        duration=args.duration,
        # A share its controller started reports over its control socket only.
        out=None if args.host is not None and args.lease is not None else sys.stdout,
        json_lines=args.json,
        allow_host=args.allow_host,
        scenario=args.scenario,
        host=args.host,
        controller=args.controller,
        lease=args.lease,
        text=text,
    )
    if args.exit_with_parent is not None:
        from qnet_tui.lab.worker import exit_with_parent

        exit_with_parent(args.exit_with_parent)
    return run_worker(worker)


def cmd_console(args: argparse.Namespace) -> int:
    from qnet_tui.lab.consoleclient import attach

    if args.host is None and (there := _elsewhere("console", args.guest, [args.file, args.guest])) is not None:
        return there
    return attach(args.file, args.guest, args.host)


def _elsewhere(verb: str, node: str, argv: list[str], out: str | None = None) -> int | None:
    """The verb on a node another machine runs: there, over ssh (lab/elsewhere.py); None: here."""
    from qnet_tui.lab.elsewhere import hop

    return hop(verb, node, argv, out)


def cmd_follow(args: argparse.Namespace) -> int:
    from qnet_tui.lab.followclient import follow_command

    if args.host is None:
        raw = ["--raw", args.raw] if args.raw else []
        there = _elsewhere("follow", args.node, [args.file, args.node, args.proto, args.a, args.b, *raw])
        if there is not None:
            return there
    return follow_command(args.file, args.node, args.proto, args.a, args.b, args.raw, args.host)


def cmd_capture(args: argparse.Namespace) -> int:
    from qnet_tui.lab.captureclient import capture_command

    if args.host is None:
        there_args = [args.file, args.node, "-w", "-", *(["--filter", args.filter] if args.filter else [])]
        # A ring is kept by the worker and written where it runs: there, not through ssh.
        if args.ring is None and (there := _elsewhere("capture", args.node, there_args, args.out)) is not None:
            return there
    return capture_command(args.file, args.node, args.out, args.ring, args.filter, args.host)


def cmd_exec(args: argparse.Namespace) -> int:
    from qnet_tui.lab.exec import exec_in_lab

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.host is None and cmd:
        there = _elsewhere("exec", args.node, [args.file, args.node, "--", *cmd])
        if there is not None:
            return there
    return exec_in_lab(args.file, args.node, cmd, args.host)


def cmd_impair(args: argparse.Namespace) -> int:
    from qnet_tui.lab.impairclient import impair_in_lab

    return impair_in_lab(args.file, args.a, args.b, args.spec, args.one_way)


def cmd_apply(args: argparse.Namespace) -> int:
    from qnet_tui.lab.applyclient import apply_file

    doc = _load_valid(args.file, "apply", "the lab was not changed")
    if doc is None:
        return 1
    return apply_file(args.file, doc, args.dry_run)


def cmd_link(args: argparse.Namespace) -> int:
    from qnet_tui.lab.linkclient import link_command

    return link_command(args.file, args.a, args.b, args.state, args.direction)


def cmd_qemu_args(args: argparse.Namespace) -> int:
    import shlex

    from qnet_tui import protocol
    from qnet_tui.model.diagnostics import printable
    from qnet_tui.model.edit import next_mac
    from qnet_tui.model.kinds import Kind
    from qnet_tui.model.qemu import QemuArgsError, device_args, netdev_args, vm_args

    doc = _load_valid(args.file, "qemu-args", "no arguments given")
    if doc is None:
        return 1
    if os.geteuid() != 0 and not os.environ.get("QNET_RUNTIME_DIR"):
        # Labs run as root and keep their sockets in root's private folder.
        print(
            f"{PROG} qemu-args: needs root: a lab's sockets are in {protocol.ROOT_RUNTIME}, which only root reaches; "
            f"run qemu-args (and QEMU) with sudo",
            file=sys.stderr,
        )
        return 1
    t = doc.topology
    vms = [n.id for n in t.of_kind(Kind.GUEST_NIC) if n.is_qemu_vm]
    nodes = [args.node] if args.node else vms + [n.id for n in t.of_kind(Kind.SOCKET)]
    if not nodes:
        print(
            f"{PROG} qemu-args: {printable(args.file)} has no QEMU guest NIC (qemu: true) and no socket node",
            file=sys.stderr,
        )
        return 1
    runtime = protocol.lab_dir(str(t.name))
    given: set[str] = set()
    for node in nodes:
        try:
            if node in vms:
                argv = vm_args(t, node, runtime)
            else:
                # A MAC per VM: each socket node's VM is a new NIC of the network.
                mac = next_mac(t, given)
                given.add(mac)
                argv = netdev_args(t, node, runtime) + device_args(node, mac=mac)
        except QemuArgsError as exc:
            print(f"{PROG} qemu-args: {exc}", file=sys.stderr)
            return 1
        if len(nodes) > 1:
            print(f"# {node}")
        print(shlex.join(argv))
    return 0


def _read_back(out: Path) -> tuple[int, str]:
    """What validation says of a file an import wrote, placed in it as written:
    the errors, and the words that say so after "wrote OUT"."""
    from qnet_tui.model.yamlio import load_file

    diagnostics = load_file(out).diagnostics()
    for d in diagnostics:
        print(d.format(str(out)), file=sys.stderr)
    errors = sum(d.is_error for d in diagnostics)
    return errors, f"; it has {errors} error(s), above: fix them before running it" if errors else ""


def cmd_import_qemu(args: argparse.Namespace) -> int:
    import re

    from qnet_tui.model.diagnostics import printable
    from qnet_tui.model.qemu import import_args
    from qnet_tui.model.yamlio import SaveError, new_document

    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    out = Path(args.output)
    if out.exists():
        print(f"{PROG} import-qemu: {printable(str(out))} exists; give a new file name", file=sys.stderr)
        return 1
    notes: list[str] = []
    topology, problems = import_args(argv, notes)
    topology.name = re.sub(r"[^A-Za-z0-9_-]", "-", out.stem)[:32].strip("-") or "imported"
    for problem in problems + notes:
        print(f"{PROG} import-qemu: {printable(problem)}", file=sys.stderr)
    if not topology.nodes:
        print(f"{PROG} import-qemu: no networking found in the arguments; nothing written", file=sys.stderr)
        return 1
    doc = new_document(topology, out)
    try:
        doc.save()
    except SaveError as exc:
        print(f"{PROG} import-qemu: {exc}", file=sys.stderr)
        return 1
    errors, verdict = _read_back(out)
    print(
        f"{PROG} import-qemu: wrote {printable(str(out))}: {len(topology.nodes)} nodes, "
        f"{len(topology.links)} links{verdict}",
        file=sys.stderr,
    )
    return 1 if errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from qnet_tui.model.atomic import WriteFailed, atomic_write
    from qnet_tui.model.diagnostics import printable
    from qnet_tui.model.export import TITLES, export

    out = Path(args.output) if args.output else None
    if out is not None and out.exists():
        print(f"{PROG} export: {printable(str(out))} exists; give a new file name", file=sys.stderr)
        return 1
    doc = _load_valid(args.file, "export", "nothing was exported")
    if doc is None:
        return 1
    result = export(doc.topology, args.to, Path(args.file).name)
    for line in result.left_out:
        print(f"{PROG} export: {printable(line)}", file=sys.stderr)
    if not result.nodes:
        print(f"{PROG} export: nothing in {printable(args.file)} has a {TITLES[args.to]} equivalent", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.write(result.text)
        return 0
    try:
        atomic_write(out, result.text.encode())
    except WriteFailed as exc:
        print(f"{PROG} export: cannot write {printable(str(out))}: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG} export: wrote {printable(str(out))} ({TITLES[args.to]})", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from qnet_tui.model.atomic import WriteFailed, atomic_write
    from qnet_tui.model.diagnostics import printable
    from qnet_tui.model.importers import CLAB_SUFFIXES, GNS3_SUFFIXES, ImportFailed, dumps, format_of, import_path

    def say(text: str) -> None:
        print(f"{PROG} import: {printable(text)}", file=sys.stderr)

    source, out = Path(args.file), Path(args.output)
    if format_of(source) is None:
        kinds = f"containerlab ({', '.join(CLAB_SUFFIXES)}) or GNS3 ({', '.join(GNS3_SUFFIXES)})"
        say(f"{source}: not a format import reads: {kinds}")
        return 1
    if out.exists():
        say(f"{out} exists; give a new file name")
        return 1
    try:
        imported = import_path(source)
    except ImportFailed as exc:
        say(exc.at(str(source)))
        return 1
    for line in imported.report:
        say(line)
    t = imported.topology
    if not t.nodes:
        say(f"{source}: nothing that maps onto a topology; nothing written")
        return 1
    try:
        atomic_write(out, dumps(imported, source.name).encode())
    except WriteFailed as exc:
        say(f"cannot write {out}: {exc}")
        return 1
    errors, verdict = _read_back(out)
    left = f", {len(imported.report)} element(s) left out or changed (above)" if imported.report else ""
    say(f"wrote {out}: {len(t.nodes)} nodes, {len(t.links)} links{left}{verdict}")
    return 1 if errors else 0


def cmd_guest_image(args: argparse.Namespace) -> int:
    from qnet_tui.lab import accel, guestimage

    def log(text: str) -> None:
        print(f"{PROG} guest-image: {text}", file=sys.stderr, flush=True)

    try:
        image = guestimage.ensure(rebuild=args.rebuild, log=log)
    except guestimage.GuestImageError as exc:
        log(f"error: {exc}")
        return 1
    m = image.manifest
    print(f"kernel  {image.kernel}  ({m.get('kernel_package')} {m.get('kernel_version')})")
    print(f"initrd  {image.initrd}  (busybox-static {m.get('busybox_version')}; {' '.join(m.get('modules', []))})")
    print(f"accel   {accel.probe()}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "run": cmd_run,
    "exec": cmd_exec,
    "console": cmd_console,
    "impair": cmd_impair,
    "link": cmd_link,
    "apply": cmd_apply,
    "capture": cmd_capture,
    "follow": cmd_follow,
    "qemu-args": cmd_qemu_args,
    "import-qemu": cmd_import_qemu,
    "export": cmd_export,
    "import": cmd_import,
    "guest-image": cmd_guest_image,
}


def cmd_tui(args: argparse.Namespace) -> int:
    from qnet_tui.ui.app import run_app

    return run_app(args.file, theme=args.theme, allow_host=args.allow_host)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            args = _command_parser(argv[0]).parse_args(argv[1:])
            return HANDLERS[argv[0]](args)
        return cmd_tui(_tui_parser().parse_args(argv))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EX_SOFTWARE
