"""qnet-tui: draw QEMU-style virtual networks, make them real, watch their traffic."""

__version__ = "0.1.0"
