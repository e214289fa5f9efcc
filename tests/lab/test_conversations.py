"""Conversations counted for every frame in a real lab, on a hub the kernel
forwards (the eBPF filter counts) and on one the worker forwards, as
`run --json` reports them."""

from __future__ import annotations

import json
import time

from .conftest import wait_for
from .test_kernelhub import TWO_HUBS


def flows_between(vlan: dict, a: str, b: str) -> list[dict]:
    return [f for f in vlan["conversations"]["flows"] if {f["a"], f["b"]} == {a, b}]


def iperf(lab, client: str, server: str, address: str, *args: str) -> dict:
    proc = lab.spawn(server, "iperf3", "-s", "-1")
    try:
        wait_for(lambda: lab.exec(server, "ss", "-ltn").stdout.count(":5201"), 10, "iperf3 to listen")
        sent = lab.exec(client, "iperf3", "-c", address, "-t", "1", "-J", *args)
        assert sent.returncode == 0, sent.stdout[-500:]
    finally:
        proc.wait(30)
    return json.loads(sent.stdout)


def test_tcp_and_udp_flows_on_both_kinds_of_hub(make_lab):
    lab = make_lab("", text=TWO_HUBS)
    tcp = iperf(lab, "a1", "a2", "10.8.1.2")
    udp = iperf(lab, "b1", "b2", "10.8.2.2", "-u", "-b", "20M", "-l", "1000")
    stats = lab.latest(after=time.time() + 0.3)

    # hub1, the kernel's: iperf3's control connection and its data connection, both to port 5201.
    hub1 = stats["vlans"]["1"]
    assert hub1["forwarding"] == "kernel"
    flows = flows_between(hub1, "10.8.1.1", "10.8.1.2")
    tcp_flows = [f for f in flows if f["proto"] == "tcp"]
    assert len(tcp_flows) == 2
    assert all((f["a_node"], f["b_node"], f["b_port"]) == ("a1", "a2", 5201) for f in tcp_flows)
    data = max(tcp_flows, key=lambda f: f["bytes"])
    sent = tcp["end"]["sum_sent"]["bytes"]
    assert data["bytes"] >= sent, (data, sent, hub1["protocols"], stats["time"])  # payload, and headers on top
    assert data["bytes"] <= hub1["protocols"]["tcp"] * 1514
    assert data["first"] <= data["last"] <= stats["time"]
    pairs = {(p["a_node"], p["b_node"]) for p in hub1["conversations"]["pairs"]}
    assert ("a1", "a2") in pairs or ("a2", "a1") in pairs

    # hub2, the worker's: the UDP datagrams, every one counted (1000 bytes each: one frame each).
    hub2 = stats["vlans"]["2"]
    assert hub2["forwarding"] == "worker"
    [data] = [f for f in flows_between(hub2, "10.8.2.1", "10.8.2.2") if f["proto"] == "udp"]
    assert (data["a_node"], data["b_node"], data["b_port"]) == ("b1", "b2", 5201)
    sent = udp["end"]["sum"]["packets"]
    # Every datagram, and the two small ones iperf3 exchanges on the flow to start it.
    assert data["frames"] == sent + 2
    assert sent * (1000 + 8 + 20 + 14) < data["bytes"] <= sent * (1000 + 8 + 20 + 14) + 2 * 60
    assert not flows_between(hub1, "10.8.2.1", "10.8.2.2")  # kept in its VLAN
