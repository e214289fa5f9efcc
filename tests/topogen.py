"""Generated topologies of any size, for layout tests and the UI benchmark."""

from __future__ import annotations

from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology


def big_topology(nodes: int = 300) -> Topology:
    """Uplinks -> bridges -> taps -> hubs -> guests, about `nodes` nodes: each
    uplink feeds a bridge with three taps, each tap a hub with seven guests
    (and every fifth hub also a socket)."""
    t = Topology(name="big")
    i = 0
    while len(t.nodes) < nodes:
        t.add(Node(f"eth{i}", Kind.HOST_NIC, {"ipv4": f"10.{i}.0.1/16"}))
        t.add(Node(f"br{i}", Kind.BRIDGE, {"stp": False}))
        t.links.append((f"eth{i}", f"br{i}"))
        for j in range(3):
            tap, hub = f"tap{i}-{j}", f"hub{i}-{j}"
            t.add(Node(tap, Kind.TAP))
            t.add(Node(hub, Kind.HUB, {"vlan": i * 3 + j}))
            t.links += [(f"br{i}", tap), (tap, hub)]
            for k in range(7):
                n = (i * 3 + j) * 7 + k
                vm = f"vm{n}"
                t.add(
                    Node(
                        vm,
                        Kind.GUEST_NIC,
                        {
                            "mac": f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                            "ipv4": f"10.{i}.{j + 1}.{k + 10}/16",
                        },
                    )
                )
                t.links.append((hub, vm))
            if (i * 3 + j) % 5 == 0:
                sock = f"sock{i}-{j}"
                t.add(Node(sock, Kind.SOCKET, {"transport": "stream", "mode": "listen", "address": f"{sock}.sock"}))
                t.links.append((hub, sock))
        i += 1
    return t
