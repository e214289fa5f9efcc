"""A tiny frame tool the lab tests run inside guest namespaces (through
`qnet-tui exec`): send N raw Ethernet frames, or count the ones that arrive.

    frames.py send IFACE SRC_MAC N [ETHERTYPE]
    frames.py count IFACE SECONDS [ETHERTYPE]      prints the count once its standard input is
                                                   closed (the sender is done) and then quiet for SECONDS

Frame i is 60 + (i * 97) % 1455 bytes long (60 to 1514), its payload a pattern
derived from i; `count` prints how many arrived and how many were not intact.
"""

import select
import socket
import sys
import time

ETH_P_EXPERIMENTAL = 0x88B5  # IEEE local experimental EtherType: nothing else sends it
PACKET_IGNORE_OUTGOING = 23
SOL_PACKET = 263


def send(iface: str, src: str, n: int, ethertype: int) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    header = b"\xff" * 6 + bytes.fromhex(src.replace(":", "")) + ethertype.to_bytes(2, "big")
    for i in range(n):
        s.send(header + payload(i))
        if i % 50 == 49:
            time.sleep(0.002)  # paced: the test counts frames, it does not measure drops
    print(n, flush=True)


def payload(i: int) -> bytes:
    size = 60 + (i * 97) % 1455 - 14
    return i.to_bytes(4, "big") + bytes((i + j) % 251 for j in range(size - 4))


def count(iface: str, quiet: float, ethertype: int) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((iface, ethertype))
    print("ready", flush=True)
    got = bad = 0
    # Quiet counts only once the test says the sender is done (it closes our
    # standard input): a sender slow to start on a loaded machine is no end.
    watching = [s, sys.stdin]
    while True:
        ready = select.select(watching, [], [], None if sys.stdin in watching else quiet)[0]
        if not ready:
            break
        if sys.stdin in ready:
            if not sys.stdin.readline():
                watching.remove(sys.stdin)
            continue
        frame = s.recv(4096)
        got += 1
        bad += frame[14:] != payload(int.from_bytes(frame[14:18], "big"))
    print(got, bad, flush=True)


if __name__ == "__main__":
    mode, iface = sys.argv[1], sys.argv[2]
    if mode == "send":
        send(iface, sys.argv[3], int(sys.argv[4]), int(sys.argv[5], 0) if len(sys.argv) > 5 else ETH_P_EXPERIMENTAL)
    else:
        count(iface, float(sys.argv[3]), int(sys.argv[4], 0) if len(sys.argv) > 4 else ETH_P_EXPERIMENTAL)
