"""docs/rules.md, generated from the rule classes (a test fails when it is stale)."""

from __future__ import annotations

import re

from gatewayctl.lint.registry import FAMILIES

PARTS = ("What it does", "Why it matters", "Example", "Fix")


def rules_reference() -> str:
    lines = ["# Lint rule reference", "",
             "Generated from the rule classes by `gatewayctl lint --rules`; do not edit by hand.", "",
             "Codes are stable and never reused. A finding can be suppressed on the object it concerns",
             "(the gateway, a service, a partner, a peer or a grant) with",
             "`suppressions: [{rule: GW404, reason: ..., expires: YYYY-MM-DD}]`; expired, unused and",
             "unknown suppressions are findings themselves.", "",
             "Stage (GW1xx), addressing (GW5xx), certificate (GW7xx) and secret (GW8xx) rules are the",
             "gateway owners' to except, never a profile's own: a `suppressions:` entry for one of them is",
             "an error (GW904) and lifts nothing. They are excepted only in gateway.yaml `exceptions:`, each",
             "entry naming the rule code, the object (`partner`, with `grant` or `peer`; or `service`; none",
             "for the gateway), a `reason`, `approved_by` (one of `lint.approvers`; an empty list means",
             "no one may approve) and `expires` at most `lint.max_exception_days` (default 180, at most",
             "365) after the day of the check:", "",
             "```yaml",
             "lint:",
             "  approvers: [Maria Lopez (CISO delegate)]",
             "exceptions:",
             "  - {rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot CHG-4711,",
             "     approved_by: Maria Lopez (CISO delegate), expires: 2027-02-15}",
             "```", "",
             "A grant is named as its compiled id names it: the service, with `#2`, `#3`... for a later",
             "grant of the same service. An exception not approved (GW905) or too long (GW906) lifts",
             "nothing. Any other rule may be excepted there too. What `validate` itself refuses (the",
             "addresses a partner may not claim) is a hard limit: no suppression or exception lifts it;",
             "nor does anything lift a secret finding (GW8xx): it belongs to no object, only to a file.", "",
             "The compiler enforces the stage ceilings GW101-GW105 itself: a grant beyond its partner's",
             "stage is not compiled (it is listed as left out, with the reason, and build, plan and apply",
             "print a warning naming it), unless a standing exception covers every ceiling it goes",
             "beyond; such a grant is compiled with a warning, and its access ends when the first of",
             "those exceptions ends. For GW101 the first `max_services` services in file order are",
             "compiled. `gatewayctl diff` marks every added, changed or extended suppression or",
             "exception as needing a security reviewer.", "",
             "| code | name | severity | summary |", "|---|---|---|---|"]
    for _, module in FAMILIES:
        lines += [f"| [{r.code}](#{r.code.lower()}-{r.name}) | `{r.name}` | {r.severity} | {r.summary} |" for r in module.RULES]
    for family, module in FAMILIES:
        lines += ["", f"## {family}"]
        for rule in module.RULES:
            lines += ["", f"### {rule.code} {rule.name}", "", f"Severity: **{rule.severity}**. {rule.summary}", ""]
            lines += [f"**{part}**: {text}" + "\n" for part, text in _parts(rule.__doc__ or "")]
            lines.append(f"Hint printed with each finding: {rule.hint}.")
    return "\n".join(lines).rstrip() + "\n"


def _parts(doc: str) -> list[tuple[str, str]]:
    text = " ".join(doc.split())
    pattern = "|".join(re.escape(p) for p in PARTS)
    pieces = re.split(rf"({pattern}):", text)
    return [(pieces[i], pieces[i + 1].strip()) for i in range(1, len(pieces) - 1, 2)]
