"""What the traffic panes and the boxes say about ports: a socket's peer
(there or not, and a notice when it comes or goes), and talkers that keep
to one line. Fed with statistics messages as the worker sends them."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from qnet_tui.model.yamlio import load_file
from qnet_tui.ui.app import QnetApp
from qnet_tui.ui.traffic import TrafficView, fit_talkers
from tests.ui.heard import hear

SAMPLES = Path(__file__).parents[2] / "sample_topologies"


def port(kind: str, connected: bool = True, rx: int = 0, tx: int = 0) -> dict:
    reasons = {"full": 0, "gone": 0, "oversized": 0, "mtu": 0, "malformed": 0}
    return {"kind": kind, "connected": connected, "rx_frames": rx, "rx_bytes": 100 * rx, "tx_frames": tx,
            "tx_bytes": 100 * tx, "drops": 0, "drop_reasons": reasons, "looped": False}  # fmt: skip


def stats(ports: dict[str, dict], hub: str = "hub0", vlan: int = 0) -> dict:
    frames = sum(p["rx_frames"] for p in ports.values())
    protocols = {"arp": 0, "ipv4": frames, "ipv6": 0, "icmp": 0, "tcp": 0, "udp": 0, "other": 0}
    pane = {"hub": hub, "forwarding": "worker",
            "frames": frames, "bytes": 100 * frames, "drops": 0, "protocols": protocols,
            "ports": ports, "fps": 0.0, "bps": 0.0, "vlan": vlan, "capture": None}  # fmt: skip
    return {"type": "stats", "time": 0.0, "lab": "qemusock", "vlans": {str(vlan): pane}, "peers": {}}


def sample(port_name: str, mac: str) -> dict:
    src = mac.replace(":", "")
    frame = "ffffffffffff" + src + "0800" + "00" * 46
    return {
        "time": 0.0,
        "hub": "hub0",
        "vlan": 0,
        "port": port_name,
        "length": 60,
        "summary": "Ether / IP",
        "hex": frame,
    }


def detail(app: QnetApp) -> str:
    return str(app.query_one(TrafficView).panes["v0"].query_one(".detail", Static).render())


def notes(app: QnetApp) -> list[str]:
    return [n.message for n in app._notifications]


async def feed(app: QnetApp, pilot, *messages: dict) -> None:
    for message in messages:
        hear(app, message)
        await pilot.pause()
    await pilot.pause()


async def test_a_sockets_peer_shows_on_its_box_and_pane_and_its_coming_and_going_in_notices():
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    app.settle_s = 0
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        await feed(app, pilot, stats({"vm1": port("tap", rx=3, tx=0), "vm9": port("stream", connected=False)}))
        assert app.canvas.live["vm9"] == "no peer"
        assert app.canvas.live["vm1"] == "in 3 out 0"  # a tap is always "connected": counters as ever
        assert "sockets   vm9 no peer" in detail(app)
        assert not [n for n in notes(app) if "vm9" in n]  # no peer at the start is no news

        await feed(app, pilot, stats({"vm1": port("tap", rx=3, tx=2), "vm9": port("stream", rx=2, tx=3)}))
        assert app.canvas.live["vm9"] == "in 2 out 3"
        assert "sockets   vm9 connected" in detail(app)
        assert notes(app)[-1] == "vm9: a peer connected"

        await feed(app, pilot, stats({"vm1": port("tap", rx=3, tx=2), "vm9": port("stream", rx=2, tx=3)}))
        assert [n for n in notes(app) if "vm9" in n] == ["vm9: a peer connected"]  # said once, not per tick

        await feed(app, pilot, stats({"vm1": port("tap", rx=3, tx=2), "vm9": port("stream", False, rx=2, tx=3)}))
        assert app.canvas.live["vm9"] == "no peer"
        assert "sockets   vm9 no peer" in detail(app)
        assert notes(app)[-1] == "vm9: the peer disconnected"


async def test_a_pane_without_sockets_has_no_sockets_line():
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        await feed(app, pilot, stats({"vm1": port("tap", rx=3)}))
        assert "sockets" not in detail(app)


async def test_talkers_keep_to_one_line_with_every_count():
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        ports = {"guest-1": port("tap", rx=123456), "guest-2": port("tap", rx=23456),
                 "guest-3": port("tap", rx=3456)}  # fmt: skip
        macs = [sample(f"guest-{i}", f"52:54:00:00:01:0{i}") for i in (1, 2, 3)]
        await feed(app, pilot, stats(ports), {"type": "samples", "samples": macs}, stats(ports))
        widget = app.query_one(TrafficView).panes["v0"].query_one(".detail", Static)
        width = widget.content_size.width
        assert 0 < width < 100  # the pane is half the screen: all three with their MACs would not fit
        assert widget.get_content_height(widget.size, app.size, width) == 3  # protocols, talkers, drops
        talkers = detail(app).splitlines()[1]
        assert len(talkers) <= width
        for name, count in (("guest-1", 123456), ("guest-2", 23456), ("guest-3", 3456)):
            assert f"{name} {count}" in talkers
        assert "guest-1 123456 (52:54:00:00:01:01)" in talkers  # the busiest one's MAC: there is room for it


def test_fit_talkers_drops_macs_before_counts():
    talkers = [("vm1", 13, "52:54:00:00:01:01"), ("vm2", 13, "52:54:00:00:01:02"), ("tap0", 7, "3 MACs")]
    assert fit_talkers(talkers, 0) == "vm1 13 (52:54:00:00:01:01)  vm2 13 (52:54:00:00:01:02)  tap0 7 (3 MACs)"
    assert fit_talkers(talkers, 60) == "vm1 13 (52:54:00:00:01:01)  vm2 13  tap0 7 (3 MACs)"
    assert fit_talkers(talkers, 42) == "vm1 13 (52:54:00:00:01:01)  vm2 13  tap0 7"
    assert fit_talkers(talkers, 22) == "vm1 13  vm2 13  tap0 7"
    assert fit_talkers(talkers, 21) == "vm1 13  vm2 13 …"
    assert fit_talkers(talkers, 5) == "…"
    assert fit_talkers([], 10) == ""


async def test_a_capture_shows_its_frames_size_and_file_whole():
    """The pane is half the screen: the capture gets a row of its own, not the
    end of the rates row, where it was cut after its frame count."""
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        message = stats({"vm1": port("tap", rx=3)})
        pcap = "/tmp/walk/qemusock-hub0-20261203-045346.pcap"
        message["vlans"]["0"]["capture"] = {"path": pcap, "frames": 13, "bytes": 1254}
        await feed(app, pilot, message)
        widget = app.query_one(TrafficView).panes["v0"].query_one(".detail", Static)
        line = next(x for x in detail(app).splitlines() if x.startswith("capture"))
        assert "13 frames, 1.3 kB to qemusock-hub0-20261203-045346.pcap" in line
        assert len(line) <= widget.content_size.width
        assert app.query_one(TrafficView).panes["v0"].capturing == pcap

        await feed(app, pilot, stats({"vm1": port("tap", rx=3)}))  # stopped
        assert "capture" not in detail(app)


async def test_the_boxes_counters_go_when_the_lab_says_it_stopped():
    """Not a second later, when its worker has exited: the title says "stopped" at once."""
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        await feed(app, pilot, {"type": "state", "state": "running"}, stats({"vm1": port("tap", rx=3)}))
        assert app.canvas.live["vm1"] == "in 3 out 0"
        await feed(app, pilot, {"type": "state", "state": "stopped"})
        assert app.canvas.live == {}


async def test_an_impairments_drops_show_in_the_drops_line_though_they_are_no_real_drops():
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        vm1 = port("tap", rx=30)
        vm1["drop_reasons"].update({"impair-loss": 3, "impair-queue": 0})
        await feed(app, pilot, stats({"vm1": vm1, "vm9": port("stream", rx=2)}))
        drops = detail(app).splitlines()[2]
        assert drops == "drops     vm1: impair-loss 3"


async def test_a_hub_across_machines_names_them_and_its_remote_ports_are_no_talkers():
    """Frames a remote port brings entered the lab on another machine, where their port is the talker."""
    app = QnetApp(load_file(SAMPLES / "qemu-socket.yaml"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.lab.add_class("-shown")
        ports = {"vm1": port("tap", rx=5), "vxlan:b": port("vxlan", rx=900), "vm2": port("tap", rx=7),
                 "vxlan:controller": port("vxlan", rx=800), "vxlan:c": port("vxlan", rx=1)}  # fmt: skip
        ports["vxlan:b"] |= {"peer": "192.0.2.2", "vni": 10, "pmtu": 1500, "probed": True}
        ports["vxlan:c"] |= {"peer": "192.0.2.3", "vni": 10, "pmtu": 1450, "probed": False}
        ports["vxlan:controller"] |= {"peer": "192.0.2.1", "vni": 10, "pmtu": None, "probed": False}
        await feed(app, pilot, stats(ports))
        pane = app.query_one(TrafficView).panes["v0"]
        assert pane.border_title == "VLAN 0 (hub0, across this machine + b + c)"
        talkers = detail(app).splitlines()[1]
        assert talkers.startswith("talkers   vm2 7") and "vm1 5" in talkers and "vxlan" not in talkers
        remote = next(line for line in detail(app).splitlines() if line.startswith("remote"))
        assert remote.startswith("remote    vxlan:b 192.0.2.2 path MTU 1500  vxlan:c 192.0.2.3 path MTU 1450")
        assert "(the route's" in remote


def test_an_end_too_wide_for_its_column_keeps_its_node_and_port():
    from qnet_tui.ui.conversations import shorten_end

    assert shorten_end("vm1 10.0.0.1:49886", 18) == "vm1 10.0.0.1:49886"
    assert shorten_end("vm1 10.0.0.1:49886", 14) == "vm1 10.…:49886"
    assert shorten_end("vm2 fe80::5054:ff:fe00:102", 16) == "vm2 fe80:…00:102"
    # A node's name too long to leave room: the address alone, cut in its middle.
    assert shorten_end("a-long-node-name 10.0.0.1:5", 14) == "10.0.0…0.0.1:5"
    assert all(len(shorten_end("vm1 fe80::5054:ff:fe00:101", w)) == w for w in range(3, 26))
    assert shorten_end("vm2 [fe80::5054:ff:fe00:102]:546", 16) == "vm2 [fe80…2]:546"
