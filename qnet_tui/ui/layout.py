"""Where the canvas draws each node and link. Pure: no Textual, so it is
fast to test and to time.

Nodes stand in columns in the order a frame travels, host NICs | bridges |
taps | hubs | guest NICs and sockets, each placed level with the neighbours it
links to; a guest (machine) stands in the last column, its NICs right under
it, titled with the guest and their interface (router eth1). A column no node
stands in takes no room (unless none has any: an empty topology shows where
each kind goes). Links run orthogonally through the channels between columns: out
of a box's side, along a lane of the channel, into the next box. A link that
skips a column crosses it on a row no box there uses; a link within a column
runs in a channel on its right."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from qnet_tui.model import guests
from qnet_tui.model.kinds import Kind
from qnet_tui.model.topology import Node, Topology

BOX_W = 20
BOX_H = 5  # border, three lines of text, border
GAP_Y = 1
MARGIN = 1
COLUMN = {Kind.HOST_NIC: 0, Kind.BRIDGE: 1, Kind.TAP: 2, Kind.HUB: 3, Kind.GUEST_NIC: 4, Kind.SOCKET: 4, Kind.GUEST: 4}
COLUMNS = 5
COLUMN_TITLES = ("host NICs", "bridges", "taps", "hubs (VLANs)", "guest NICs, sockets")

# Direction bits of a cell of a link, and the box-drawing character for each set.
N, E, S, W = 1, 2, 4, 8
LINE_CHARS = {
    0: " ",
    N: "│",
    S: "│",
    N | S: "│",
    E: "─",
    W: "─",
    E | W: "─",
    E | S: "┌",
    W | S: "┐",
    N | E: "└",
    N | W: "┘",
    N | S | E: "├",
    N | S | W: "┤",
    E | W | S: "┬",
    E | W | N: "┴",
    N | E | S | W: "┼",
}


@dataclass(slots=True)
class Box:
    node: str
    kind: Kind | None
    x: int
    y: int
    title: str
    lines: tuple[str, str, str]

    @property
    def cy(self) -> int:
        return self.y + BOX_H // 2

    @property
    def right(self) -> int:
        return self.x + BOX_W


@dataclass
class Layout:
    boxes: dict[str, Box] = field(default_factory=dict)
    # (x, y) -> (direction bits, mask of the links through the cell: bit i is link i).
    # Plain ints, not sets: a layout is rebuilt on every edit, and ints leave
    # the garbage collector nothing to walk.
    cells: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    column_x: list[int] = field(default_factory=list)  # per column drawn, left to right
    column_titles: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0

    def box_at(self, x: int, y: int) -> Box | None:
        for box in self.boxes.values():
            if box.x <= x < box.right and box.y <= y < box.y + BOX_H:
                return box
        return None


def _member_title(guest: str, ifname: str) -> str:
    """'router eth1', cut in the guest's name to fit a box's title."""
    room = BOX_W - 5 - len(ifname) - 1
    return f"{guest if len(guest) <= room else guest[: room - 1] + '…'} {ifname}"


def box_text(node: Node, machine: guests.Machine | None = None) -> tuple[str, tuple[str, str, str]]:
    """The box's title (its kind, or for a NIC of a guest that guest and its
    interface) and three lines: id and key attributes. machine: the guest
    node's, or the guest a NIC belongs to."""
    kind = node.kind if isinstance(node.kind, Kind) else None
    a = node.attrs

    def text(key: str) -> str:
        value = a.get(key)
        if isinstance(value, bool):
            return "on" if value else "off"
        return "" if value is None else str(value)

    if kind is Kind.HUB:
        extra = (f"VLAN {text('vlan')}", "")
    elif kind is Kind.GUEST_NIC:
        extra = (text("mac"), text("ipv4") or text("ipv6") or text("model"))
    elif kind is Kind.HOST_NIC:
        extra = ((text("interface") and f"real {text('interface')}") or text("ipv4"), text("ipv6"))
    elif kind is Kind.BRIDGE:
        extra = (f"stp {text('stp') or 'off'}", text("ipv4"))
    elif kind is Kind.SOCKET:
        extra = (f"{text('transport')} {text('mode')}".strip(), text("address"))
    elif kind is Kind.GUEST:
        count = len(machine.nics) if machine else 0
        nics = f"{count} NIC{'' if count == 1 else 's'}"
        if a.get("vm") is True:  # what it boots, and its NICs
            boots = "disk" if "disk" in a else "kernel" if "kernel" in a else "built-in"
            extra = (f"VM {boots}", nics + (", router" if a.get("forwarding") is True else ""))
        else:
            extra = ("forwarding on" if a.get("forwarding") is True else "", nics)
    else:
        extra = ("", "")
    title = kind.title if kind else f"? {node.kind}"
    if node.is_qemu_vm:
        title = "QEMU VM"
    elif kind is Kind.GUEST_NIC and machine is not None and machine.guest is not None:
        title = _member_title(machine.id, machine.ifname(node.id))
    return title, (node.id, *extra)


def _column_of(node: Node) -> int:
    return COLUMN.get(node.kind, COLUMNS - 1) if isinstance(node.kind, Kind) else COLUMNS - 1


def _stack(items: list[tuple[float | None, str]], start: int = MARGIN + 2) -> dict[str, int]:
    """Top rows for boxes wanting to be centred at the given rows (None: no
    wish, below the others), in that order, without overlapping."""
    tops, bottom = {}, start
    placed = sorted((x for x in items if x[0] is not None), key=lambda x: x[0])
    for want, node in placed + [x for x in items if x[0] is None]:
        top = bottom if want is None else max(round(want) - BOX_H // 2, bottom)
        tops[node] = top
        bottom = top + BOX_H + GAP_Y
    return tops


def layout(t: Topology) -> Layout:
    out = Layout()
    adj: dict[str, list[str]] = defaultdict(list)
    for a, b in t.links:
        if a in t.nodes and b in t.nodes and a != b:
            adj[a].append(b)
            adj[b].append(a)
    columns: list[list[str]] = [[] for _ in range(COLUMNS)]
    for node in t.nodes.values():
        columns[_column_of(node)].append(node.id)
    shown = [c for c in range(COLUMNS) if columns[c]] or list(range(COLUMNS))

    # Guests and sockets first, grouped under their hub (hubs by VLAN), then
    # every other column level with the neighbours already placed.
    centre: dict[str, float] = {}
    hub_order = sorted(columns[3], key=lambda h: (str(t.nodes[h].attrs.get("vlan")), h))
    rank = {h: i for i, h in enumerate(hub_order)}
    in_file = {n: i for i, n in enumerate(t.nodes)}

    def hub_rank(n: str) -> tuple[int, int]:
        hubs = [rank[m] for m in adj[n] if m in rank]
        return (min(hubs) if hubs else len(rank), in_file[n])

    # A guest and its NICs stay together, the guest on top, placed by its first hub.
    machine_of: dict[str, guests.Machine] = {}
    for machine in guests.machines(t):
        if machine.guest is not None:
            machine_of[machine.id] = machine
            for nic in machine.nics:
                machine_of[nic] = machine
    units = [
        [n, *machine_of[n].nics] if n in machine_of else [n]
        for n in columns[4]
        if n not in machine_of or n == machine_of[n].id
    ]
    units.sort(key=lambda unit: min(hub_rank(n) for n in unit[1:] or unit) if len(unit) > 1 else hub_rank(unit[0]))
    order = [n for unit in units for n in unit]
    tops = _stack([(i * (BOX_H + GAP_Y), n) for i, n in enumerate(order)])
    for col in (4, 3, 2, 1, 0):
        if col != 4:
            wants = []
            for n in hub_order if col == 3 else columns[col]:
                placed = [centre[m] for m in adj[n] if m in centre]
                wants.append((sum(placed) / len(placed) if placed else None, n))
            tops = _stack(wants)
        for n, top in tops.items():
            centre[n] = top + BOX_H // 2
        columns[col] = [n for _, n in sorted((top, n) for n, top in tops.items())]

    # From here on, columns are those drawn: an empty one would leave a gap.
    out.column_titles = [COLUMN_TITLES[c] for c in shown]
    columns = [columns[c] for c in shown]
    ncols = len(shown)
    drawn = {kind_col: i for i, kind_col in enumerate(shown)}
    col_of = {n: drawn[_column_of(node)] for n, node in t.nodes.items()}

    # Channel widths depend on how many lanes their links need: route first
    # with column positions unknown (lanes counted per channel), then place.
    col_rows = [{(top, n) for n in columns[c] for top in [round(centre[n]) - BOX_H // 2]} for c in range(ncols)]
    occupied = [[range(top, top + BOX_H) for top, _ in sorted(col_rows[c])] for c in range(ncols)]

    def free_row(col: int, want: int) -> int:
        """A row of column col that no box covers, nearest to want."""

        def busy(y: int) -> bool:
            return any(y in r for r in occupied[col])

        for d in range(0, 10**4):
            for y in (want + d, want - d):
                if y >= MARGIN + 2 and not busy(y):
                    return y
        return want

    # Each link becomes hops across channels: (channel, left row, right row, link index, fan node).
    hops: list[tuple[int, int, int, int, str]] = []
    for index, (a, b) in enumerate(t.links):
        if a not in centre or b not in centre or a == b:
            continue
        ca, cb = col_of[a], col_of[b]
        if ca > cb:
            a, b, ca, cb = b, a, cb, ca
        ya, yb = round(centre[a]), round(centre[b])
        fan = a if len(adj[a]) >= len(adj[b]) else b
        if ca == cb:
            hops.append((ca + 1, ya, yb, index, fan))  # both on the channel's left side
            continue
        row = ya
        for col in range(ca + 1, cb):
            cross = free_row(col, yb)
            hops.append((col, row, cross, index, fan))
            row = cross
        hops.append((cb, row, yb, index, fan))

    # Lanes: one vertical trunk per fan node per channel; trunks whose spans
    # overlap get different lanes.
    spans: dict[tuple[int, str], list[int]] = {}
    for channel, y1, y2, _, fan in hops:
        lo, hi = min(y1, y2), max(y1, y2)
        span = spans.setdefault((channel, fan), [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    lanes: dict[tuple[int, str], int] = {}
    lane_count = [0] * (ncols + 1)
    by_channel: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for (channel, fan), (lo, hi) in spans.items():
        by_channel[channel].append((lo, hi, fan))
    for channel, items in by_channel.items():
        ends: list[int] = []  # per lane, the last row it is used to
        for lo, hi, fan in sorted(items):
            for lane, end in enumerate(ends):
                if end < lo - 1:
                    ends[lane] = hi
                    break
            else:
                lane = len(ends)
                ends.append(hi)
            lanes[(channel, fan)] = lane
        lane_count[channel] = len(ends)

    # Column x positions: channel c (left of column c, or right of the last) is wide enough for its lanes.
    x = MARGIN
    for col in range(ncols):
        x += 0 if col == 0 else 3 + 2 * lane_count[col]
        out.column_x.append(x)
        x += BOX_W
    out.width = x + (3 + 2 * lane_count[ncols] if lane_count[ncols] else 0) + MARGIN

    for col in range(ncols):
        for n in columns[col]:
            title, lines = box_text(t.nodes[n], machine_of.get(n))
            out.boxes[n] = Box(
                n,
                t.nodes[n].kind if isinstance(t.nodes[n].kind, Kind) else None,
                out.column_x[col],
                round(centre[n]) - BOX_H // 2,
                title,
                lines,
            )
    out.height = max((b.y + BOX_H for b in out.boxes.values()), default=MARGIN + 2) + MARGIN

    bits: dict[tuple[int, int], int] = {}
    masks: dict[tuple[int, int], int] = {}

    def hline(x1: int, x2: int, y: int, link: int) -> None:
        lo, hi, bit = min(x1, x2), max(x1, x2), 1 << link
        for px in range(lo, hi + 1):
            key = (px, y)
            bits[key] = bits.get(key, 0) | (E if px < hi else 0) | (W if px > lo else 0)
            masks[key] = masks.get(key, 0) | bit

    def vline(px: int, y1: int, y2: int, link: int) -> None:
        lo, hi, bit = min(y1, y2), max(y1, y2), 1 << link
        for py in range(lo, hi + 1):
            key = (px, py)
            bits[key] = bits.get(key, 0) | (S if py < hi else 0) | (N if py > lo else 0)
            masks[key] = masks.get(key, 0) | bit

    for channel, y1, y2, link, fan in hops:
        a, b = t.links[link]
        if channel == ncols or (channel < ncols and col_of[a] == col_of[b] == channel - 1):
            left = out.column_x[channel - 1] + BOX_W  # both ends on the right side of column channel-1
            lane_x = left + 2 + 2 * lanes[(channel, fan)]
            hline(left, lane_x, y1, link)
            vline(lane_x, y1, y2, link)
            hline(left, lane_x, y2, link)
            continue
        left = out.column_x[channel - 1] + BOX_W
        right = out.column_x[channel] - 1
        lane_x = left + 2 + 2 * lanes[(channel, fan)]
        hline(left, lane_x, y1, link)
        vline(lane_x, y1, y2, link)
        hline(lane_x, right, y2, link)
        # Across a column it skips, on the free row the hop ends at.
        cols = sorted((col_of[a], col_of[b]))
        if cols[0] < channel < cols[1]:
            hline(out.column_x[channel], out.column_x[channel] + BOX_W, y2, link)
    out.cells = {key: (value, masks[key]) for key, value in bits.items()}
    out.height = max(out.height, max((y for _, y in out.cells), default=0) + 1 + MARGIN)
    return out


def link_indices(mask: int) -> list[int]:
    """The links a cell's mask names."""
    out, i = [], 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out
