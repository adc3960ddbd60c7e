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
    """The plan for programs: changes in words, blockers and what stays (no key, not even a public one)."""
    return {
        "format": PLAN_FORMAT,
        "changes": [{"sign": c.sign, "area": c.area, "subject": c.subject, "detail": c.detail, "kind": c.kind}
                    for c in plan.changes],
        "blockers": list(plan.blockers),
        "unchanged": list(plan.unchanged),
    }


def plan_operations(plan: Plan) -> dict[str, Any]:
    """What apply carries out, exactly (addresses, peers by public key, set elements by key), for the
    saved plan file; no secret: `private_key` only says the key is set from its file."""
    return {
        "create_interface": plan.create_interface, "mtu": plan.mtu, "up": plan.up,
        "addresses_add": list(plan.addresses_add), "addresses_remove": list(plan.addresses_remove),
        "routes_add": list(plan.routes_add), "routes_remove": list(plan.routes_remove),
        "listen_port": plan.listen_port, "private_key": plan.private_key,
        "peers_upsert": list(plan.peers_upsert), "peers_remove": list(plan.peers_remove),
        "nft_replace": plan.nft_replace,
        "nft_delete": {k: sorted(v) for k, v in sorted(plan.nft_delete.items())},
        "nft_add": {k: sorted(v) for k, v in sorted(plan.nft_add.items())},
        "remove_guard": plan.remove_guard,
    }
