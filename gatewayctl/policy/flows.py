"""Flow evaluation over the compiled ruleset's own elements (the IR that renders the nftables sets).

A flow passes when an element of the grant sets holds (source . destination . protocol . port):
exactly what the kernel evaluates, so `query`, `test` and the firewall agree by construction.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gatewayctl.compile.ir import CompiledPolicy, GrantIR, PartnerIR, SetElement
from gatewayctl.model.types import IPNetwork

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_PROTO = r"(?:/(?P<proto>tcp|udp|icmp))?$"
TARGETS = (
    re.compile(r"^(?P<addr>\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?)(?::(?P<port>\d{1,5}))?" + _PROTO),  # 10.1.0.5:443/tcp
    re.compile(r"^\[(?P<addr>[0-9A-Fa-f:.]+)\](?P<len>/\d{1,3})?(?::(?P<port>\d{1,5}))?" + _PROTO),  # [fd00::1]/64:22
    re.compile(r"^(?P<addr>[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:/\d{1,3})?)" + _PROTO),  # fd00:1::10/tcp (no port)
)


@dataclass(frozen=True)
class Target:
    """Where a flow goes: a host or a network, a protocol, a port (None: any port / icmp)."""

    network: IPNetwork
    protocol: str
    port: int | None

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.network}{port}/{self.protocol}"


def parse_target(text: str) -> Target:
    """`10.1.0.5:443/tcp`, `10.9.0.0/16:22`, `[fd00:1::10]:443/tcp`, `10.1.0.1/icmp`; protocol defaults to tcp."""
    match = next((m for m in (t.match(text.strip()) for t in TARGETS) if m), None)
    if not match:
        raise ValueError(f"{text!r} is not ADDRESS[/PREFIX][:PORT][/tcp|udp|icmp], e.g. 10.1.0.5:443/tcp or "
                         "[fd00:1::10]:443/tcp")
    groups = match.groupdict()
    addr = groups["addr"] + (groups.get("len") or "")
    try:
        network = ipaddress.ip_network(addr, strict=False)
    except ValueError:
        raise ValueError(f"{addr!r} in {text!r} is not an address or network") from None
    port = int(groups["port"]) if groups.get("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} in {text!r} is outside 1-65535")
    protocol = match.group("proto") or "tcp"
    if protocol == "icmp" and port is not None:
        raise ValueError(f"{text!r}: icmp has no port")
    return Target(network, protocol, port)


@dataclass(frozen=True)
class Match:
    """An element that lets (part of) a flow through, with the partner and grants behind it."""

    partner: PartnerIR
    grants: tuple[GrantIR, ...]
    element: SetElement


def elements(policy: CompiledPolicy, version: int, protocol: str) -> tuple[SetElement, ...]:
    table = policy.table
    if protocol == "icmp":
        return table.icmp4 if version == 4 else table.icmp6
    return tuple(e for e in (table.grants4 if version == 4 else table.grants6) if e.protocol == protocol)


Index = tuple[dict[str, tuple[PartnerIR, GrantIR]], dict[tuple[str, int, str], list[SetElement]]]
_LAST: list[tuple[CompiledPolicy, Index]] = []


def _index(policy: CompiledPolicy) -> Index:
    """Grants by id, and each partner's elements by (partner, family, protocol): a question about one
    partner looks at that partner's elements only. Kept for the last policy asked about (by identity:
    hashing a whole policy would cost more than the index)."""
    if _LAST and _LAST[0][0] is policy:
        return _LAST[0][1]
    grants = {g.id: (p, g) for p in policy.partners for g in p.grants}
    by_partner: dict[tuple[str, int, str], list[SetElement]] = {}
    for version in (4, 6):
        for protocol in ("tcp", "udp", "icmp"):
            for element in elements(policy, version, protocol):
                owner = grants[element.grants[0]][0].id
                by_partner.setdefault((owner, version, protocol), []).append(element)
    _LAST[:] = [(policy, (grants, by_partner))]
    return grants, by_partner


def matches(policy: CompiledPolicy, target: Target, source: IPNetwork | None = None,
            partner: str | None = None) -> list[Match]:
    """Every element through which some flow from `source` (or from `partner`, or anyone) reaches `target`."""
    grants, by_partner = _index(policy)
    found = []
    candidates = (by_partner.get((partner, target.network.version, target.protocol), []) if partner is not None
                  else elements(policy, target.network.version, target.protocol))
    for element in candidates:
        if not element.destination.overlaps(target.network):
            continue
        if target.port is not None and element.ports is not None and not element.ports.first <= target.port <= element.ports.last:
            continue
        if source is not None and not element.source.overlaps(source):
            continue
        owners = [grants[g] for g in element.grants if g in grants]
        if not owners or (partner is not None and owners[0][0].id != partner):
            continue
        found.append(Match(owners[0][0], tuple(g for _, g in owners), element))
    return found


def owner_of(policy: CompiledPolicy, source: Address) -> PartnerIR | None:
    for partner in policy.partners:
        if any(source in net for net in partner.sources):
            return partner
    return None
