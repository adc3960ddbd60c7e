"""drift on a pair's node: the pair's own output table (send only from the floating address) is not foreign,
as long as all it does is drop; anything else in it is reported."""

from __future__ import annotations

import copy
from typing import Any

from gatewayctl.host.bypassstate import parse_base_chains


def _match(protocol: str, field: str, op: str, right: object) -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


# as `nft -j list table inet gatewayctl_ha` printed it on a lab node (templates/ha/gatewayctl-ha.nft.j2)
LISTING: dict[str, Any] = {"nftables": [
    {"table": {"family": "inet", "name": "gatewayctl_ha", "handle": 8}},
    {"chain": {"family": "inet", "table": "gatewayctl_ha", "name": "output", "handle": 1, "type": "filter",
               "hook": "output", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "gatewayctl_ha", "chain": "output", "handle": 2, "expr": [
        _match("udp", "sport", "==", 51820), _match("ip", "saddr", "!=", "192.0.2.1"), {"drop": None}]}},
    {"rule": {"family": "inet", "table": "gatewayctl_ha", "chain": "output", "handle": 3, "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}},
        _match("udp", "sport", "==", 51820), {"drop": None}]}},
]}


def test_the_pairs_drop_only_table_is_not_foreign() -> None:
    assert list(parse_base_chains(LISTING, "gatewayctl", {})) == []


def test_the_same_table_is_foreign_for_another_gatewayctl_table() -> None:
    assert [c.table for c in parse_base_chains(LISTING, "gatewayctl_x", {})] == ["gatewayctl_ha"]


def test_a_mark_added_to_it_is_reported() -> None:
    """A mark can steer routing (policy routing by fwmark): more than a drop, so it is reported."""
    tampered = copy.deepcopy(LISTING)
    tampered["nftables"].append({"rule": {"family": "inet", "table": "gatewayctl_ha", "chain": "output", "handle": 4,
                                          "expr": [_match("ip", "daddr", "==", "10.250.1.1"),
                                                   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}}]}})
    chains = list(parse_base_chains(tampered, "gatewayctl", {}))
    assert [c.table for c in chains] == ["gatewayctl_ha"] and any(e.what != "drop" for e in chains[0].effects)


def test_a_forward_chain_in_it_is_reported() -> None:
    moved = copy.deepcopy(LISTING)
    moved["nftables"][1]["chain"]["hook"] = "forward"
    assert [c.hook for c in parse_base_chains(moved, "gatewayctl", {})] == ["forward"]
