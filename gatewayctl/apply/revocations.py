"""Emergency revocations: access an operator closed on the host, kept closed until lifted or no longer granted.

A revocation names a partner, and optionally one service of its grants. It lives in the state folder
(`revocations.json`, with who, when and why) and is journaled. Every command that reads the host
takes the compiled policy through `restrict()`, so plan shows the revoked grants, apply never opens
them, and drift and the authorizer judge against the access that is really in force.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gatewayctl.compile.ir import CompiledPolicy, ExcludedGrant, GrantIR, PartnerIR, SetElement
from gatewayctl.state import StateDir

FILE = "revocations.json"


@dataclass(frozen=True)
class Revocation:
    partner: str
    service: str | None  # None: every grant of the partner
    reason: str
    by: str
    at: str

    @property
    def label(self) -> str:
        return f"{self.partner}/{self.service}" if self.service else f"{self.partner} (every grant)"

    def covers(self, grant_id: str) -> bool:
        partner, _, service = grant_id.partition("/")
        return partner == self.partner and (self.service is None or service.split("#")[0] == self.service)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load(state: StateDir) -> list[Revocation]:
    data = state.read_json(FILE) or {}
    return [Revocation(**r) for r in data.get("revocations", [])]


def save(state: StateDir, revocations: list[Revocation]) -> None:
    state.write_json(FILE, {"revocations": [r.to_json() for r in revocations]})


def add(revocations: list[Revocation], new: Revocation) -> list[Revocation]:
    """The list with `new` in it (replacing one for the same partner and service)."""
    return [r for r in revocations if (r.partner, r.service) != (new.partner, new.service)] + [new]


def lift(revocations: list[Revocation], partner: str, service: str | None) -> tuple[list[Revocation], list[Revocation]]:
    """(kept, lifted): without --grant every revocation of the partner is lifted."""
    lifted = [r for r in revocations if r.partner == partner and (service is None or r.service == service)]
    return [r for r in revocations if r not in lifted], lifted


def still_granted(revocations: list[Revocation], policy: CompiledPolicy) -> tuple[list[Revocation], list[Revocation]]:
    """(standing, ended): a revocation ends by itself once the profiles no longer grant what it closes
    (through any gateway: a grant moved to another gateway of several does not end it here)."""
    ids: dict[str, list[str]] = {}  # grant ids by partner: a revocation covers only its partner's
    for p in policy.partners:
        ids.setdefault(p.id, []).extend([*(g.id for g in p.grants), *p.elsewhere])
    standing = [r for r in revocations if any(r.covers(i) for i in ids.get(r.partner, ()))]
    return standing, [r for r in revocations if r not in standing]


def restrict(policy: CompiledPolicy, revocations: list[Revocation]) -> CompiledPolicy:
    """The policy without the revoked grants: their set elements go (an element shared with a grant
    that is not revoked stays, for that grant), and each revoked grant is listed as excluded."""
    if not revocations:
        return policy

    by_partner: dict[str, list[Revocation]] = {}  # looked up per grant: each revocation covers one partner's
    for r in revocations:
        by_partner.setdefault(r.partner, []).append(r)

    def revoked(grant_id: str) -> bool:
        return any(r.covers(grant_id) for r in by_partner.get(grant_id.partition("/")[0], ()))

    partners = tuple(_partner(p, revocations) for p in policy.partners)
    table = policy.table
    ends = {g.id: g.ends_at for p in policy.partners for g in p.grants}

    def keep(elements: tuple[SetElement, ...]) -> tuple[SetElement, ...]:
        result = []
        for element in elements:
            left = tuple(g for g in element.grants if not revoked(g))
            if left == element.grants:
                result.append(element)
            elif left:  # shared with a grant that stands: open only as long as that grant
                left_ends = [ends.get(g) for g in left]
                end = None if None in left_ends else max(e for e in left_ends if e is not None)
                result.append(dataclasses.replace(element, grants=left, ends_at=end))
        return tuple(result)

    table = dataclasses.replace(table, grants4=keep(table.grants4), grants6=keep(table.grants6), icmp4=keep(table.icmp4),
                                icmp6=keep(table.icmp6))
    return dataclasses.replace(policy, partners=partners, table=table)


def _partner(partner: PartnerIR, revocations: list[Revocation]) -> PartnerIR:
    mine = [r for r in revocations if r.partner == partner.id]
    if not mine:
        return partner
    kept: list[GrantIR] = []
    excluded = list(partner.excluded)
    for grant in partner.grants:
        by = next((r for r in mine if r.covers(grant.id)), None)
        if by is None:
            kept.append(grant)
        else:
            excluded.append(ExcludedGrant(partner.id, grant.index, grant.service,
                                          f"revoked on the gateway by {by.by} at {by.at}: {by.reason}",
                                          grant.destinations, grant.protocol))
    return dataclasses.replace(partner, grants=tuple(kept), excluded=tuple(excluded))
