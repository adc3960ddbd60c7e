"""Time: grants, agreements and reviews that have ended or are about to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule


class GrantExpired(Rule):
    """What it does: reports grants whose last day has passed.

    Why it matters: an expired grant is already left out of the firewall; keeping it in the
    profile misleads readers about what a partner can reach.

    Example: `expires: 2026-10-31` evaluated on 2026-12-01.

    Fix: delete the grant, or renew it with a new expiry and approval."""

    code, name, severity = "GW201", "grant-expired", "warning"
    summary = "A grant has expired."
    hint = "delete the grant or renew it with a new approval"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if grant.expires and grant.expires < ctx.today:
                    yield self.at(partner.doc, ("grants", index, "expires"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} expired on {grant.expires}",
                                  ("grant", partner.model.id, str(index)))


def last_day(expires: dt.date, today: dt.date) -> str:
    """How far off an (inclusive) last day is, in words: 'today is its last day', 'its last day is
    tomorrow', 'its last day is in 12 days'."""
    days = (expires - today).days
    if days == 0:
        return "today is its last day"
    return "its last day is tomorrow" if days == 1 else f"its last day is in {days} days"


class GrantExpiringSoon(Rule):
    """What it does: reports grants that end within `lint.expiry_warning_days` (default 30).

    Why it matters: renewing takes an approval; finding out on the day access stops is too late
    for the partner and for the approver.

    Example: a grant ending in 12 days.

    Fix: renew it (new expiry, approval) or let it end on purpose."""

    code, name, severity = "GW202", "grant-expiring-soon", "warning"
    summary = "A grant ends soon."
    hint = "renew the grant, or let it end on purpose"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        window = ctx.settings.expiry_warning_days
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if grant.expires and 0 <= (grant.expires - ctx.today).days < window:
                    yield self.at(partner.doc, ("grants", index, "expires"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} ends on {grant.expires}: "
                                  f"{last_day(grant.expires, ctx.today)}", ("grant", partner.model.id, str(index)))


class AgreementExpired(Rule):
    """What it does: reports partners whose agreement has ended.

    Why it matters: without an agreement in force no access is allowed; gatewayctl already leaves
    every grant of such a partner out, but the profile still claims a relationship.

    Example: `agreement: {expires: 2026-06-30}` evaluated in December.

    Fix: record the renewed agreement, or remove the partner."""

    code, name, severity = "GW203", "agreement-expired", "error"
    summary = "A partner's agreement has ended."
    hint = "record the renewed agreement or remove the partner"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            agreement = partner.model.agreement
            if agreement.expires < ctx.today:
                yield self.at(partner.doc, ("agreement", "expires"), f"the agreement {agreement.reference!r} of partner "
                              f"{partner.model.id!r} ended on {agreement.expires}", ("partner", partner.model.id))


class AgreementExpiringSoon(Rule):
    """What it does: reports agreements that end within `lint.expiry_warning_days`.

    Why it matters: every grant of the partner stops with the agreement.

    Example: an agreement ending in 20 days.

    Fix: start the renewal; record the new expiry when signed."""

    code, name, severity = "GW204", "agreement-expiring-soon", "warning"
    summary = "A partner's agreement ends soon."
    hint = "renew the agreement before it ends"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        window = ctx.settings.expiry_warning_days
        for partner in ctx.partners():
            agreement = partner.model.agreement
            if 0 <= (agreement.expires - ctx.today).days < window:
                yield self.at(partner.doc, ("agreement", "expires"), f"the agreement {agreement.reference!r} of partner "
                              f"{partner.model.id!r} ends on {agreement.expires}", ("partner", partner.model.id))


class ReviewOverdue(Rule):
    """What it does: reports partners whose `review_by` date has passed.

    Why it matters: periodic review is how stale access gets noticed (PCI DSS 1.2.7, ISO 27001 A.5.19).

    Example: `review_by: 2026-09-30` evaluated in December.

    Fix: review the profile with the service owners and set the next review date."""

    code, name, severity = "GW205", "review-overdue", "warning"
    summary = "A partner's review date has passed."
    hint = "review the partner's access and set the next review_by"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            review = partner.model.review_by
            if review is not None and review < ctx.today:
                yield self.at(partner.doc, ("review_by",), f"partner {partner.model.id!r} was due for review on {review}",
                              ("partner", partner.model.id))


class GrantWithoutExpiry(Rule):
    """What it does: reports grants with no `expires`; such a grant runs until the agreement ends.

    Why it matters: access limited in time is an audit requirement; a grant without its own end
    quietly outlives the project it was made for.

    Example: a grant with no expires for a partner whose agreement runs three years.

    Fix: give the grant its own expiry."""

    code, name, severity = "GW206", "grant-without-expiry", "warning"
    summary = "A grant has no expiry and runs until the agreement ends."
    hint = "set expires on the grant"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if grant.expires is None:
                    yield self.at(partner.doc, ("grants", index, "service"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} has no expiry; it runs until "
                                  f"the agreement ends on {partner.model.agreement.expires}", ("grant", partner.model.id, str(index)))


RULES = [GrantExpired, GrantExpiringSoon, AgreementExpired, AgreementExpiringSoon, ReviewOverdue, GrantWithoutExpiry]
