"""Which gateway-owned exceptions stand at an instant, and which rules only they may lift.

Shared by the linter (which exempts findings) and the compiler (which compiles a grant beyond its
stage only under a standing exception). Pure: reads the estate already loaded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from gatewayctl.loader.profiles import Estate
from gatewayctl.model.exceptions import GatewayException
from gatewayctl.model.partner import Grant

# Rule families whose findings only the gateway owners may except (gateway.yaml `exceptions:`):
# each guards what a partner's own file must not be able to wave through.
RESTRICTED_FAMILIES = {"GW1": "stage", "GW5": "addressing", "GW7": "certificate", "GW8": "secret"}
NOT_APPROVED = "GW905"
TOO_LONG = "GW906"

ObjectKey = tuple[str, ...]  # the object a finding is attached to, as lint rules name it


def restricted(code: str) -> bool:
    """True when only a gateway-owned exception may lift findings of rule `code`."""
    return code[:3] in RESTRICTED_FAMILIES


@dataclass(frozen=True)
class Standing:
    """One entry of gateway.yaml `exceptions:` judged at an instant."""

    index: int
    exception: GatewayException
    obj: ObjectKey  # ("unknown", ...) when the target names nothing in the estate: it then exempts nothing
    problems: tuple[tuple[str, str], ...]  # (rule code, message): why it is refused; empty when approved

    def holds(self, at: dt.datetime) -> bool:
        """Approved, not yet expired at `at` (the expiry day is the last day it holds)."""
        return not self.problems and self.exception.expires >= at.date()


def judge(estate: Estate, at: dt.datetime) -> list[Standing]:
    """Every gateway exception with its target resolved and the problems that refuse it."""
    lint = estate.gateway.model.lint
    approvers = set(lint.approvers)
    latest = at.date() + dt.timedelta(days=lint.max_exception_days)
    judged = []
    for index, exc in enumerate(estate.gateway.model.exceptions):
        problems = []
        if not approvers:
            problems.append((NOT_APPROVED, f"exception {exc.rule} for {exc.target()} is approved by {exc.approved_by!r}, but "
                             "gateway.yaml lint.approvers is empty, so no one may approve exceptions"))
        elif exc.approved_by not in approvers:
            problems.append((NOT_APPROVED, f"exception {exc.rule} for {exc.target()} is approved by {exc.approved_by!r}, "
                             "who is not among gateway.yaml lint.approvers"))
        if exc.expires > latest:
            problems.append((TOO_LONG, f"exception {exc.rule} for {exc.target()} expires on {exc.expires}, more than "
                             f"{lint.max_exception_days} days (lint.max_exception_days) after {at.date()}"))
        judged.append(Standing(index, exc, _object(estate, exc), tuple(problems)))
    return judged


def standing(judged: list[Standing], at: dt.datetime) -> dict[tuple[str, ObjectKey], Standing]:
    """The exceptions that hold at `at`, by (rule code, object); of two for one finding, the one that ends first."""
    found: dict[tuple[str, ObjectKey], Standing] = {}
    for s in judged:
        key = (s.exception.rule, s.obj)
        if s.holds(at) and (key not in found or s.exception.expires < found[key].exception.expires):
            found[key] = s
    return found


def _object(estate: Estate, exc: GatewayException) -> ObjectKey:
    unknown = ("unknown", exc.target())
    if exc.service is not None:
        return ("service", exc.service) if exc.service in estate.services.model.services else unknown
    if exc.partner is None:
        return ("gateway",)
    partner = next((p.model for p in estate.partners if p.model.id == exc.partner), None)
    if partner is None:
        return unknown
    if exc.peer is not None:
        index = next((i for i, peer in enumerate(partner.peers) if peer.name == exc.peer), None)
        return unknown if index is None else ("peer", partner.id, str(index))
    if exc.grant is not None:
        index = next((i for i, ref in grant_refs(partner.grants) if ref == exc.grant), None)
        return unknown if index is None else ("grant", partner.id, str(index))
    return ("partner", partner.id)


def grant_refs(grants: list[Grant]) -> Iterator[tuple[int, str]]:
    """(index, reference) of each grant: its service, `#n` for the n-th grant of one service (n > 1)."""
    counts: dict[str, int] = {}
    for index, grant in enumerate(grants):
        counts[grant.service] = counts.get(grant.service, 0) + 1
        yield index, grant.service if counts[grant.service] == 1 else f"{grant.service}#{counts[grant.service]}"
