"""Every suppression and gateway exception of an estate, keyed by meaning (for `gatewayctl diff`).

Keys name objects by name (grant `crm-api#2`, peer `acme-hq`), never by position, so reordering a
file changes nothing; rules given by name are keyed by their code."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.exceptions import grant_refs
from gatewayctl.lint import registry
from gatewayctl.loader.profiles import Estate
from gatewayctl.model.types import Suppression

GATEWAY = ""  # the scope of what concerns no partner (the gateway itself, services)

LedgerKey = tuple[str, str, str]  # scope (partner id or GATEWAY), where it is written and what it exempts, rule code
LedgerEntry = tuple[str, str, str]  # reason, last day (YYYY-MM-DD), approver ("" when none)


def ledger(estate: Estate) -> dict[LedgerKey, LedgerEntry]:
    """Every suppression (`suppressions:` of any object) and every gateway.yaml exception."""
    entries: dict[LedgerKey, LedgerEntry] = {}
    for scope, where, s in _suppressions(estate):
        entries[(scope, f"suppression on {where}", _code(s.rule))] = (s.reason, s.expires.isoformat(), s.approved_by or "")
    for exc in estate.gateway.model.exceptions:
        scope = exc.partner or GATEWAY
        entries[(scope, f"gateway exception for {exc.target()}", exc.rule)] = (exc.reason, exc.expires.isoformat(),
                                                                             exc.approved_by)
    return entries


def _suppressions(estate: Estate) -> Iterator[tuple[str, str, Suppression]]:
    for s in estate.gateway.model.suppressions:
        yield GATEWAY, "the gateway", s
    for name, service in estate.services.model.services.items():
        for s in service.suppressions:
            yield GATEWAY, f"service {name}", s
    for loaded in estate.partners:
        model = loaded.model
        for s in model.suppressions:
            yield model.id, f"partner {model.id}", s
        for peer in model.peers:
            for s in peer.suppressions:
                yield model.id, f"peer {peer.name}", s
        for index, ref in grant_refs(model.grants):
            for s in model.grants[index].suppressions:
                yield model.id, f"grant {ref}", s


def _code(rule: str) -> str:
    found = registry.resolve(rule)
    return found.code if found else rule
