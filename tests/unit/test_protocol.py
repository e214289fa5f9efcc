"""The control protocol: every message round-trips, and a line that is no
message decodes to Malformed naming the place, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qnet_tui import protocol
from qnet_tui.protocol import LabState, Malformed
from qnet_tui.ui.labclient import Backlog

PORT = {"kind": "tap", "connected": True, "rx_frames": 1, "rx_bytes": 60, "tx_frames": 2, "tx_bytes": 120,
        "drops": 0, "drop_reasons": {"full": 0}, "looped": False}  # fmt: skip
HUB = {"hub": "hub1", "forwarding": "kernel",
       "capture": None, "frames": 3, "bytes": 180, "drops": 0, "protocols": {"arp": 3},
       "ports": {"vm1": PORT}, "fps": 1.5, "bps": 720.0, "vlan": 1}  # fmt: skip
SAMPLE = {"time": 1.5, "hub": "hub1", "vlan": None, "port": "vm1", "length": 60, "summary": "ARP", "hex": "ff"}

MESSAGES = [
    protocol.Hello("lab", "/tmp/lab.yaml", 42, protocol.PROTOCOL_VERSION),
    protocol.Hello("lab", None, 42, protocol.PROTOCOL_VERSION),
    protocol.State(LabState.FAILED, "no root"),
    protocol.State(LabState.RUNNING),
    protocol.Stats(1.0, "lab", {"1": HUB}, {"vm1-tap0": dict(HUB, capture={"path": "/x", "frames": 1, "bytes": 2})}),
    protocol.Samples([SAMPLE, dict(SAMPLE, vlan=1)]),
    protocol.Log("warning", "a loop"),
    protocol.Error("refused"),
    protocol.Impaired("hub1", "vm2", "delay=50ms", "none"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.TYPE)
def test_worker_messages_round_trip(message):
    assert protocol.decode(protocol.encode(message), protocol.WORKER) == message


@pytest.mark.parametrize(
    "message",
    [
        protocol.Stop(),
        protocol.Capture("hub1", "/tmp/x.pcap"),
        protocol.Capture("h"),
        protocol.Impair("hub1", "vm2", "delay=50ms loss=1%"),
        protocol.Impair("hub1", "vm2", "none", one_way=True),
    ],
)
def test_client_messages_round_trip(message):
    assert protocol.decode(protocol.encode(message), protocol.CLIENT) == message


def test_a_state_decodes_to_the_enum():
    msg = protocol.decode(b'{"type": "state", "state": "stopping", "reason": null}', protocol.WORKER)
    assert msg.state is LabState.STOPPING


def bad(message: dict) -> str:
    msg = protocol.decode(json.dumps(message).encode(), protocol.WORKER)
    assert isinstance(msg, Malformed), msg
    return msg.reason


CHECK = {"kind": "duplicate-ip", "message": "10.0.0.1, vm1's address, is sent from vm1 and vm2",
         "ports": ["vm1", "vm2"], "nodes": ["vm1", "vm2"], "mac": None, "address": "10.0.0.1",
         "count": 3, "first": 1.0, "last": 2.5}  # fmt: skip


def test_a_hubs_checks_decode():
    msg = protocol.decode(json.dumps(stats(checks=[CHECK])).encode(), protocol.WORKER)
    assert msg.vlans["1"]["checks"] == [CHECK]


def stats(**hub) -> dict:
    return {"type": "stats", "time": 1.0, "lab": "lab", "vlans": {"1": dict(HUB, **hub)}, "peers": {}}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (stats(ports={"vm1": dict(PORT, rx_frames="7")}), 'stats.vlans["1"].ports["vm1"].rx_frames is a string'),
        (stats(ports={"vm1": dict(PORT, rx_frames=True)}), "rx_frames is true or false, not an integer"),
        (stats(ports={"vm1": {k: v for k, v in PORT.items() if k != "looped"}}), "has no 'looped'"),
        (stats(protocols={"arp": None}), 'stats.vlans["1"].protocols["arp"] is null'),
        (stats(fps="fast"), "fps is a string, not an integer or a number"),
        (stats(capture={"path": 1, "frames": 0, "bytes": 0}), "capture.path is an integer, not a string"),
        (dict(stats(), peers=[]), "stats.peers is a list, not an object"),
        (stats(checks=[dict(CHECK, count="3")]), 'stats.vlans["1"].checks[0].count is a string, not an integer'),
        (stats(checks=[dict(CHECK, nodes="vm1")]), "checks[0].nodes is a string, not a list"),
        (stats(checks=[{k: v for k, v in CHECK.items() if k != "kind"}]), "checks[0] has no 'kind'"),
        ({"type": "samples", "samples": [dict(SAMPLE, hex=None)]}, "samples.samples[0].hex is null"),
        ({"type": "samples", "samples": {}}, "samples.samples is an object, not a list"),
        ({"type": "state", "state": "paused", "reason": None}, 'state.state is "paused", not one of starting'),
        ({"type": "log", "level": "debug", "message": "x"}, 'log.level is "debug"'),
        ({"type": "hello", "lab": "x", "pid": 1}, "hello has no 'protocol'"),
        ({"type": "capture", "hub": "x", "path": None}, 'unknown message type "capture"'),  # a client's, not ours
    ],
)
def test_a_malformed_message_says_where(message, reason):
    assert reason in bad(message)


def test_an_impair_without_one_way_is_malformed():
    msg = protocol.decode(b'{"type": "impair", "a": "hub1", "b": "vm2", "spec": "none"}', protocol.CLIENT)
    assert isinstance(msg, Malformed) and "impair has no 'one_way'" in msg.reason
    msg = protocol.decode(b'{"type":"impair","a":"h","b":"v","spec":1,"one_way":false}', protocol.CLIENT)
    assert isinstance(msg, Malformed) and "impair.spec is an integer" in msg.reason


def test_optional_fields_may_be_missing():
    assert protocol.decode(b'{"type": "state", "state": "running"}', protocol.WORKER) == protocol.State(
        LabState.RUNNING
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.sampled_from([*protocol.WORKER, *protocol.CLIENT]), st.dictionaries(st.text(max_size=12), JSON))
def test_any_json_object_decodes_to_a_message_or_malformed(kind, fields):
    """Never an exception: fields of a real message type filled with any JSON."""
    for side in (protocol.WORKER, protocol.CLIENT):
        msg = protocol.decode(json.dumps({**fields, "type": kind}).encode(), side)
        assert isinstance(msg, Malformed | protocol.Message)


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_message_or_malformed(line):
    assert isinstance(protocol.decode(line, protocol.WORKER), Malformed | protocol.Message)


def test_the_backlog_skips_what_the_app_cannot_take_yet():
    backlog = Backlog({protocol.Stats: 2, protocol.Samples: 1})
    first, second = backlog.admit(protocol.Stats), backlog.admit(protocol.Stats)
    assert (first, second) == (1, 2)
    assert backlog.admit(protocol.Stats) is None and backlog.skipped[protocol.Stats] == 1
    assert backlog.admit(protocol.Log) == 0  # logs, states, errors always go through
    backlog.done(protocol.Stats, second)  # the app handled the newer one: the older was replaced by it
    assert backlog.admit(protocol.Stats) == 3 and backlog.admit(protocol.Stats) == 4
    assert backlog.admit(protocol.Samples) == 1 and backlog.admit(protocol.Samples) is None


def test_link_messages_round_trip_and_are_shape_checked():
    for message in (protocol.Link("hub1", "vm2", False), protocol.Link("hub1", "vm2", True, "b-a")):
        assert protocol.decode(protocol.encode(message), protocol.CLIENT) == message
    reply = protocol.LinkState("hub1", "vm2", False, True, "link hub1 - vm2: ...")
    assert protocol.decode(protocol.encode(reply), protocol.WORKER) == reply
    down = [{"a": "hub1", "b": "vm2", "a_b": False, "b_a": True}]
    with_links = protocol.Stats(1.0, "lab", {"1": HUB}, {}, None, down)
    assert protocol.decode(protocol.encode(with_links), protocol.WORKER) == with_links
    # a missing direction is both ways
    assert protocol.decode(b'{"type": "link", "a": "x", "b": "y", "up": true}', protocol.CLIENT).direction == "both"
    for line, reason in [
        (b'{"type": "link", "a": "x", "b": "y", "up": "down"}', "link.up is a string, not true or false"),
        (b'{"type": "link", "a": "x", "up": false}', "link has no 'b'"),
        (b'{"type": "link", "a": "x", "b": "y", "up": false, "direction": "x-y"}', 'link.direction is "x-y"'),
    ]:
        msg = protocol.decode(line, protocol.CLIENT)
        assert isinstance(msg, Malformed) and reason in msg.reason, msg
    assert "stats.links[0].a_b is an integer" in bad(dict(stats(), links=[{"a": "x", "b": "y", "a_b": 1, "b_a": True}]))


def test_scenario_messages_round_trip_and_are_shape_checked():
    status = {"name": "flaky", "state": "running", "elapsed": 1.5, "duration": 20.0, "step": 1, "steps": 4,
              "doing": "link hub0 - vm1 down for 2s"}  # fmt: skip
    for message in (protocol.Scenario("flaky"), protocol.Scenario()):
        assert protocol.decode(protocol.encode(message), protocol.CLIENT) == message
    reply = protocol.ScenarioState(**status)
    assert protocol.decode(protocol.encode(reply), protocol.WORKER) == reply
    playing = protocol.Stats(1.0, "lab", {"1": HUB}, {}, None, None, status)
    assert protocol.decode(protocol.encode(playing), protocol.WORKER) == playing
    assert protocol.decode(b'{"type": "scenario"}', protocol.CLIENT) == protocol.Scenario(None)
    msg = protocol.decode(b'{"type": "scenario", "name": 3}', protocol.CLIENT)
    assert isinstance(msg, Malformed) and "scenario.name is an integer" in msg.reason
    assert 'scenario_state.state is "paused"' in bad(dict(status, type="scenario_state", state="paused"))
    assert "scenario_state has no 'step'" in bad(
        {k: v for k, v in dict(status, type="scenario_state").items() if k != "step"}
    )
    assert "stats.scenario.elapsed is a string" in bad(dict(stats(), scenario=dict(status, elapsed="1")))
