"""Shortcuts around ipaddress where thousands of addresses are spelt (host/uapi.canonical_network,
plan/diff._owners): held to ipaddress's own spelling."""

from __future__ import annotations

import ipaddress
import random

import pytest

from gatewayctl.host.uapi import canonical_network
from gatewayctl.plan.diff import _owners
from gatewayctl.plan.spec import GatewaySpec, PeerSpec

EDGES = ["0.0.0.0/32", "255.255.255.255/32", "10.0.0.1/32", "100.64.1.100/32", "10.0.0.1/24", "10.0.0.0/8",
         "0.0.0.0/0", "fd00:1::1/128", "fd00:1:0:0::5/128", "FD00::1/128", "fd00:1::/48", "::/0", "1.2.3.4/31"]


@pytest.mark.parametrize("text", EDGES)
def test_canonical_network_is_ipaddress_spelling(text: str) -> None:
    assert canonical_network(text) == str(ipaddress.ip_network(text, strict=False))


def test_canonical_network_on_random_addresses() -> None:
    rng = random.Random(13)
    for _ in range(2000):
        text = f"{ipaddress.IPv4Address(rng.getrandbits(32))}/{rng.choice([32, 32, 24, 16, 31])}"
        assert canonical_network(text) == str(ipaddress.ip_network(text, strict=False)), text


@pytest.mark.parametrize("text", ["01.2.3.4/32", "1.2.3/32", "256.1.1.1/32", "1.2.3.4/33", "1.2.3.4 /32"])
def test_what_ipaddress_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_network(text)


def test_owners_are_keyed_as_ipaddress_spells_sources() -> None:
    nets = ["100.64.1.100/32", "10.9.0.0/24", "fd00:250::4:2/128", "fd00:1::/48", "10.9.1.7/32"]
    peers = {f"k{i}": PeerSpec(f"p{i}", "site", f"k{i}", frozenset([net]), None, 0, None, None)
             for i, net in enumerate(nets)}
    spec = GatewaySpec("wg0", 51820, "pub", "/k", 1420, frozenset(), frozenset(), peers, "t", None, {}, False, False)  # type: ignore[arg-type]
    expected = {}
    for i, text in enumerate(nets):
        net = ipaddress.ip_network(text)
        expected[str(net.network_address) if net.prefixlen == net.max_prefixlen else text] = f"p{i}"
    assert _owners(spec) == expected
    assert _owners(spec)["fd00:250::4:2"] == "p2" and _owners(spec)["10.9.0.0/24"] == "p1"
