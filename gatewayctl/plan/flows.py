"""Tracked flows against the access in force: which open connections no grant covers any more.

Pure: tracked flows (as the host reads them) and a table (as the kernel lists it, or as apply
desires it) in, the flows that nothing allows out. apply deletes those flows' conntrack entries,
drift reports them. The grant sets are read back from their element keys, the same text nft
lists, so the answer is what the kernel's sets say, not what the compiler meant.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatewayctl.host.nftstate import NftSet

GRANT_SETS = ("grants4", "grants6", "ranges4", "ranges6")
ICMP_SETS = ("icmp4", "icmp6")
GATED_SETS = ("gated4", "gated6")
GATED_ICMP_SETS = ("gated_icmp4", "gated_icmp6")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Flow:
    """The original direction of a tracked connection."""

    family: int
    proto: str
    src: str
    dst: str
    sport: int | None
    dport: int | None
    raw: dict[str, Any]

    def __str__(self) -> str:
        port = f":{self.dport}" if self.dport is not None else ""
        return f"{self.src} -> {self.dst}{port}/{self.proto}"


def parse_flows(raw: Iterable[dict[str, Any]]) -> list[Flow]:
    return [Flow(int(r["family"]), str(r["proto"]), str(r["src"]), str(r["dst"]), r.get("sport"), r.get("dport"), r)
            for r in raw]


@dataclass(frozen=True)
class _Rule:
    src: Net
    dst: Net
    proto: str | None  # None: ICMP echo (the icmp sets)
    first: int
    last: int
    gated: bool


class Coverage:
    """The grant elements of one table, indexed by exact source address (most elements) and a short
    list of elements whose source is a network, so one flow is checked against a handful of elements."""

    def __init__(self, sets: Mapping[str, NftSet], auth_port: int | None = None, assume_sessions: bool = False,
                 sources: Collection[str] | None = None) -> None:
        """`sources`: the source addresses of the flows to judge (nft's spelling); elements with
        another single source are not parsed (at 5,000 partners parsing every element took ~1 s)."""
        self.by_host: dict[Address, list[_Rule]] = {}
        self.by_net: list[_Rule] = []
        for names, gated in ((GRANT_SETS + ICMP_SETS, False), (GATED_SETS + GATED_ICMP_SETS, True)):
            for name in names:
                if name in sets:
                    for key in sets[name].elements:
                        source = key.split(" . ", 1)[0]
                        if sources is None or "/" in source or source in sources:
                            self._add(_rule(key, gated))
        self.sessions = {ipaddress.ip_address(k) for n in ("sessions4", "sessions6") if n in sets for k in sets[n].elements}
        self.auth_clients = [ipaddress.ip_network(k) for n in ("auth_clients4", "auth_clients6") if n in sets
                             for k in sets[n].elements]
        self.auth_port = auth_port
        self.assume_sessions = assume_sessions

    def _add(self, rule: _Rule) -> None:
        if rule.src.prefixlen == rule.src.max_prefixlen:
            self.by_host.setdefault(rule.src.network_address, []).append(rule)
        else:
            self.by_net.append(rule)

    def covers(self, flow: Flow) -> bool:
        """Whether a packet of this flow's original direction would pass the grant checks now."""
        src, dst = ipaddress.ip_address(flow.src), ipaddress.ip_address(flow.dst)
        if (self.auth_port is not None and flow.proto == "tcp" and flow.dport == self.auth_port
                and any(src in net for net in self.auth_clients)):
            return True
        for rule in self.by_host.get(src, []) + [r for r in self.by_net if src in r.src]:
            if rule.gated and not self.assume_sessions and src not in self.sessions:
                continue
            if dst not in rule.dst:
                continue
            if rule.proto is None:
                if flow.proto in ("icmp", "icmpv6"):
                    return True
            elif rule.proto == flow.proto and flow.dport is not None and rule.first <= flow.dport <= rule.last:
                return True
        return False


def _rule(key: str, gated: bool) -> _Rule:
    parts = [p.strip() for p in key.split(" . ")]
    src, dst = ipaddress.ip_network(parts[0], strict=False), ipaddress.ip_network(parts[1], strict=False)
    if len(parts) == 2:
        return _Rule(src, dst, None, 0, 0, gated)
    first, _, last = parts[3].partition("-")
    return _Rule(src, dst, parts[2], int(first), int(last or first), gated)


def uncovered(flows: Iterable[Flow], coverage: Coverage, partner_nets: Iterable[Net],
              own: Iterable[Address]) -> list[Flow]:
    """Flows from partner addresses that no grant covers, and flows opened toward a partner (a
    partner is never the server side of a grant). The gateway's own addresses are left alone."""
    nets = list(partner_nets)
    mine = set(own)
    found = []
    for flow in flows:
        src, dst = ipaddress.ip_address(flow.src), ipaddress.ip_address(flow.dst)
        if src in mine:
            continue
        if any(src in net for net in nets):
            if not coverage.covers(flow):
                found.append(flow)
        elif any(dst in net for net in nets) and dst not in mine:
            found.append(flow)
    return found


def stale_flows(raw: Iterable[dict[str, Any]], sets: Mapping[str, NftSet], auth_port: int | None,
                own_interfaces: Iterable[str]) -> list[Flow]:
    """The tracked flows that the table `sets` (partner_nets, grant, session sets) no longer allows."""
    nets = [ipaddress.ip_network(k) for n in ("partner_nets4", "partner_nets6") if n in sets for k in sets[n].elements]
    own = [ipaddress.ip_interface(a).ip for a in own_interfaces]
    flows = [f for f in parse_flows(raw) if _touches(f, nets)]
    if not flows:
        return []
    return uncovered(flows, Coverage(sets, auth_port, sources={_spelled(f.src) for f in flows}), nets, own)


def _touches(flow: Flow, nets: list[Net]) -> bool:
    src, dst = ipaddress.ip_address(flow.src), ipaddress.ip_address(flow.dst)
    return any(src in net or dst in net for net in nets)


def _spelled(address: str) -> str:
    """An address as nft spells it in an element key (compressed IPv6)."""
    return str(ipaddress.ip_address(address))


def partner_of(flow: Flow, allowed: Mapping[str, Iterable[str]]) -> str:
    """The partner whose peer owns an address of the flow (its source, else its destination), or "-"."""
    for address in (flow.src, flow.dst):
        ip = ipaddress.ip_address(address)
        for partner, nets in allowed.items():
            if any(ip in ipaddress.ip_network(n) for n in nets):
                return partner
    return "-"
