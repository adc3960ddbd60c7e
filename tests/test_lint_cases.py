"""Data-driven lint cases: tests/cases/lint/GWnnn.yaml, one per rule, each with a case that triggers
the rule and one that does not. Edits apply to a copy of the example estate.

Variant keys: edit {file: [[old, new]]}, write {file: text}, generate_ca {path, not_after_days, ca,
rsa_bits, hash}, generate_secret {path, kind: pem | wg-config}, expect [substring of `path:line: CODE message`].
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatewayctl.lint import registry
from tests.conftest import AT, run_cli
from tests.pki import ca_certificate, pem_private_key
from tests.test_invalid_cases import apply_case

CASES = sorted((Path(__file__).parent / "cases" / "lint").glob("GW*.yaml"))


def prepare(estate: Path, variant: dict[str, Any], at: dt.datetime) -> None:
    apply_case(estate, variant)
    if "generate_ca" in variant:
        spec = dict(variant["generate_ca"])
        path = estate / spec.pop("path")
        path.write_bytes(ca_certificate(at, **spec))
    if "generate_secret" in variant:
        spec = variant["generate_secret"]
        path = estate / spec["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec["kind"] == "pem":
            path.write_bytes(pem_private_key())
        else:
            path.write_text(f"[Interface]\nPrivateKey = {base64.b64encode(os.urandom(32)).decode()}\n")


def lint(estate: Path, at: str) -> tuple[int, list[dict[str, Any]], list[str]]:
    result = run_cli("--profiles", str(estate), "lint", "--format", "json", "--at", at)
    data = json.loads(result.stdout)
    active = [f for f in data["findings"] if not f["suppressed"]]
    lines = [f"{f['path']}:{f['line']}: {f['code']} {f['message']}".replace(str(estate) + "/", "profiles/") for f in active]
    return result.exit_code, active, lines


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
@pytest.mark.parametrize("variant", ["trigger", "clean"])
def test_lint_case(case_file: Path, variant: str, estate: Path) -> None:
    case = yaml.safe_load(case_file.read_text())
    code = case_file.stem
    at = str(case.get("at", AT))
    prepare(estate, case[variant] or {}, dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC))
    exit_code, active, lines = lint(estate, at)
    mine = [f for f in active if f["code"] == code]
    if variant == "trigger":
        assert mine, f"{code} did not trigger:\n" + "\n".join(lines)
        for expected in case["trigger"]["expect"]:
            assert any(expected in line for line in lines), f"missing {expected!r} in:\n" + "\n".join(lines)
        if registry.BY_CODE[code].severity == "error":
            assert exit_code == 1
    else:
        assert not mine, "\n".join(lines)


def test_every_rule_has_a_case_and_a_complete_docstring() -> None:
    assert sorted(c.stem for c in CASES) == sorted(registry.BY_CODE)
    assert len(registry.BY_NAME) == len(registry.RULES)
    for rule in registry.RULES:
        assert re.fullmatch(r"GW\d{3}", rule.code) and re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", rule.name), rule
        assert rule.severity in ("error", "warning", "info")
        doc = " ".join((rule.__doc__ or "").split())
        for part in ("What it does:", "Why it matters:", "Example:", "Fix:"):
            assert part in doc, (rule.code, part)


def test_rule_reference_is_current() -> None:
    from gatewayctl.lint.docs import rules_reference

    current = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    assert current == rules_reference(), "regenerate: gatewayctl lint --rules > docs/rules.md"


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_errors_only_lint_finds_exactly_the_errors(case_file: Path, estate: Path) -> None:
    """apply lints with errors_only (only the error rules run): on every rule's triggering estate it
    must find exactly the active error findings that the full lint finds, no fewer and no more."""
    from gatewayctl.lint.engine import lint_checked
    from gatewayctl.loader.profiles import load_estate
    from gatewayctl.validate import check_estate

    case = yaml.safe_load(case_file.read_text())
    at = dt.datetime.fromisoformat(str(case.get("at", AT))).replace(tzinfo=dt.UTC)
    prepare(estate, case["trigger"] or {}, at)
    loaded, cas, errors = check_estate(load_estate(estate))
    full = [f for f in lint_checked(estate, loaded, cas, errors, at).active() if f.severity == "error"]
    fast = lint_checked(estate, loaded, cas, errors, at, errors_only=True).active()
    assert fast == full
    if registry.BY_CODE[case_file.stem].severity == "error":
        assert any(f.code == case_file.stem for f in fast)
