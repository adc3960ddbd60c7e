"""Accountability: every grant says why and who approved it."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule


class GrantWithoutJustification(Rule):
    """What it does: reports grants without `justification`.

    Why it matters: an auditor asks of every allowed flow why it exists (PCI DSS 1.2.5); the
    answer belongs next to the grant.

    Example: `- service: crm-api` with no justification.

    Fix: write the business reason, with the change or ticket reference."""

    code, name, severity = "GW301", "grant-without-justification", "error"
    summary = "A grant does not say why it exists."
    hint = "add justification: the business reason and the change reference"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if not grant.justification:
                    yield self.at(partner.doc, ("grants", index, "service"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} has no justification",
                                  ("grant", partner.model.id, str(index)))


class GrantWithoutApprover(Rule):
    """What it does: reports grants without `approved_by`.

    Why it matters: access needs an accountable approver; "someone added it" is not an answer.

    Example: a grant with a justification but no approved_by.

    Fix: record who approved the grant."""

    code, name, severity = "GW302", "grant-without-approver", "error"
    summary = "A grant does not say who approved it."
    hint = "add approved_by"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            for index, grant in enumerate(partner.model.grants):
                if not grant.approved_by:
                    yield self.at(partner.doc, ("grants", index, "service"),
                                  f"grant of {grant.service!r} to partner {partner.model.id!r} has no approver",
                                  ("grant", partner.model.id, str(index)))


RULES = [GrantWithoutJustification, GrantWithoutApprover]
