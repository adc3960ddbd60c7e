"""The rule catalogue: every rule, by code. Codes are never reused."""

from __future__ import annotations

from gatewayctl.lint.rule import Rule
from gatewayctl.lint.rules import (
    accountability,
    addressing,
    certificates,
    exposure,
    hygiene,
    secrets,
    stage,
    suppressions,
    time,
)

FAMILIES = [
    ("Stage ceilings", stage), ("Time", time), ("Accountability", accountability), ("Exposure", exposure),
    ("Addressing", addressing), ("Hygiene", hygiene), ("Certificates", certificates), ("Secrets", secrets),
    ("Suppressions", suppressions),
]
RULES: list[type[Rule]] = [rule for _, module in FAMILIES for rule in module.RULES]
BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in RULES}
BY_NAME: dict[str, type[Rule]] = {rule.name: rule for rule in RULES}


def resolve(code_or_name: str) -> type[Rule] | None:
    return BY_CODE.get(code_or_name) or BY_NAME.get(code_or_name)
