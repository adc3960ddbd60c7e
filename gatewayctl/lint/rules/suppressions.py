"""Suppressions themselves: exceptions must be current, used, about a real rule, and where they may be.

These rules are evaluated by the engine (lint/engine.py), which knows which findings each
suppression exempted."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule


class SuppressionExpired(Rule):
    """What it does: reports suppressions past their `expires` date; the finding they exempted is
    reported again.

    Why it matters: an exception is a decision with an end; after it, someone must decide again.

    Example: `suppressions: [{rule: GW404, reason: "...", expires: 2026-06-30}]` in December.

    Fix: fix the finding, or renew the exception with a new reason and date."""

    code, name, severity = "GW901", "suppression-expired", "warning"
    summary = "A suppression has expired."
    hint = "fix the finding, or renew the exception with a new end date"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class SuppressionUnused(Rule):
    """What it does: reports suppressions that exempted no finding.

    Why it matters: a stale exception would silently exempt a future problem on the same object.

    Example: a GW404 suppression on a service that moved to an encrypted port.

    Fix: delete the suppression."""

    code, name, severity = "GW902", "suppression-unused", "warning"
    summary = "A suppression exempts nothing."
    hint = "delete the suppression"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class SuppressionUnknownRule(Rule):
    """What it does: reports suppressions naming a rule code or name that does not exist.

    Why it matters: a typo in an exception exempts nothing while looking like it does.

    Example: `rule: GW4O4` (letter O).

    Fix: use the code or name from docs/rules.md."""

    code, name, severity = "GW903", "suppression-unknown-rule", "error"
    summary = "A suppression names a rule that does not exist."
    hint = "use a code or name from docs/rules.md"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class SuppressionNotGatewayOwned(Rule):
    """What it does: reports a `suppressions:` entry (in a partner file, services.yaml or gateway.yaml)
    of a stage (GW1xx), addressing (GW5xx), certificate (GW7xx) or secret (GW8xx) rule. It exempts
    nothing: the finding stays, and the compiler still leaves out grants beyond their stage.

    Why it matters: a partner's profile is often drafted by the partner's own people; if it could
    waive its own stage ceiling or claim addresses that are not its own, the ceilings would be
    advice. Only the gateway owners may lift these rules, with a named approver and a short end.

    Example: `suppressions: [{rule: GW102, reason: "...", expires: 2099-12-31}]` on a pilot
    partner's grant of confidential data.

    Fix: remove the suppression and fix the finding, or ask the gateway owners for an entry in
    gateway.yaml `exceptions:` (rule, the object, reason, approved_by from lint.approvers, expires
    within lint.max_exception_days)."""

    code, name, severity = "GW904", "suppression-not-gateway-owned", "error"
    summary = "A stage, addressing, certificate or secret rule is suppressed outside gateway.yaml exceptions."
    hint = "only gateway.yaml exceptions: (approved by one of lint.approvers) can lift this rule"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class ExceptionNotApproved(Rule):
    """What it does: reports gateway.yaml `exceptions:` entries whose `approved_by` is not one of
    `lint.approvers` (or when that list is empty). The exception lifts nothing, in lint or compile.

    Why it matters: an exception is a risk accepted on the company's behalf; only someone
    entitled to accept it may, and the list of who is entitled is the gateway owners' to keep.

    Example: `approved_by: partner's project lead` with approvers [Maria Lopez (CISO delegate)].

    Fix: have a listed approver approve it, or (gateway owners) add the approver to lint.approvers."""

    code, name, severity = "GW905", "exception-not-approved", "error"
    summary = "A gateway exception is approved by someone not on lint.approvers."
    hint = "have one of lint.approvers approve the exception"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class ExceptionTooLong(Rule):
    """What it does: reports gateway.yaml `exceptions:` entries that expire more than
    `lint.max_exception_days` (default 180, at most 365) after the day of the check. The exception
    lifts nothing, in lint or compile.

    Why it matters: an exception is a decision with an end; one that runs for years is standing
    policy that nobody reviews.

    Example: `expires: 2099-12-31`.

    Fix: set an earlier `expires` and renew the exception, with a new approval, when it ends."""

    code, name, severity = "GW906", "exception-too-long", "error"
    summary = "A gateway exception runs longer than lint.max_exception_days."
    hint = "set an expiry within lint.max_exception_days and renew it when it ends"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


RULES = [SuppressionExpired, SuppressionUnused, SuppressionUnknownRule, SuppressionNotGatewayOwned, ExceptionNotApproved,
         ExceptionTooLong]
