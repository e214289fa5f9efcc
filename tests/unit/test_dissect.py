"""Which bytes of a frame each layer and field came from (what the frame
detail marks in its hex view), on scapy-built frames."""

from __future__ import annotations

import itertools

import pytest

from qnet_tui import dissect
from qnet_tui.dissect import Layer, Span

scapy_all = pytest.importorskip("scapy.all")
inet6 = pytest.importorskip("scapy.layers.inet6")


def spans(frame: bytes) -> dict[str, tuple[Span | None, dict[str, Span | None]]]:
    return {layer.name: (layer.span, {f.name: f.span for f in layer.fields}) for layer in dissect.layers(frame)}


def assert_tiled(frame: bytes, layers: list[Layer]) -> None:
    """Layers one after another from the first byte to the last, each field inside its layer."""
    assert layers[0].span is not None and layers[0].span[0] == 0 and layers[-1].span[1] == len(frame)
    for before, after in itertools.pairwise(layers):
        assert before.span[1] == after.span[0], (before.name, after.name)
    for layer in layers:
        for f in layer.fields:
            assert f.span is None or layer.span[0] <= f.span[0] <= f.span[1] <= layer.span[1], (layer.name, f)


def test_ip_and_tcp_with_options():
    s = scapy_all
    packet = (
        s.Ether()
        / s.IP(src="10.0.0.1", dst="10.0.0.2", options=[s.IPOption_RR()])
        / s.TCP(options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
        / s.Raw(b"hello")
    )
    frame = bytes(packet)
    layers = dissect.layers(frame)
    assert_tiled(frame, layers)
    got = spans(frame)
    assert [name for name in got] == ["Ethernet", "IP", "TCP", "Raw"]
    ip_span, ip = got["IP"]
    assert ip_span == (14, 38)  # 20 bytes and 4 of options
    assert ip["version"] == ip["ihl"] == (14, 15)  # bit fields: the byte they share
    assert ip["flags"] == (20, 21) and ip["frag"] == (20, 22)  # 3 bits, then 13 across two bytes
    assert frame[slice(*ip["src"])] == bytes([10, 0, 0, 1]) and frame[slice(*ip["dst"])] == bytes([10, 0, 0, 2])
    assert ip["options"] == (34, 38)
    tcp_span, tcp = got["TCP"]
    assert tcp_span == (38, 66)  # 20 bytes and 8 of options
    assert tcp["dataofs"] == (50, 51) and tcp["flags"] == (50, 52)
    assert tcp["options"] == (58, 66)
    assert got["Raw"] == ((66, 71), {"load": (66, 71)})


def test_a_vlan_tag_and_udp():
    s = scapy_all
    frame = bytes(s.Ether() / s.Dot1Q(vlan=5, prio=3) / s.IP() / s.UDP(dport=53) / s.Raw(b"q"))
    assert_tiled(frame, dissect.layers(frame))
    got = spans(frame)
    span, tag = got["802.1Q"]
    assert span == (14, 18)
    assert tag["prio"] == tag["dei"] == (14, 15) and tag["vlan"] == (14, 16) and tag["type"] == (16, 18)
    assert got["IP"][0] == (18, 38) and got["UDP"][0] == (38, 46)
    assert frame[slice(*got["UDP"][1]["dport"])] == (53).to_bytes(2, "big")


def test_ipv6_and_icmpv6():
    s, s6 = scapy_all, inet6
    frame = bytes(s.Ether() / s6.IPv6(src="fd00::1", dst="fd00::2") / s6.ICMPv6EchoRequest(id=7, data=b"abcd"))
    layers = dissect.layers(frame)
    assert_tiled(frame, layers)
    got = spans(frame)
    span, ip6 = got["IPv6"]
    assert span == (14, 54)
    assert ip6["version"] == (14, 15) and ip6["tc"] == (14, 16) and ip6["fl"] == (15, 18)
    assert ip6["src"] == (22, 38) and ip6["dst"] == (38, 54)
    echo = layers[-1]
    assert echo.span == (54, 66)
    fields = {f.name: f.span for f in echo.fields}
    assert fields["id"] == (58, 60) and fields["data"] == (62, 66)


def test_arp_and_the_padding_after_it():
    s = scapy_all
    frame = bytes(s.Ether(dst="ff:ff:ff:ff:ff:ff") / s.ARP(pdst="10.0.0.2") / s.Padding(b"\0" * 18))
    layers = dissect.layers(frame)
    assert_tiled(frame, layers)
    got = spans(frame)
    assert got["ARP"][0] == (14, 42) and got["ARP"][1]["pdst"] == (38, 42)
    assert got["Padding"][0] == (42, 60)


def test_a_cut_frame_ends_where_the_bytes_kept_do():
    s = scapy_all
    frame = bytes(s.Ether() / s.IP() / s.TCP() / s.Raw(b"x" * 1460))[:256]  # as the worker keeps it
    layers = dissect.layers(frame)
    assert_tiled(frame, layers)
    assert layers[-1].name == "Raw" and layers[-1].span == (54, 256)
    assert layers[-1].fields[0].span == (54, 256)


def test_an_icmp_error_and_the_headers_it_quotes():
    # scapy keeps no bytes of an ICMP layer (its trailer field): built again, then checked against the frame.
    s = scapy_all
    frame = bytes(s.Ether() / s.IP() / s.ICMP(type=3, code=3) / s.IP(dst="1.2.3.4") / s.UDP(dport=53) / b"abcd")
    layers = dissect.layers(frame)
    assert_tiled(frame, layers)
    got = spans(frame)
    assert got["ICMP"][0] == (34, 42) and got["ICMP"][1]["type"] == (34, 35)
    assert got["ICMP"][1]["ext"] is None  # taken from the frame's end: not known
    assert got["IP in ICMP"][0] == (42, 62) and got["UDP in ICMP"][0] == (62, 70)


def test_a_field_that_cannot_be_replayed_leaves_its_layer_without_field_spans(monkeypatch):
    s = scapy_all
    from scapy.layers.inet import TCPOptionsField

    frame = bytes(s.Ether() / s.IP() / s.TCP(options=[("MSS", 1460)]) / s.Raw(b"data"))
    decode = TCPOptionsField.getfield
    calls = []

    def second_time_fails(self, pkt, s):
        calls.append(1)
        if len(calls) > 1:
            raise IndexError("replay")
        return decode(self, pkt, s)

    monkeypatch.setattr(TCPOptionsField, "getfield", second_time_fails)
    got = spans(frame)
    assert len(calls) == 2  # scapy's decoding, then the replay
    assert got["TCP"][0] == (34, 58) and set(got["TCP"][1].values()) == {None}
    assert got["Raw"][0] == (58, 62) and got["IP"][1]["ttl"] == (22, 23)


def test_a_frame_scapy_cannot_take_apart_says_why():
    with pytest.raises(dissect.DissectError, match="scapy cannot decode it"):
        dissect.layers(b"\x01\x02\x03")


def test_hex_ranges_cover_hex_pairs_and_ascii_of_each_row():
    frame = bytes(range(0x41, 0x41 + 20))  # "ABC...": printable, so the ASCII column shows which bytes
    text = "\n".join(dissect.hex_rows(frame))
    marked = [text[a:b] for a, b in dissect.hex_ranges((6, 18))]
    assert marked == ["47 48  49 4a 4b 4c 4d 4e 4f 50", "GHIJKLMNOP", "51 52", "QR"]
    assert [text[a:b] for a, b in dissect.hex_ranges((19, 20))] == ["54", "T"]  # the short last row
    assert dissect.hex_ranges((5, 5)) == []
