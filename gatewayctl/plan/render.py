"""A plan for people (text) and for programs (versioned JSON). Keys never appear."""

from __future__ import annotations

from typing import Any

from gatewayctl.paint import Paint, plain
from gatewayctl.plan.diff import Plan

PLAN_FORMAT = "gatewayctl-plan/1"


SIGN_ROLE = {"+": "add", "-": "remove", "~": "change"}


def plan_text(plan: Plan, paint: Paint = plain) -> str:
    """One line per change (`+` add, `-` remove, `~` change), then the counts; `paint` colours
    each line by its sign and a blocker as an error (plain: no colour)."""
    lines = [paint("error", f"blocked: {b}") for b in plan.blockers]
    if plan.empty:
        lines.append("no changes: the host matches the profiles")
    else:
        lines += [paint(SIGN_ROLE.get(c.sign, ""), str(c)) for c in plan.changes]
        adds = sum(c.sign == "+" for c in plan.changes)
        removes = sum(c.sign == "-" for c in plan.changes)
        lines.append(f"plan: {adds} to add, {sum(c.sign == '~' for c in plan.changes)} to change, {removes} to remove")
    return "\n".join(lines)


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "changes": [{"sign": c.sign, "area": c.area, "subject": c.subject, "detail": c.detail, "kind": c.kind}
                    for c in plan.changes],
        "blockers": list(plan.blockers),
        "unchanged": list(plan.unchanged),
    }
