"""Hygiene: grants that add nothing, services nobody uses, approvers nobody knows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule
from gatewayctl.model.partner import Grant
from gatewayctl.model.types import parse_port_spec


@dataclass(frozen=True)
class Box:
    """What one grant opens towards one destination network: addresses x ports."""

    first: int
    last: int
    version: int
    port_first: int
    port_last: int
    grant: int


def _boxes(ctx: LintContext, grants: list[tuple[int, Grant]]) -> dict[str, list[Box]]:
    services = ctx.estate.services.model.services
    by_proto: dict[str, list[Box]] = {}
    for index, grant in grants:
        service = services[grant.service]
        specs = grant.ports if grant.ports is not None else service.ports
        ranges = [parse_port_spec(s) for s in specs] or [(0, 0)]
        for net in service.addresses:
            for first, last in ranges:
                by_proto.setdefault(service.protocol, []).append(
                    Box(int(net.network_address), int(net.broadcast_address), net.version, first, last, index))
    return by_proto


def covered_grants(boxes: list[Box]) -> dict[int, int]:
    """Grants each of whose boxes lies inside a box of one other grant: {covered: covering}.

    A sweep over boxes sorted by start address keeps only the boxes still open at the current
    address, so the work grows with the overlap, not with the square of the grants."""
    covering: dict[int, set[int]] = {}
    uncovered: set[int] = set()
    ordered = sorted(boxes, key=lambda b: (b.version, b.first, -b.last, b.port_first, -b.port_last))
    open_boxes: list[Box] = []
    for box in ordered:
        open_boxes = [o for o in open_boxes if o.version == box.version and o.last >= box.first]
        found = {o.grant for o in open_boxes if o.grant != box.grant and o.last >= box.last
                 and o.port_first <= box.port_first and box.port_last <= o.port_last}
        if found:
            covering[box.grant] = covering[box.grant] & found if box.grant in covering else found
        else:
            uncovered.add(box.grant)
        open_boxes.append(box)
    return {g: min(c) for g, c in covering.items() if g not in uncovered and c}


class DuplicateGrant(Rule):
    """What it does: reports a service granted twice to the same partner with the same ports.

    Why it matters: two grants for one access split its justification and expiry; removing one
    changes nothing, which surprises the reviewer who removes it.

    Example: two `- service: crm-api` entries in one partner.

    Fix: keep one grant, with the later expiry and both justifications."""

    code, name, severity = "GW601", "duplicate-grant", "warning"
    summary = "A partner has the same grant twice."
    hint = "merge the two grants into one"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            seen: dict[tuple[str, str], int] = {}
            for index, grant in enumerate(partner.model.grants):
                key = (grant.service, repr(grant.ports))
                if key in seen:
                    yield self.at(partner.doc, ("grants", index, "service"), f"grant of {grant.service!r} to partner "
                                  f"{partner.model.id!r} repeats grants[{seen[key]}]", ("grant", partner.model.id, str(index)))
                seen.setdefault(key, index)


class ShadowedGrant(Rule):
    """What it does: reports a grant whose every destination and port is already opened by another
    grant of the same partner (a different service, or a wider narrowing).

    Why it matters: the shadowed grant can be removed, expire or be re-approved without changing
    anything; reviewers reading it believe it matters.

    Example: `crm-api` (10.1.0.5 tcp/443) next to `crm-subnet` (10.1.0.0/24 tcp/443).

    Fix: remove the shadowed grant, or narrow the wider one."""

    code, name, severity = "GW602", "shadowed-grant", "warning"
    summary = "A grant is entirely covered by another grant of the same partner."
    hint = "remove the covered grant or narrow the covering one"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            grants = list(enumerate(partner.model.grants))
            if len(grants) < 2:
                continue
            for boxes in _boxes(ctx, grants).values():
                for covered, by in sorted(covered_grants(boxes).items()):
                    a, b = partner.model.grants[covered], partner.model.grants[by]
                    if (a.service, repr(a.ports)) == (b.service, repr(b.ports)):
                        continue  # an exact duplicate: duplicate-grant says so
                    yield self.at(partner.doc, ("grants", covered, "service"),
                                  f"grant of {a.service!r} to partner {partner.model.id!r} is covered by grants[{by}] "
                                  f"({b.service!r})", ("grant", partner.model.id, str(covered)))


class UnusedService(Rule):
    """What it does: reports catalogue services that no partner is granted.

    Why it matters: the catalogue is the shared vocabulary; dead entries make it harder to read and
    are sometimes granted later without the review they once had.

    Example: a service `legacy-ftp` no grant refers to.

    Fix: remove it from services.yaml, or keep it and ignore this information."""

    code, name, severity = "GW603", "unused-service", "info"
    summary = "A catalogue service is granted to nobody."
    hint = "remove the service from services.yaml if it is no longer offered"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        used = {g.service for p in ctx.partners() for g in p.model.grants}
        doc = ctx.estate.services.doc
        for name in ctx.estate.services.model.services:
            if name not in used:
                yield self.at(doc, ("services", name), f"service {name!r} is granted to no partner", ("service", name))


class UnknownApprover(Rule):
    """What it does: when `lint.approvers` lists who may approve grants, reports grants approved by
    anyone else.

    Why it matters: an approval is only worth something from someone entitled to give it.

    Example: approvers [Maria Lopez (CISO delegate)] and a grant approved by "Bob".

    Fix: have an entitled approver approve the grant, or add the approver to the list."""

    code, name, severity = "GW604", "unknown-approver", "warning"
    summary = "A grant is approved by someone not on the approvers list."
    hint = "have a listed approver approve it, or extend lint.approvers"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        known = set(ctx.settings.approvers)
        if not known:
            return
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if grant.approved_by and grant.approved_by not in known:
                    yield self.at(partner.doc, ("grants", index, "approved_by"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} is approved by "
                                  f"{grant.approved_by!r}, who is not among lint.approvers", ("grant", partner.model.id, str(index)))


class NoSecurityContact(Rule):
    """What it does: reports partners without a contact whose role is `security`.

    Why it matters: when a partner's key leaks or its traffic looks wrong, someone there must be
    reachable about security at once.

    Example: contacts with only a business role.

    Fix: add the partner's security contact (a team address is best)."""

    code, name, severity = "GW605", "no-security-contact", "info"
    summary = "A partner has no security contact."
    hint = "add a contact with role: security"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            if not any(c.role == "security" for c in partner.model.contacts):
                yield self.at(partner.doc, ("contacts",), f"partner {partner.model.id!r} has no security contact",
                              ("partner", partner.model.id))


RULES = [DuplicateGrant, ShadowedGrant, UnusedService, UnknownApprover, NoSecurityContact]
