"""Stage ceilings: what a partner's trust stage allows."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule
from gatewayctl.model import PartnerFile


def levels_requiring(ctx: LintContext, partner: PartnerFile, field: str) -> list[str]:
    """The classifications the partner is granted for which its stage requires `field` (a stage list)."""
    needs = set(getattr(ctx.estate.gateway.model.stages[partner.stage], field))
    services = ctx.estate.services.model.services
    return sorted({services[g.service].classification for g in partner.grants} & needs)


class TooManyServices(Rule):
    """What it does: counts the distinct services granted to a partner (grants in force) and compares
    them with the `max_services` of the partner's stage.

    Why it matters: a pilot partner that reaches more services than its stage allows has been
    trusted further than the agreement behind the stage.

    Example: a partner at stage `pilot` (max_services: 1) granted `intranet-web` and `dns`.

    Fix: remove grants, or move the partner to a stage that allows more, with the approvals that
    stage needs."""

    code, name, severity = "GW101", "too-many-services", "error"
    summary = "A partner is granted more services than its stage allows."
    hint = "remove grants or raise the partner's stage"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        stages = ctx.estate.gateway.model.stages
        for partner in ctx.partners():
            model = partner.model
            stage = stages[model.stage]
            services = sorted({g.service for g in model.grants if g.expires is None or g.expires >= ctx.today})
            if stage.max_services is not None and len(services) > stage.max_services:
                yield self.at(partner.doc, ("grants",), f"partner {model.id!r} is granted {len(services)} services "
                              f"({', '.join(services)}); stage {model.stage!r} allows {stage.max_services}",
                              ("partner", model.id))


class ClassificationAboveStage(Rule):
    """What it does: checks every grant's service classification against the classifications the
    partner's stage may reach.

    Why it matters: classification is how the company says what a breach would cost; a stage is
    the trust earned so far. A grant above the stage skips the steps that earn it.

    Example: a `pilot` partner granted `crm-api`, classified `confidential`.

    Fix: remove the grant, or raise the partner's stage."""

    code, name, severity = "GW102", "classification-above-stage", "error"
    summary = "A grant reaches a classification the partner's stage may not reach."
    hint = "remove the grant or raise the partner's stage"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        stages = ctx.estate.gateway.model.stages
        services = ctx.estate.services.model.services
        for partner in ctx.partners():
            allowed = stages[partner.model.stage].classifications
            for index, grant in enumerate(partner.model.grants):
                level = services[grant.service].classification
                if level not in allowed:
                    yield self.at(partner.doc, ("grants", index, "service"),
                                  f"grant of {grant.service!r} ({level}) to partner {partner.model.id!r}: stage "
                                  f"{partner.model.stage!r} reaches only {', '.join(allowed)}",
                                  ("grant", partner.model.id, str(index)))


class GrantLongerThanStage(Rule):
    """What it does: measures how long each grant still runs (until its expiry, or until the
    agreement ends for a grant without one) against the stage's `max_grant_days`.

    Why it matters: short grants force a periodic decision; a long grant at an early stage turns
    a trial into standing access.

    Example: a `pilot` partner (max_grant_days: 90) with a grant that expires in 200 days.

    Fix: shorten the grant's `expires`, renew it later with a new approval."""

    code, name, severity = "GW103", "grant-longer-than-stage", "error"
    summary = "A grant runs longer than the partner's stage allows."
    hint = "set an earlier expires date and renew the grant when it ends"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        stages = ctx.estate.gateway.model.stages
        for partner in ctx.partners():
            limit = stages[partner.model.stage].max_grant_days
            if limit is None:
                continue
            for index, grant in enumerate(partner.model.grants):
                end = grant.expires or partner.model.agreement.expires
                days = (end - ctx.today).days + 1
                if end >= ctx.today and days > limit:
                    yield self.at(partner.doc, ("grants", index, "expires" if grant.expires else "service"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} runs {days} more days "
                                  f"(until {end}); stage {partner.model.stage!r} allows {limit}",
                                  ("grant", partner.model.id, str(index)))


class PresharedKeyMissing(Rule):
    """What it does: when a partner is granted a classification for which its stage requires a
    WireGuard preshared key, checks that every peer of the partner has `preshared_key_file`.

    Why it matters: a preshared key adds a symmetric secret to the handshake (post-quantum
    protection of recorded traffic); the stage says which data needs it.

    Example: an `established` partner (preshared_key_for: [confidential]) granted `crm-api` while
    its peer has no preshared key.

    Fix: agree a preshared key with the partner out of band and set `preshared_key_file`."""

    code, name, severity = "GW104", "preshared-key-missing", "error"
    summary = "A peer lacks the preshared key its partner's stage requires."
    hint = "agree a preshared key with the partner and set preshared_key_file on the peer"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            levels = levels_requiring(ctx, partner.model, "preshared_key_for")
            if not levels:
                continue
            for index, peer in enumerate(partner.model.peers):
                if peer.preshared_key_file is None:
                    yield self.at(partner.doc, ("peers", index, "name"),
                                  f"peer {peer.name!r} of partner {partner.model.id!r} has no preshared key; stage "
                                  f"{partner.model.stage!r} requires one for {', '.join(levels)} data",
                                  ("peer", partner.model.id, str(index)))


class SmartcardMissing(Rule):
    """What it does: when a partner is granted a classification for which its stage requires a
    smart card, checks that the partner has certificate requirements with `smartcard_required`.

    Why it matters: WireGuard knows keys, not people; for the most sensitive data the company
    wants to know a person with a hardware token stands behind the access.

    Example: a `strategic` partner (smartcard_for: [restricted]) granted `erp-db` without a
    `certificates` section.

    Fix: add the partner's smart-card requirements (issuing CA, policy OIDs, EKUs)."""

    code, name, severity = "GW105", "smartcard-missing", "error"
    summary = "A partner lacks the smart-card requirement its stage demands."
    hint = "add a certificates section with smartcard_required: true"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            levels = levels_requiring(ctx, partner.model, "smartcard_for")
            reqs = partner.model.certificates
            if levels and (reqs is None or not reqs.smartcard_required):
                yield self.at(partner.doc, ("certificates",) if reqs else ("id",),
                              f"partner {partner.model.id!r} reaches {', '.join(levels)} data; stage "
                              f"{partner.model.stage!r} requires a smart card", ("partner", partner.model.id))


RULES = [TooManyServices, ClassificationAboveStage, GrantLongerThanStage, PresharedKeyMissing, SmartcardMissing]
