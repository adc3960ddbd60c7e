"""drift sees every bypass: other tables' base chains (any family, any hook), iptables-legacy, and
WireGuard devices carrying the gateway's keys under another name.

Unit tests parse tests/cases/snapshots/bypass/foreign.json, captured for real by
tests/capture_bypass.py from bypass.nft and iptables.txt in the same folder; the root tests capture
again; tests/test_drift_bypass_lab.py runs drift on a lab gateway with a netdev `fwd` chain and with
a renamed interface.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from gatewayctl.drift import bypass
from gatewayctl.drift.check import HOST_CHANGED, check
from gatewayctl.host.base import parse_snapshot
from gatewayctl.host.bypassstate import parse_foreign
from gatewayctl.host.fake import FakeDevice, FakeHost
from gatewayctl.host.nftstate import NftTableState
from gatewayctl.host.wgtypes import public_of
from gatewayctl.plan.spec import GatewaySpec, PeerSpec, spec_to_json
from tests.capture_bypass import HERE, capture

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
GATEWAY_PRIVATE = bytes(range(1, 33))
PEERS = {  # key -> allowed IPs: a pool address each, one partner LAN, one IPv6 pool address
    base64.b64encode(bytes([n]) * 32).decode(): ips
    for n, ips in [(11, {"10.250.1.1/32"}), (12, {"10.250.2.1/32", "100.64.20.0/24"}), (13, {"fd00:250::3/128"})]
}


def spec(ifname: str = "wg-partners") -> GatewaySpec:
    peers = {k: PeerSpec(f"p{i}", "main", k, frozenset(ips), None, 0, None, None) for i, (k, ips) in enumerate(PEERS.items())}
    return GatewaySpec(ifname, 51820, public_of(GATEWAY_PRIVATE), "/nonexistent/key", 1420, frozenset({"10.250.0.1/16"}),
                       frozenset(), peers, "gatewayctl", NftTableState("gatewayctl", {}, {}), {}, True, False)


def findings_of(foreign: dict[str, Any], specs: tuple[GatewaySpec, ...] | None = None) -> dict[str, tuple[str, str]]:
    live = parse_snapshot({"table": "gatewayctl", "foreign": foreign})
    return {subject: (kind, detail) for kind, subject, detail in bypass.host_findings(live, specs or (spec(),))}


@pytest.fixture
def captured() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "foreign.json").read_text())
    return data


# What bypass.nft and iptables.txt load, chain by chain: the statements drift must name ...
REPORTED = {
    "netdev gwtest_ingress steal": ["fwd to device svc0 (ip 10.40.0.9)", "dup to svc0", "the partner interface",
                                    "priority -500"],
    "netdev gwtest_egress out": ["meta mark set 7", "svc0, not the partner interface"],
    "netdev gwtest_egress multi": ["drop", "device svc0, svc1"],
    "inet gwtest_ing c": ["policy drop", "the partner interface"],
    "ip gwtest_nat pre": ["dnat to 10.30.2.7:22", "prerouting"],
    "inet gwtest_raw pre": ["notrack", "ct helper set ftp-x"],
    "ip gwtest_tproxy pre": ["tproxy to 127.0.0.1:8443", "meta mark set 1"],
    "inet gwtest_filter c_fwd": ["drop (via fromwg)", "reject (via fromwg > deeper)"],
    "inet gwtest_filter out": ["meta mark set 2", "output"],
    "ip filter FORWARD": ["drop"],
    "ip nat PREROUTING": ["iptables-nft target DNAT"],
    "ip mangle PREROUTING": ["iptables-nft target TEE"],
    "bridge gwtest_br fw": ["policy drop", "bridge forward"],
    "arp gwtest_arp in": ["drop", "arp input"],
    "iptables-legacy ip filter FORWARD": ["MARK --set-xmark 0x9/0xffffffff (via GWTEST)"],
    "iptables-legacy ip nat PREROUTING": ["DNAT --to-destination 10.30.5.6:22"],
    "iptables-legacy ip raw PREROUTING": ["notrack"],
    "iptables-legacy ip6 filter FORWARD": ["policy drop"],
}
# ... and the statements that cannot touch a partner packet (another input interface, a source
# outside every partner network) or do not change its fate (accept, counter).
NOT_NAMED = {
    "ip gwtest_nat pre": ["redirect", "10.30.2.8"],
    "inet gwtest_filter c_fwd": ["docker0", "; drop;", "accept"],
    "ip filter FORWARD": ["eth9"],
    "iptables-legacy ip filter FORWARD": ["DROP"],
    "inet gwtest_raw pre": ["accept"],
}
HARMLESS = ["netdev gwtest_egress quiet", "inet gwtest_filter allok", "ip gwtest_benign c_fwd", "ip6 gwtest_v6 in",
            "ip gwtest_nat post", "iptables-legacy ip6 filter INPUT", "iptables-legacy ip filter INPUT"]


def by_chain(found: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Chain name (the subject without its hook part) -> kind and detail."""
    return {subject.split(" (hook")[0]: f"{kind} {subject} {detail}" for subject, (kind, detail) in found.items()}


def test_every_captured_bypass_is_reported_with_what_it_does(captured: dict[str, Any]) -> None:
    found = by_chain(findings_of(captured))
    assert set(found) == set(REPORTED), sorted(set(found) ^ set(REPORTED))
    for chain, texts in REPORTED.items():
        assert found[chain].startswith("foreign-base-chain ")
        for text in texts:
            assert text in found[chain], (chain, text, found[chain])
    for chain, texts in NOT_NAMED.items():
        for text in texts:
            assert text not in found[chain].split(" it does: ")[1], (chain, text, found[chain])


def test_accept_and_counters_alone_are_not_a_bypass(captured: dict[str, Any]) -> None:
    chains = {str(c) for c in parse_foreign(captured, "gatewayctl").chains}
    found = by_chain(findings_of(captured))
    for chain in HARMLESS:
        assert chain in chains and chain not in found, chain


def test_rules_for_another_interface_count_once_the_partner_interface_has_that_name(captured: dict[str, Any]) -> None:
    found = by_chain(findings_of(captured, (spec("docker0"),)))
    assert "redirect to :80" in found["ip gwtest_nat pre"]
    assert "dnat to 10.30.2.7:22" not in found["ip gwtest_nat pre"]
    assert "iptables-legacy ip6 filter INPUT" in found


def test_without_partner_networks_a_source_match_does_not_excuse_a_statement(captured: dict[str, Any]) -> None:
    lonely = dataclasses.replace(spec(), peers={})
    found = by_chain(findings_of(captured, (lonely,)))
    assert "dnat to 10.30.2.8" in found["ip gwtest_nat pre"]


def nft_item(kind: str, **fields: Any) -> dict[str, Any]:
    return {kind: {"family": "inet", "table": "t", **fields}}


def test_statements_this_kernel_cannot_load_are_reported() -> None:
    """queue, flow offload and address rewriting need modules this machine lacks: hand-written in
    libnftables-json(5) form, with a named verdict map and a rule after an unconditional accept."""
    rules = [[{"queue": {"num": 3}}], [{"flow": {"op": "add", "flowtable": "@ft"}}],
             [{"mangle": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "value": "10.30.7.7"}}],
             [{"snat": {"addr": "10.40.0.1"}}],
             [{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@byif"}}],
             [{"accept": None}], [{"drop": None}]]
    listing = [nft_item("chain", name="c", type="filter", hook="forward", prio=-5, policy="drop"),
               nft_item("chain", name="sub"), nft_item("rule", chain="sub", expr=[{"mangle": {
                   "key": {"ct": {"key": "mark"}}, "value": 5}}]),
               nft_item("map", name="byif", type="ifname", map="verdict",
                        elem=[["wg-partners", {"jump": {"target": "sub"}}], ["eth9", {"drop": None}]])]
    listing += [nft_item("rule", chain="c", expr=e) for e in rules]
    found = findings_of({"nft": {"nftables": listing}})
    ((subject, (kind, detail)),) = found.items()
    assert kind == "foreign-base-chain" and subject == "inet t c (hook forward, priority -5, policy drop)"
    _, did = detail.split(" it does: ")
    for text in ["queue to userspace (num 3)", "flow add @ft (offloaded flows skip the forward hook)",
                 "ip daddr set 10.30.7.7", "snat to 10.40.0.1", "ct mark set 5 (via sub)"]:
        assert text in did, (text, did)
    assert "drop" not in did.replace("policy drop", "") and "policy drop" not in did  # after the accept: unreachable
    assert "before gatewayctl" not in detail  # no own chain on that hook in this snapshot


def test_unreadable_iptables_legacy_is_drift() -> None:
    found = findings_of({"legacy": {"ip": {"tables": ["filter", "nat"], "save": None,
                                           "error": "iptables-legacy-save is not installed"}}})
    ((_subject, (kind, detail)),) = found.items()
    assert kind == "foreign-ruleset-unreadable" and "filter, nat" in detail and "not installed" in detail


def applied_gateway() -> tuple[FakeHost, GatewaySpec]:
    host = FakeHost()
    host.links["wg-partners"] = {"name": "wg-partners", "index": 10, "up": True, "mtu": 1420, "kind": "tun",
                                 "addresses": ["10.250.0.1/16"], "routes": []}
    host.devices["wg-partners"] = FakeDevice(GATEWAY_PRIVATE, 51820, {
        k: {"psk": None, "endpoint": None, "keepalive": 0, "allowed_ips": sorted(ips), "handshake": 0, "rx": 0, "tx": 0}
        for k, ips in PEERS.items()})
    return host, spec()


def drift(host: FakeHost, desired: GatewaySpec, record: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    live = parse_snapshot(host.snapshot(desired.ifname, desired.table_name))
    report = check(desired, live, record, NOW)
    assert report.status == HOST_CHANGED
    return [(f.kind, f.subject, f.detail) for f in report.host_findings]


def test_a_bypass_present_at_the_last_apply_is_still_reported() -> None:
    host, desired = applied_gateway()
    host.foreign_chains.append({"family": "netdev", "table": "tester", "name": "steal", "hook": "ingress",
                                "prio": -500, "policy": "accept", "dev": "wg-partners"})
    host.foreign_rules.append({"family": "netdev", "table": "tester", "chain": "steal",
                               "expr": [{"fwd": {"dev": "svc0", "family": "ip", "addr": "10.40.0.9"}}]})
    record = json.loads(json.dumps(spec_to_json(desired)))
    record["foreign_chains"] = ["netdev tester steal (hook ingress, priority -500, policy accept)"]
    for applied in (record, None):  # and on a gateway that was never applied
        found = drift(host, desired, applied)
        assert ("foreign-base-chain", "netdev tester steal (hook ingress device wg-partners, priority -500, policy accept)",
                "netdev ingress on wg-partners, the partner interface: every partner packet, before any IP hook; "
                "it does: fwd to device svc0 (ip 10.40.0.9)") in found


def test_the_gateway_renamed_or_copied_is_reported_with_both_names_and_no_secret() -> None:
    host, desired = applied_gateway()
    record = json.loads(json.dumps(spec_to_json(desired)))
    host.links["other0"] = {**host.links.pop("wg-partners"), "name": "other0"}
    host.devices["other0"] = host.devices.pop("wg-partners")
    copy_peers = {k: v for k, v in host.devices["other0"].peers.items() if "10.250.1.1/32" in v["allowed_ips"]}
    host.devices["copy1"] = FakeDevice(bytes([99]) * 32, 51821, copy.deepcopy(copy_peers))
    host.links["copy1"] = {**host.links["other0"], "name": "copy1"}
    found = drift(host, desired, record)
    assert "interface-missing" in {k for k, _, _ in found}
    renamed = {d for k, s, d in found if k == "interface-renamed" and s == "interface wg-partners"}
    assert any("'other0'" in d and "the gateway's public key and 3 of its 3 peers" in d for d in renamed), renamed
    assert any("'copy1'" in d and "1 of its 3 peers" in d and "public key" not in d for d in renamed), renamed
    text = json.dumps(found)
    for secret in (GATEWAY_PRIVATE, bytes([99]) * 32):
        assert secret.hex() not in text and base64.b64encode(secret).decode() not in text


def test_a_device_with_none_of_the_gateways_keys_is_not_drift() -> None:
    host, desired = applied_gateway()
    host.devices["lab0"] = FakeDevice(bytes([42]) * 32, 51999, {})
    live = parse_snapshot(host.snapshot(desired.ifname, desired.table_name))
    assert bypass.host_findings(live, (desired,)) == []


# Root: the capture is what the real host acquires today (drift on a real gateway: test_drift_bypass_lab.py).

def test_captured_snapshot_is_what_the_real_host_acquires(needs_root: None, captured: dict[str, Any]) -> None:
    assert capture() == captured
