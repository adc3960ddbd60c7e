"""Suppressions themselves: exceptions must be current, used and about a real rule.

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


RULES = [SuppressionExpired, SuppressionUnused, SuppressionUnknownRule]
