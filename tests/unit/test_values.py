"""Single values: the fast reading of IPv4 addresses agrees with the ipaddress
module everywhere, and unix paths compare by what they name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qnet_tui.model import values


def by_ipaddress(value: str) -> tuple[object, str | None]:
    try:
        return values.interface_address(value, 4).ip, None
    except ValueError as exc:
        return None, str(exc)


octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "0x1", "٣", "", "256"]))
prefix = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["08", "024", "", "255.255.255.0", "-1"]))
ipv4_like = st.builds(lambda a, b, c, d, p: f"{a}.{b}.{c}.{d}/{p}", octet, octet, octet, octet, prefix)


@given(st.one_of(ipv4_like, st.text(max_size=20)))
def test_host_address_agrees_with_ipaddress(value):
    assert values.host_address(value, 4) == by_ipaddress(value)


@pytest.mark.parametrize(
    "value",
    ["10.0.0.1/24", "10.0.0.0/24", "10.0.0.255/24", "10.0.0.0/31", "10.0.0.1/32", "0.0.0.0/0", "224.0.0.1/4",
     "239.255.255.255/8", "240.0.0.1/4", "255.255.255.255/32", "1.2.3.4/0", "127.0.0.1/8", "010.0.0.1/8"],
)  # fmt: skip
def test_host_address_edges(value):
    assert values.host_address(value, 4) == by_ipaddress(value)


@pytest.mark.parametrize(
    ("a", "b"),
    [("vm.sock", "./vm.sock"), ("a//b.sock", "a/./b.sock"), ("//run/x.sock", "/run/x.sock"), ("/var/run/x", "/run/x")],
)
def test_unix_paths_compare_by_what_they_name(a, b):
    assert values.normalize_unix_path(a) == values.normalize_unix_path(b)


def test_inet_endpoints_compare_by_what_they_name():
    assert values.inet_endpoint("localhost:80") == values.inet_endpoint("127.0.0.1:80") == ("127.0.0.1", 80)
    assert values.inet_endpoint("[0:0::1]:80") == ("::1", 80)
    assert values.inet_endpoint("Example.ORG:80") == ("example.org", 80)
    assert values.inet_endpoint("nope") is None
