"""Demo traffic, sent from inside a guest NIC's namespace (the app runs it
through `qnet-tui exec`, which names the NIC's interface in QNET_IFNAME): an
ARP who-has, a DHCP discover, or a burst of UDP frames. Crafted with scapy,
which belongs at this edge.

    python -m qnet_tui.lab.demo arp ADDRESS
    python -m qnet_tui.lab.demo dhcp
    python -m qnet_tui.lab.demo udp ADDRESS COUNT
"""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str]) -> int:
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import ARP, BOOTP, DHCP, IP, UDP, Ether, get_if_hwaddr, sendp

    iface = os.environ.get("QNET_IFNAME", "eth0")
    mac = get_if_hwaddr(iface)
    what = argv[0] if argv else ""
    if what == "arp" and len(argv) == 2:
        frames = [Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=mac, pdst=argv[1])]
    elif what == "dhcp" and len(argv) == 1:
        chaddr = bytes.fromhex(mac.replace(":", ""))
        frames = [
            Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=chaddr, xid=0x51E7)
            / DHCP(options=[("message-type", "discover"), "end"])
        ]
    elif what == "udp" and len(argv) == 3 and argv[2].isdigit():
        count = min(int(argv[2]), 100_000)
        frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(dst=argv[1]) / UDP(sport=40000, dport=9) / (b"q" * 18)
        frames = [frame] * count
    else:
        print(__doc__, file=sys.stderr)
        return 2
    sendp(frames, iface=iface, verbose=False)
    print(f"sent {len(frames)} frame(s) from {mac}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
