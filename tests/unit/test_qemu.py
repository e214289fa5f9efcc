"""QEMU's language both ways: qemu-args for socket nodes, and import of QEMU
networking arguments, table-driven, with import -> validate -> export ->
import round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnet_tui.model.kinds import Kind
from qnet_tui.model.qemu import QemuArgsError, export_args, import_args, netdev_args, parse_opts
from qnet_tui.model.validate import validate
from qnet_tui.model.yamlio import load_text

RUN = Path("/run/qnet-tui/lab")


def socket_lab(attrs: str) -> object:
    return load_text(
        "version: 1\nname: lab\nnodes:\n  hub0: {kind: hub, vlan: 0}\n"
        f"  q0: {{kind: socket, {attrs}}}\nlinks: [[hub0, q0]]\n"
    ).topology


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            "transport: stream, mode: listen, address: q0.sock",
            "stream,id=q0,server=off,addr.type=unix,addr.path=/run/qnet-tui/lab/q0.sock",
        ),
        (
            "transport: stream, mode: connect, address: /tmp/vm.sock, external: true",
            "stream,id=q0,server=on,addr.type=unix,addr.path=/tmp/vm.sock",
        ),
        (
            "transport: stream, family: inet, mode: listen, address: '127.0.0.1:5555'",
            "stream,id=q0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=5555",
        ),
        (
            "transport: dgram, family: inet, address: '127.0.0.1:6000', local: '127.0.0.1:6001'",
            "dgram,id=q0,local.type=inet,local.host=127.0.0.1,local.port=6000,"
            "remote.type=inet,remote.host=127.0.0.1,remote.port=6001",
        ),
        (
            "transport: dgram, family: inet, address: '230.0.0.1:1234'",
            "dgram,id=q0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234",
        ),
    ],
)
def test_qemu_args_are_the_other_end(attrs, expected):
    assert netdev_args(socket_lab(attrs), "q0", RUN) == ["-netdev", expected]


def test_qemu_args_refuse_what_qemu_cannot_plug_into():
    with pytest.raises(QemuArgsError, match="attaches VMs to socket nodes"):
        netdev_args(socket_lab("transport: stream, mode: listen, address: a.sock"), "hub0", RUN)
    with pytest.raises(QemuArgsError, match="needs 'local'"):
        netdev_args(socket_lab("transport: dgram, family: inet, address: '127.0.0.1:6000'"), "q0", RUN)


def test_parse_opts_keeps_doubled_commas():
    assert parse_opts("socket,id=a,,b,listen=:1") == ("socket", {"id": "a,b", "listen": ":1"})


def summary(t) -> tuple[dict, set]:
    nodes = {n.id: (str(n.kind), tuple(sorted((k, str(v)) for k, v in n.attrs.items()))) for n in t.nodes.values()}
    return nodes, {frozenset(link) for link in t.links}


CASES = {
    "legacy vlan nic and tap": (
        "-net nic,vlan=0,model=rtl8139,macaddr=52:54:00:aa:00:01 -net tap,vlan=0,ifname=tap0,script=no",
        {"hub0": Kind.HUB, "vm1": Kind.GUEST_NIC, "tap0": Kind.TAP},
        {("hub0", "vm1"), ("hub0", "tap0")},
    ),
    "legacy two vlans": (
        "-net nic,vlan=1,name=a -net nic,vlan=1,name=b -net nic,vlan=2,name=c -net socket,vlan=2,listen=:4321",
        {
            "hub1": Kind.HUB,
            "hub2": Kind.HUB,
            "a": Kind.GUEST_NIC,
            "b": Kind.GUEST_NIC,
            "c": Kind.GUEST_NIC,
            "sock1": Kind.SOCKET,
        },
        {("hub1", "a"), ("hub1", "b"), ("hub2", "c"), ("hub2", "sock1")},
    ),
    "netdev tap peered to a device": (
        "-netdev tap,id=n0,ifname=tap5,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:05",
        {"tap5": Kind.TAP, "vm1": Kind.GUEST_NIC},
        {("tap5", "vm1")},
    ),
    "hubports": (
        "-netdev tap,id=t0,ifname=tap0 -netdev hubport,id=h0,hubid=3,netdev=t0 -netdev hubport,id=h1,hubid=3 "
        "-device e1000,netdev=h1,id=web,mac=52:54:00:00:00:07",
        {"hub3": Kind.HUB, "tap0": Kind.TAP, "web": Kind.GUEST_NIC},
        {("hub3", "tap0"), ("hub3", "web")},
    ),
    "stream and dgram": (
        "-netdev stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=7000 "
        "-netdev hubport,id=h0,hubid=0,netdev=s0 "
        "-netdev dgram,id=d0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234 "
        "-netdev hubport,id=h1,hubid=0,netdev=d0 -device e1000,netdev=h2 -netdev hubport,id=h2,hubid=0",
        {"hub0": Kind.HUB, "s0": Kind.SOCKET, "d0": Kind.SOCKET, "vm1": Kind.GUEST_NIC},
        {("hub0", "s0"), ("hub0", "d0")},
    ),
    "nic shorthand": (
        "-nic tap,ifname=tap7,model=virtio-net-pci,mac=52:54:00:00:00:70",
        {"tap7": Kind.TAP, "vm1": Kind.GUEST_NIC},
        {("tap7", "vm1")},
    ),
    "bridge": (
        "-netdev bridge,id=b0,br=br9 -device e1000,netdev=b0",
        {"br9": Kind.BRIDGE, "b0": Kind.TAP, "vm1": Kind.GUEST_NIC},
        {("br9", "b0"), ("b0", "vm1")},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_import(name):
    args, kinds, links = CASES[name]
    t, problems = import_args(args.split())
    assert {n.id: n.kind for n in t.nodes.values()} == kinds, problems
    assert {frozenset(link) for link in t.links} >= {frozenset(link) for link in links}
    assert not [d for d in validate(t) if d.is_error], [d.message for d in validate(t)]


@pytest.mark.parametrize("name", [n for n in CASES if n != "bridge"])  # a bridge has no QEMU form to export
def test_import_validate_export_round_trip(name):
    args, _, _ = CASES[name]
    t, _ = import_args(args.split())
    again, problems = import_args(export_args(t, RUN))
    assert problems == []
    assert summary(again) == summary(t)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("-net user,vlan=0", "user-mode networking"),
        ("-netdev user,id=u0", "user-mode networking"),
        ("-netdev tap,id=t0,fd=3", "file descriptor"),
        ("-netdev vhost-user,id=v0,chardev=c0", "netdev type 'vhost-user' is not supported"),
        ("-device usb-tablet", "not a NIC model"),
        ("-m 512", "not a networking argument"),
        ("-device e1000,netdev=missing", "netdev 'missing' is not defined"),
        ("-netdev socket,id=s0", "needs listen=, connect=, mcast="),
        ("-net nic,vlan=x", "vlan=x is not a number from 0 to 4095"),
        ("-netdev hubport,id=p0,hubid=zz", "hubid=zz is not a number from 0 to 4095"),
        ("-net nic,vlan=99999", "vlan=99999 is not a number from 0 to 4095"),
    ],
)
def test_unsupported_forms_are_reported_by_argument(args, why):
    _, problems = import_args(args.split())
    assert any(why in p for p in problems), problems
    assert all(p.startswith("argument ") for p in problems)


def test_imported_ids_and_macs_are_always_valid():
    from qnet_tui.model.validate import validate

    many = " ".join(f"-net nic,vlan=0,model=e1000 -net tap,vlan=0,ifname=t{i}" for i in range(200))
    t, _ = import_args(f"-netdev tap,id=_n0,ifname=_n0 -device e1000,netdev=_n0 {many}".split())
    assert "_n0" not in t.nodes  # an id Linux would refuse is renamed
    macs = [n.attrs["mac"] for n in t.nodes.values() if "mac" in n.attrs]
    assert len(macs) == 201 and len(set(macs)) == 201
    assert not [d for d in validate(t) if d.is_error]
