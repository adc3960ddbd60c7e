"""The nftables part of the IR: grant sets, verdict maps and deny chains.

The rule count is fixed: partners and grants only add set and map elements.
The one exception is deny logging with `per_partner: true`, which adds one small
chain per partner, reached only by that partner's denied packets, so the log
prefix can name the partner.
"""

from __future__ import annotations

from gatewayctl.compile.intervals import Key, disjoint
from gatewayctl.compile.ir import AuthClient, DenyChain, DenyEntry, GrantIR, NftTableIR, PartnerIR, SetElement
from gatewayctl.model.gateway import GatewayFile
from gatewayctl.model.types import IPNetwork

SHARED_DENY_CHAIN = "deny_partner"


def build_table(gw: GatewayFile, partners: tuple[PartnerIR, ...]) -> NftTableIR:
    """Return the table IR; elements are deduplicated, made disjoint and sorted for byte-identical output."""
    spans: dict[int, tuple[int, int]] = {}  # id of a network object -> (address, prefix length), worked out once

    def span(network: IPNetwork) -> tuple[int, int]:
        found = spans.get(id(network))
        if found is None:
            found = spans[id(network)] = (int(network.network_address), network.prefixlen)
        return found

    # One key per element, both its identity and its place in the output: family, source, destination,
    # protocol, ports, all as numbers (hashing and comparing ipaddress objects is slow Python code).
    merged: dict[Key, SetElement] = {}
    for partner in partners:
        gated = partner.certificates is not None and partner.certificates.session_seconds is not None
        for grant in partner.grants:
            for element in _elements(grant, gated):
                ports = (element.ports.first, element.ports.last) if element.ports else (0, 0)
                key = (element.family, *span(element.source), *span(element.destination), element.protocol, ports)
                old = merged.get(key)
                merged[key] = element if old is None else _merge(old, element)
    elements = disjoint(merged)  # sorted; overlapping elements cut into pieces an interval set accepts
    logging = gw.deny_logging
    chains, entries = _deny(partners, gw)
    return NftTableIR(
        name=gw.firewall.table,
        interface=gw.wireguard.interface,
        grants4=tuple(e for e in elements if e.family == 4 and e.protocol != "icmp"),
        grants6=tuple(e for e in elements if e.family == 6 and e.protocol != "icmp"),
        icmp4=tuple(e for e in elements if e.family == 4 and e.protocol == "icmp"),
        icmp6=tuple(e for e in elements if e.family == 6 and e.protocol == "icmp"),
        deny4=tuple(e for e in entries if e.family == 4),
        deny6=tuple(e for e in entries if e.family == 6),
        deny_chains=chains,
        log_rate_per_minute=logging.rate_per_minute,
        log_burst=logging.burst,
        unknown_source_prefix=f"{logging.prefix} unknown-source: " if logging.enabled else None,
        auth_port=gw.auth.port if gw.auth else None,
        pools=tuple(gw.wireguard.pool),
        auth_clients=tuple(sorted((AuthClient(src.version, src, p.id) for p in partners if p.certificates
                                   and p.certificates.session_seconds is not None for src in p.sources),
                                  key=lambda c: (c.family, int(c.source.network_address), c.source.prefixlen))),
    )


def _elements(grant: GrantIR, gated: bool) -> list[SetElement]:
    timeout = grant.ends_at
    result = []
    for src in grant.sources:
        for dst in grant.destinations:
            if src.version != dst.version:
                continue
            if grant.protocol == "icmp":
                result.append(SetElement(src.version, src, dst, "icmp", None, timeout, (grant.id,), gated))
                continue
            for ports in grant.ports:
                result.append(SetElement(src.version, src, dst, grant.protocol, ports, timeout, (grant.id,), gated))
    return result


def _merge(old: SetElement | None, new: SetElement) -> SetElement:
    if old is None:
        return new
    timeout = None if old.ends_at is None or new.ends_at is None else max(old.ends_at, new.ends_at)
    grants = tuple(sorted(set(old.grants) | set(new.grants)))
    return SetElement(old.family, old.source, old.destination, old.protocol, old.ports, timeout, grants, old.gated)


def _deny(partners: tuple[PartnerIR, ...], gw: GatewayFile) -> tuple[tuple[DenyChain, ...], list[DenyEntry]]:
    logging = gw.deny_logging
    chains: list[DenyChain] = []
    entries: list[DenyEntry] = []
    if not logging.per_partner:
        prefix = f"{logging.prefix} partner: " if logging.enabled else None
        chains.append(DenyChain(SHARED_DENY_CHAIN, prefix))
    for partner in partners:
        chain = SHARED_DENY_CHAIN
        if logging.per_partner:
            chain = f"deny_{partner.id}"
            chains.append(DenyChain(chain, f"{logging.prefix} {partner.id}: " if logging.enabled else None))
        entries.extend(DenyEntry(src.version, src, partner.id, chain) for src in partner.sources)
    entries.sort(key=lambda e: (e.family, int(e.source.network_address), e.source.prefixlen))
    return tuple(chains), entries
