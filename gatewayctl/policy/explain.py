"""Answers in words: what a partner reaches, who reaches a target, and why a flow passes or not."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from gatewayctl.compile.ir import CompiledPolicy, GrantIR
from gatewayctl.policy.flows import Target, matches, owner_of


def grant_json(grant: GrantIR) -> dict[str, Any]:
    return {
        "grant": grant.id, "partner": grant.partner, "service": grant.service, "classification": grant.classification,
        "protocol": grant.protocol, "ports": [str(p) for p in grant.ports],
        "destinations": [str(d) for d in grant.destinations], "expires": str(grant.expires) if grant.expires else None,
        "justification": grant.justification, "approved_by": grant.approved_by,
    }


def partner_access(policy: CompiledPolicy, partner_id: str) -> dict[str, Any]:
    partner = policy.partner(partner_id)
    if partner is None:
        raise ValueError(f"no partner {partner_id!r} in the profiles")
    return {
        "partner": partner.id, "name": partner.name, "stage": partner.stage,
        "sources": [str(s) for s in partner.sources],
        "grants": [grant_json(g) for g in partner.grants],
        "not_in_force": [{"service": e.service, "reason": e.reason} for e in partner.excluded],
    }


def who_reaches(policy: CompiledPolicy, target: Target) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for match in matches(policy, target):
        for grant in match.grants:
            entry = seen.setdefault((match.partner.id, grant.id), {"partner": match.partner.id, **grant_json(grant),
                                                                   "sources": []})
            entry["sources"].append(str(match.element.source))
    return list(seen.values())


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    grants: tuple[GrantIR, ...]

    def as_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "grants": [grant_json(g) for g in self.grants]}


def flow(policy: CompiledPolicy, source: str, target: Target) -> Verdict:
    """Does a packet from `source` to `target` pass, by which grant; or why not."""
    src = ipaddress.ip_address(source)
    partner = owner_of(policy, src)
    if partner is None:
        return Verdict(False, f"{src} belongs to no partner: the gateway drops it (unknown source)", ())
    found = matches(policy, target, ipaddress.ip_network(src))
    if found:
        grants = tuple(g for m in found for g in m.grants)
        names = ", ".join(dict.fromkeys(g.id for g in grants))
        return Verdict(True, f"allowed for partner {partner.id} by {names}", grants)
    return Verdict(False, _why_not(policy, partner.id, target), ())


def _why_not(policy: CompiledPolicy, partner_id: str, target: Target) -> str:
    partner = policy.partner(partner_id)
    assert partner is not None
    near = [g for g in partner.grants if any(d.overlaps(target.network) for d in g.destinations
                                             if d.version == target.network.version)]
    if near:
        offers = "; ".join(f"{g.id} allows {g.protocol}{'/' + ','.join(str(p) for p in g.ports) if g.ports else ''}"
                           for g in near)
        return f"no grant of {partner_id} allows {target.protocol}{'/' + str(target.port) if target.port else ''} there ({offers})"
    ended = [e for e in partner.excluded if any(d.overlaps(target.network) for d in e.destinations
                                                 if d.version == target.network.version)]
    if ended:
        return "; ".join(f"the grant of {e.service} to {partner_id} is not in force: {e.reason}" for e in ended)
    return f"no grant of {partner_id} reaches {target.network}"
