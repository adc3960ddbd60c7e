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
