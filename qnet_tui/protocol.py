"""What the worker and its clients (the TUI, `qnet-tui exec`, tests) share:
where a running lab keeps its files, and the messages on its control socket.

The control socket speaks JSON, one object per line, each with a "type"; each
type is a dataclass below, and `decode` checks a line against its fields
(nested statistics included) before anyone reads it:

worker -> client
  hello    Hello    first, on connect
  state    State    the lab's LabState and why
  stats    Stats    every tick: per VLAN and direct peer pair, HubStats (a
                    lab across machines: all of them merged, and `machines`)
  samples  Samples  decoded frames since the last tick
  log      Log      what the worker logs (info, warning, error)
  error    Error    the client's last message was refused, and why
  console_output  ConsoleOutput  what a VM guest's serial console printed
                    (to the clients that watch it; the scrollback first)
  impaired Impaired  a link's impairments now, both ways (to the client
                    whose `impair` set them)
  link_state  LinkState  a link's state, to the client that set it
  applied  Applied  what an `apply` changes (or would), to the client that asked
  scenario_state  ScenarioState  a scenario started, played a step, ended or
                    was stopped (to every client); stats carry it each tick
  capturing  Capturing  a `capture_stream` started: the hub and its ports
                    (to the client that asked, once its filter compiled)
  capture_saved  CaptureSaved  what a `capture_save` wrote, once it is
                    written whole (the lab goes on meanwhile: lab/jobs.py)
  capture_ended  CaptureEnded  a stream or ring ended for another reason than
                    its client going (the hub went, the lab stops, a write
                    failed): frames written and missed
  followed Followed  a followed conversation's payload since the last tick
                    (to the client that follows it; the first one, empty,
                    says it started)
client -> worker
  stop     Stop     stop the lab and exit
  lease    Lease    from a controller to its share on another machine: run
                    `seconds` more (a share started with --lease stops when
                    its lease runs out: lab/machines.py)
  capture  Capture  start a pcapng capture of a hub (VLAN or peer pair);
                    path None stops it. The path must not exist yet; filter:
                    tcpdump's syntax (qnet_tui/pcapfilter.py), None: all
  capture_stream  CaptureStream  stream pcapng of a node's hub into a pipe
                    whose write end comes with the message (SCM_RIGHTS);
                    with ring, no pipe: the worker keeps the last `ring`
                    seconds. Either lasts as long as this client's
                    connection (or the hub, or the lab)
  capture_save  CaptureSave  write this client's ring of a hub to a new file
  follow   Follow   follow a TCP or UDP flow of a hub: its payload both ways,
                    in order, as `followed` (proto None: stop); as long as
                    this client's connection
  vm       VmControl  restart a VM guest (a dead one too)
  console  Console  watch (or stop watching) a VM guest's serial console
  console_input  ConsoleInput  bytes typed into it
  impair   Impair   set a link's impairment (lab/impair.py's text form, or
                    "none") from a to b, and from b to a unless one_way
  link     Link     take a link (or one direction of it) down or up
  apply    Apply    change the running lab into a topology (a file's text):
                    only what differs; dry_run only says what that is
  scenario Scenario play one of the file's scenarios (name None: stop the
                    one playing, putting back what it changed)

A line that is not one of these decodes to a Malformed value, never an
exception. The worker answers a malformed or refused client message with an
`error` and goes on; a line over MAX_CLIENT_LINE bytes also ends that
client's connection.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, NotRequired, TypedDict

PROTOCOL_VERSION = 2
MAX_LINE = 4 * 1024 * 1024  # a stats line of a large lab is well under this
MAX_CLIENT_LINE = 4 * 1024 * 1024  # an `apply` carries a whole topology file


class ProtocolError(Exception):
    """A line too long for a LineBuffer (the connection cannot go on)."""


# -- where a lab keeps its files ---------------------------------------------------

ROOT_RUNTIME = Path("/run/qnet-tui")


def runtime_root() -> Path:
    """Where running labs keep their lock, state and control socket."""
    override = os.environ.get("QNET_RUNTIME_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return ROOT_RUNTIME
    return Path(os.environ.get("XDG_RUNTIME_DIR", f"/tmp/qnet-tui-{os.geteuid()}")) / "qnet-tui"


def lab_dir(lab: str) -> Path:
    return runtime_root() / lab


def control_path(lab: str) -> Path:
    return lab_dir(lab) / "control.sock"


def topology_path(lab: str) -> Path:
    """A share of a lab across machines keeps the file it was given here."""
    return lab_dir(lab) / "topology.yaml"


def state_path(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def lock_path(lab: str) -> Path:
    return lab_dir(lab) / "lock"


# -- the shapes of a message's fields --------------------------------------------------
# A shape is a Python type, a tuple of types, a dict of field -> shape (a JSON
# object with those fields, others allowed), or one of the classes below.


@dataclass(frozen=True)
class Opt:
    """Missing or null, or of this shape."""

    shape: Any


@dataclass(frozen=True)
class MapOf:
    """A JSON object of any keys whose values have this shape."""

    shape: Any


@dataclass(frozen=True)
class ListOf:
    shape: Any


NUMBER = (int, float)


class Invalid(Exception):
    pass


def _names(t: Any) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true or false"}[x] for x in types)


def _kind(value: Any) -> str:
    if isinstance(value, (bool, int, float, str)):
        return _names(type(value))
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def check(value: Any, shape: Any, where: str) -> None:
    """Raise Invalid naming the first place where value does not fit shape."""
    if isinstance(shape, Opt):
        if value is not None:
            check(value, shape.shape, where)
    elif isinstance(shape, dict):
        if not isinstance(value, dict):
            raise Invalid(f"{where} is {_kind(value)}, not an object")
        for key, sub in shape.items():
            if key not in value and not isinstance(sub, Opt):
                raise Invalid(f"{where} has no {key!r}")
            check(value.get(key), sub, f"{where}.{key}")
    elif isinstance(shape, MapOf):
        if not isinstance(value, dict):
            raise Invalid(f"{where} is {_kind(value)}, not an object")
        for key, item in value.items():
            check(item, shape.shape, f"{where}[{json.dumps(key)[:40]}]")
    elif isinstance(shape, ListOf):
        if not isinstance(value, list):
            raise Invalid(f"{where} is {_kind(value)}, not a list")
        for i, item in enumerate(value):
            check(item, shape.shape, f"{where}[{i}]")
    elif isinstance(value, bool) and shape is not bool and not (isinstance(shape, tuple) and bool in shape):
        raise Invalid(f"{where} is {_kind(value)}, not {_names(shape)}")  # JSON true is no number
    elif not isinstance(value, shape):
        raise Invalid(f"{where} is {_kind(value)}, not {_names(shape)}")


# -- statistics ----------------------------------------------------------------------


class CaptureStats(TypedDict):
    path: str
    frames: int
    bytes: int


class PortStats(TypedDict):
    kind: str  # tap, stream, dgram, vxlan
    connected: bool  # a stream socket: whether its peer is there
    rx_frames: int
    rx_bytes: int
    tx_frames: int
    tx_bytes: int
    drops: int
    drop_reasons: dict[str, int]
    looped: bool  # cut because it closed a loop
    # A remote port (lab/vxlan.py): the peer machine's address, the VNI, the
    # path MTU (largest IP datagram) and whether a probe found it (else the route's).
    peer: NotRequired[str]
    vni: NotRequired[int]
    pmtu: NotRequired[int | None]
    probed: NotRequired[bool]
    # Super-frames it sent in chunks and put together (a hub with virtio-net headers).
    tx_superframes: NotRequired[int]
    rx_superframes: NotRequired[int]


# A flow's `proto`: these by name, any other IP protocol number N as "ip-N".
IP_PROTOCOLS = {
    0: "hopopt",  # an IPv6 hop-by-hop header (MLD reports sit behind one)
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    47: "gre",
    50: "esp",
    58: "icmpv6",
    89: "ospf",
    112: "vrrp",
    132: "sctp",
}


class ConversationRow(TypedDict):
    a: str  # MACs (pairs) or IPv4/IPv6 addresses (flows); a: the side seen sending first (to a tick)
    b: str
    a_node: str | None  # the topology's node ids for them, or None
    b_node: str | None
    proto: str | None  # flows: a name of IP_PROTOCOLS, or ip-<n>; pairs: None
    a_port: int | None  # tcp/udp ports of a and b, else None
    b_port: int | None
    frames: int  # totals both ways
    bytes: int
    fps: float  # rates over the last tick
    bps: float
    first: float  # unix times, first and last seen
    last: float


class ConversationRest(TypedDict):
    count: int  # conversations not in the lists, and their sums
    frames: int
    bytes: int
    fps: float
    bps: float


class ConversationOthers(TypedDict):
    pairs: ConversationRest
    flows: ConversationRest


class Conversations(TypedDict):
    pairs: list[ConversationRow]  # MAC pairs, the top ones by bytes (at most 50), any order
    flows: list[ConversationRow]  # IP flows, likewise
    others: ConversationOthers


class HubStats(TypedDict):
    hub: str  # the worker's name of the hub (a pair's: its two ends)
    forwarding: str  # worker, or kernel (a Linux bridge floods for it)
    capture: CaptureStats | None
    frames: int
    bytes: int
    drops: int
    protocols: dict[str, int]
    ports: dict[str, PortStats]
    fps: float
    bps: float  # bits per second
    conversations: NotRequired[Conversations | None]  # counted for every frame (lab/conversations.py)
    checks: NotRequired[list[Check] | None]  # what its frames say that the topology does not (lab/checks.py)


class Check(TypedDict):
    """A finding of the topology-aware checks, kept while the lab runs."""

    kind: str  # foreign-mac, duplicate-mac, duplicate-ip, rogue-dhcp, arp-conflict, nd-conflict
    message: str  # for people, naming nodes: "vm2 sends from 52:54:00:00:00:01, vm1's MAC"
    ports: list[str]  # the hub's ports it was seen on
    nodes: list[str]  # the topology's nodes involved (ports, and whose MAC or address it is)
    mac: str | None  # the MAC at fault, if one is
    address: str | None  # the IPv4/IPv6 address, if one is
    count: int  # the frames that make it (the intruder's, not the owner's)
    first: float  # unix times: first seen, last grew
    last: float


class Sample(TypedDict):
    time: float
    hub: str
    vlan: int | None  # None: a direct peer pair
    port: str  # where the frame came in
    length: int
    summary: str
    hex: str


PORT_SHAPE = {
    "kind": str,
    "connected": bool,
    "rx_frames": int,
    "rx_bytes": int,
    "tx_frames": int,
    "tx_bytes": int,
    "drops": int,
    "drop_reasons": MapOf(int),
    "looped": bool,
    "peer": Opt(str),
    "vni": Opt(int),
    "pmtu": Opt(int),
    "probed": Opt(bool),
    "tx_superframes": Opt(int),
    "rx_superframes": Opt(int),
}
CONVERSATION_SHAPE = {
    "a": str,
    "b": str,
    "a_node": Opt(str),
    "b_node": Opt(str),
    "proto": Opt(str),
    "a_port": Opt(int),
    "b_port": Opt(int),
    "frames": int,
    "bytes": int,
    "fps": NUMBER,
    "bps": NUMBER,
    "first": NUMBER,
    "last": NUMBER,
}
REST_SHAPE = {"count": int, "frames": int, "bytes": int, "fps": NUMBER, "bps": NUMBER}
CONVERSATIONS_SHAPE = {
    "pairs": ListOf(CONVERSATION_SHAPE),
    "flows": ListOf(CONVERSATION_SHAPE),
    "others": {"pairs": REST_SHAPE, "flows": REST_SHAPE},
}
CHECK_SHAPE = {
    "kind": str,
    "message": str,
    "ports": ListOf(str),
    "nodes": ListOf(str),
    "mac": Opt(str),
    "address": Opt(str),
    "count": int,
    "first": NUMBER,
    "last": NUMBER,
}
HUB_SHAPE = {
    "hub": str,
    "forwarding": str,
    "capture": Opt({"path": str, "frames": int, "bytes": int}),
    "frames": int,
    "bytes": int,
    "drops": int,
    "protocols": MapOf(int),
    "ports": MapOf(PORT_SHAPE),
    "fps": NUMBER,
    "bps": NUMBER,
    "conversations": Opt(CONVERSATIONS_SHAPE),
    "checks": Opt(ListOf(CHECK_SHAPE)),
}


class VmStats(TypedDict):
    state: str  # starting, booting (the built-in guest, until it is ready), running, paused, stopped, crashed
    reason: str | None
    accel: str  # kvm, tcg
    links: dict[str, bool]  # per NIC: up as the guest sees it


VM_SHAPE = {"state": str, "reason": Opt(str), "accel": str, "links": MapOf(bool)}


class LinkStats(TypedDict):
    a: str  # the link's ends, in the file's order
    b: str
    a_b: bool  # frames from a to b pass
    b_a: bool


LINK_SHAPE = {"a": str, "b": str, "a_b": bool, "b_a": bool}


class ImpairStats(TypedDict):
    a: str  # frames from a to b are impaired
    b: str
    spec: str  # the text form (model/impairment.py)


IMPAIR_SHAPE = {"a": str, "b": str, "spec": str}


class ScenarioStatus(TypedDict):
    name: str
    state: str  # running, ended, stopped
    elapsed: float  # seconds since it started
    duration: float  # when it ends
    step: int  # how many of its steps have started (0: none yet)
    steps: int
    doing: str  # what the last step did, for people


SCENARIO_SHAPE = {
    "name": str,
    "state": str,
    "elapsed": NUMBER,
    "duration": NUMBER,
    "step": int,
    "steps": int,
    "doing": str,
}


class MachineStats(TypedDict):
    """A machine running a share of the lab (hosts: in the file), as its controller sees it."""

    state: str  # starting, running, gone (its share stopped or its connection broke), stopped
    address: str | None  # its underlay address (where its VXLAN goes)
    reason: str | None  # why it is gone


MACHINE_SHAPE = {"state": str, "address": Opt(str), "reason": Opt(str)}
SAMPLE_SHAPE = {
    "time": NUMBER,
    "hub": str,
    "vlan": Opt(int),
    "port": str,
    "length": int,
    "summary": str,
    "hex": str,
}


# -- the messages ------------------------------------------------------------------------


class LabState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str]
    SHAPE: ClassVar[dict[str, Any]] = {}

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Hello(Message):
    TYPE = "hello"
    SHAPE: ClassVar[dict[str, Any]] = {"lab": str, "file": Opt(str), "pid": int, "protocol": int}
    lab: str
    file: str | None
    pid: int
    protocol: int


@dataclass(frozen=True)
class State(Message):
    TYPE = "state"
    SHAPE: ClassVar[dict[str, Any]] = {"state": str, "reason": Opt(str)}
    state: LabState
    reason: str | None = None


@dataclass(frozen=True)
class Stats(Message):
    TYPE = "stats"
    SHAPE: ClassVar[dict[str, Any]] = {
        "time": NUMBER,
        "lab": str,
        "vlans": MapOf(HUB_SHAPE),
        "peers": MapOf(HUB_SHAPE),
        "vms": Opt(MapOf(VM_SHAPE)),
        "links": Opt(ListOf(LINK_SHAPE)),
        "scenario": Opt(SCENARIO_SHAPE),
        "impaired": Opt(ListOf(IMPAIR_SHAPE)),
        "machines": Opt(MapOf(MACHINE_SHAPE)),
    }
    time: float
    lab: str
    vlans: dict[str, HubStats]  # by VLAN number (a string: JSON keys are)
    peers: dict[str, HubStats]  # direct peer pairs, by the pair's name
    vms: dict[str, VmStats] | None = None  # VM guests, by guest
    links: list[LinkStats] | None = None  # the links with a direction down (pulled cables)
    scenario: ScenarioStatus | None = None  # the scenario playing
    impaired: list[ImpairStats] | None = None  # the link directions impaired now, however they were set
    machines: dict[str, MachineStats] | None = None  # the other machines of a lab across machines, by host

    @property
    def hubs(self) -> list[HubStats]:
        return [*self.vlans.values(), *self.peers.values()]


@dataclass(frozen=True)
class Samples(Message):
    TYPE = "samples"
    SHAPE: ClassVar[dict[str, Any]] = {"samples": ListOf(SAMPLE_SHAPE)}
    samples: list[Sample]


@dataclass(frozen=True)
class Log(Message):
    TYPE = "log"
    SHAPE: ClassVar[dict[str, Any]] = {"level": str, "message": str}
    LEVELS: ClassVar[frozenset[str]] = frozenset({"info", "warning", "error"})
    level: str
    message: str


@dataclass(frozen=True)
class Error(Message):
    TYPE = "error"
    SHAPE: ClassVar[dict[str, Any]] = {"message": str}
    message: str


@dataclass(frozen=True)
class Stop(Message):
    TYPE = "stop"


@dataclass(frozen=True)
class Lease(Message):
    """From a controller to a share of its lab on another machine: keep running
    for `seconds` more. A share started with a lease stops itself when it runs out."""

    TYPE = "lease"
    SHAPE: ClassVar[dict[str, Any]] = {"seconds": NUMBER}
    seconds: float


@dataclass(frozen=True)
class Capture(Message):
    TYPE = "capture"
    SHAPE: ClassVar[dict[str, Any]] = {"hub": str, "path": Opt(str), "filter": Opt(str)}
    hub: str
    path: str | None = None
    filter: str | None = None


@dataclass(frozen=True)
class CaptureStream(Message):
    TYPE = "capture_stream"
    SHAPE: ClassVar[dict[str, Any]] = {"node": str, "filter": Opt(str), "ring": Opt(NUMBER)}
    node: str  # a hub, or a node on exactly one hub (a pair's end: the pair)
    filter: str | None = None
    ring: float | None = None  # seconds to keep, instead of a pipe


@dataclass(frozen=True)
class CaptureSave(Message):
    TYPE = "capture_save"
    SHAPE: ClassVar[dict[str, Any]] = {"hub": str, "path": str}
    hub: str
    path: str  # absolute; must not exist yet


@dataclass(frozen=True)
class Capturing(Message):
    TYPE = "capturing"
    SHAPE: ClassVar[dict[str, Any]] = {"hub": str, "ports": ListOf(str), "ring": Opt(NUMBER)}
    hub: str
    ports: list[str]
    ring: float | None = None


@dataclass(frozen=True)
class CaptureSaved(Message):
    TYPE = "capture_saved"
    SHAPE: ClassVar[dict[str, Any]] = {"hub": str, "path": str, "frames": int, "bytes": int, "seconds": NUMBER}
    hub: str
    path: str
    frames: int
    bytes: int
    seconds: float  # the ring's window


@dataclass(frozen=True)
class CaptureEnded(Message):
    TYPE = "capture_ended"
    SHAPE: ClassVar[dict[str, Any]] = {"hub": str, "reason": str, "frames": int, "missed": int}
    hub: str
    reason: str
    frames: int
    missed: int  # frames the reader was too slow for


@dataclass(frozen=True)
class Follow(Message):
    TYPE = "follow"
    SHAPE: ClassVar[dict[str, Any]] = {
        "hub": str,
        "proto": Opt(str),
        "a": Opt(str),
        "a_port": Opt(int),
        "b": Opt(str),
        "b_port": Opt(int),
    }
    hub: str  # a hub, or a node on exactly one hub (a pair's end: the pair)
    proto: str | None = None  # tcp or udp; None stops following on this hub
    a: str | None = None  # IP addresses and ports of the two ends
    a_port: int | None = None
    b: str | None = None
    b_port: int | None = None


@dataclass(frozen=True)
class Followed(Message):
    TYPE = "followed"
    SHAPE: ClassVar[dict[str, Any]] = {
        "hub": str,
        "chunks": ListOf({"way": int, "data": str}),
        "frames": int,
        "full": ListOf(bool),
    }
    hub: str
    chunks: list[dict[str, Any]]  # in order: way 0 is a -> b, 1 is b -> a; data in base64
    frames: int  # the flow's frames seen since following began
    full: list[bool]  # per way: its payload reached the bound, no more is kept


@dataclass(frozen=True)
class ConsoleOutput(Message):
    TYPE = "console_output"
    SHAPE: ClassVar[dict[str, Any]] = {"guest": str, "data": str}
    guest: str
    data: str  # base64: a console's bytes need not be text

    @classmethod
    def of(cls, guest: str, data: bytes) -> ConsoleOutput:
        return cls(guest, base64.b64encode(data).decode())


@dataclass(frozen=True)
class VmControl(Message):
    TYPE = "vm"
    SHAPE: ClassVar[dict[str, Any]] = {"guest": str, "action": str}
    ACTIONS: ClassVar[tuple[str, ...]] = ("restart",)
    guest: str
    action: str = "restart"


@dataclass(frozen=True)
class Console(Message):
    TYPE = "console"
    SHAPE: ClassVar[dict[str, Any]] = {"guest": str, "watch": bool}
    guest: str
    watch: bool = True


@dataclass(frozen=True)
class ConsoleInput(Message):
    TYPE = "console_input"
    SHAPE: ClassVar[dict[str, Any]] = {"guest": str, "data": str}
    guest: str
    data: str  # base64

    @classmethod
    def of(cls, guest: str, data: bytes) -> ConsoleInput:
        return cls(guest, base64.b64encode(data).decode())


@dataclass(frozen=True)
class Impair(Message):
    TYPE = "impair"
    SHAPE: ClassVar[dict[str, Any]] = {"a": str, "b": str, "spec": str, "one_way": bool}
    a: str
    b: str
    spec: str  # e.g. "delay=50ms loss=1%"; a whole spec: what it leaves out is off
    one_way: bool = False


@dataclass(frozen=True)
class Impaired(Message):
    TYPE = "impaired"
    SHAPE: ClassVar[dict[str, Any]] = {"a": str, "b": str, "forward": str, "backward": str}
    a: str
    b: str
    forward: str  # a -> b, in the text form ("none" when off)
    backward: str  # b -> a


@dataclass(frozen=True)
class Link(Message):
    TYPE = "link"
    SHAPE: ClassVar[dict[str, Any]] = {"a": str, "b": str, "up": bool, "direction": Opt(str)}
    DIRECTIONS: ClassVar[tuple[str, ...]] = ("both", "a-b", "b-a")
    a: str
    b: str
    up: bool
    direction: str = "both"  # a-b: only frames from a to b; b-a: only from b to a


@dataclass(frozen=True)
class LinkState(Message):
    TYPE = "link_state"
    SHAPE: ClassVar[dict[str, Any]] = {"a": str, "b": str, "a_b": bool, "b_a": bool, "message": str}
    a: str  # as the client named them
    b: str
    a_b: bool
    b_a: bool
    message: str  # what was done, for people


@dataclass(frozen=True)
class Apply(Message):
    TYPE = "apply"
    SHAPE: ClassVar[dict[str, Any]] = {"topology": str, "dry_run": bool}
    topology: str  # a topology file's text (YAML)
    dry_run: bool = False


@dataclass(frozen=True)
class Applied(Message):
    TYPE = "applied"
    SHAPE: ClassVar[dict[str, Any]] = {"changes": ListOf(str), "applied": bool, "refusal": Opt(str)}
    changes: list[str]  # for people, a line each ("+ hub hub3", "~ vm1: ipv4 ... -> ..."); none: no difference
    applied: bool  # False: a dry run, no difference, or refused
    refusal: str | None = None  # why it cannot be applied to the running lab (a restart can)


@dataclass(frozen=True)
class Scenario(Message):
    TYPE = "scenario"
    SHAPE: ClassVar[dict[str, Any]] = {"name": Opt(str)}
    name: str | None = None  # None: stop the one playing


@dataclass(frozen=True)
class ScenarioState(Message):
    TYPE = "scenario_state"
    SHAPE: ClassVar[dict[str, Any]] = SCENARIO_SHAPE
    STATES: ClassVar[tuple[str, ...]] = ("running", "ended", "stopped")
    name: str
    state: str
    elapsed: float
    duration: float
    step: int
    steps: int
    doing: str


def unbase64(text: str) -> bytes | None:
    """The bytes of a console message's data; None if it is no base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


@dataclass(frozen=True)
class Malformed:
    """A line that is no message of the side it came from, and why."""

    reason: str


WorkerMessage = (
    Hello
    | State
    | Stats
    | Samples
    | Log
    | Error
    | ConsoleOutput
    | Impaired
    | LinkState
    | Applied
    | ScenarioState
    | Capturing
    | CaptureSaved
    | CaptureEnded
    | Followed
)
ClientMessage = (
    Stop
    | Lease
    | Capture
    | CaptureStream
    | CaptureSave
    | Follow
    | VmControl
    | Console
    | ConsoleInput
    | Impair
    | Link
    | Apply
    | Scenario
)
WORKER: Mapping[str, type[Message]] = {
    m.TYPE: m
    for m in (
        Hello,
        State,
        Stats,
        Samples,
        Log,
        Error,
        ConsoleOutput,
        Impaired,
        LinkState,
        Applied,
        ScenarioState,
        Capturing,
        CaptureSaved,
        CaptureEnded,
        Followed,
    )
}
CLIENT: Mapping[str, type[Message]] = {
    m.TYPE: m
    for m in (
        Stop,
        Lease,
        Capture,
        CaptureStream,
        CaptureSave,
        Follow,
        VmControl,
        Console,
        ConsoleInput,
        Impair,
        Link,
        Apply,
        Scenario,
    )
}


def encode(message: Message) -> bytes:
    return json.dumps({"type": message.TYPE, **message.fields()}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, side: Mapping[str, type[Message]]) -> Message | Malformed:
    """A line from the worker (side=WORKER) or a client (CLIENT) as its message,
    or Malformed saying what is wrong with it."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        return Malformed(f"not a JSON message: {exc}")
    except RecursionError:  # "[[[[..." nested past the interpreter's limit
        return Malformed("not a JSON message: nested too deeply")
    if not isinstance(msg, dict):
        return Malformed(f"a message is a JSON object, not {type(msg).__name__}")
    kind = msg.get("type")
    cls = side.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = json.dumps(kind)[:40] if isinstance(kind, (str, int, float, bool, type(None))) else type(kind).__name__
        return Malformed(f"unknown message type {shown}; known: {', '.join(sorted(side))}")
    try:
        check(msg, cls.SHAPE, kind)
        values = {f.name: msg.get(f.name) for f in dataclasses.fields(cls)}
        if cls is State:
            values["state"] = _enum(LabState, values["state"], "state.state")
        elif cls is VmControl and values["action"] not in VmControl.ACTIONS:
            raise Invalid(
                f"vm.action is {json.dumps(values['action'])[:40]}, not one of {', '.join(VmControl.ACTIONS)}"
            )
        elif cls is Link:
            values["direction"] = values["direction"] or "both"
            if values["direction"] not in Link.DIRECTIONS:
                raise Invalid(
                    f"link.direction is {json.dumps(values['direction'])[:40]}, not one of {', '.join(Link.DIRECTIONS)}"
                )
        elif cls is ScenarioState and values["state"] not in ScenarioState.STATES:
            raise Invalid(
                f"scenario_state.state is {json.dumps(values['state'])[:40]}, "
                f"not one of {', '.join(ScenarioState.STATES)}"
            )
        elif cls is Log and values["level"] not in Log.LEVELS:
            raise Invalid(f"log.level is {json.dumps(values['level'])[:40]}, not one of info, warning, error")
    except Invalid as exc:
        return Malformed(str(exc))
    return cls(**values)


def _enum(enum: type[StrEnum], value: str, where: str) -> StrEnum:
    try:
        return enum(value)
    except ValueError:
        raise Invalid(f"{where} is {json.dumps(value)[:40]}, not one of {', '.join(enum)}") from None


class LineBuffer:
    """Splits a byte stream into lines, refusing a line longer than `limit`."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        *lines, rest = self.buf.split(b"\n")
        if len(rest) > self.limit:
            raise ProtocolError(f"message longer than {self.limit} bytes")
        self.buf = bytearray(rest)
        return [bytes(x) for x in lines if x]
