"""`test` and `query` on the example estate: answers, explanations, failures naming the grant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewayctl.policy.flows import parse_target
from tests.conftest import AT, PROFILES, run_cli


def test_example_policy_tests_pass() -> None:
    result = run_cli("--profiles", str(PROFILES), "test", "--at", AT)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip().endswith("7 passed, 0 failed")


def test_a_failing_assertion_names_the_grant_that_allows_the_flow(estate: Path) -> None:
    (estate / "tests" / "more.yaml").write_text(
        "tests:\n"
        "  - name: acme must not reach the CRM\n    partner: acme\n    cannot_reach: {service: crm-api}\n"
        "  - name: initech reaches the ERP\n    partner: initech\n    can_reach: {to: '10.2.0.5:5432/tcp'}\n")
    result = run_cli("--profiles", str(estate), "test", "--at", AT)
    assert result.exit_code == 1
    out = result.stdout.replace(str(estate) + "/", "profiles/")
    assert ("FAIL profiles/tests/more.yaml:2: acme must not reach the CRM: allowed by acme/crm-api "
            "(crm-api (10.1.0.5/32:443/tcp); approved by Maria Lopez (CISO delegate))") in out
    assert "FAIL profiles/tests/more.yaml:5: initech reaches the ERP: no grant allows 10.2.0.5:5432/tcp" in out
    assert "7 passed, 2 failed" in out


def test_broken_test_file_is_reported_with_its_line(estate: Path) -> None:
    (estate / "tests" / "bad.yaml").write_text("tests:\n  - name: x\n    partner: acme\n    can_reach: {to: 'nowhere'}\n")
    result = run_cli("--profiles", str(estate), "test", "--at", AT)
    assert result.exit_code == 2
    assert "tests/bad.yaml:4: tests[0].can_reach: 'nowhere' is not ADDRESS" in result.stderr


@pytest.mark.parametrize(("source", "target", "allowed", "reason"), [
    ("10.250.1.1", "10.1.0.5:443/tcp", True, "allowed for partner acme by acme/crm-api"),
    ("10.250.1.1", "10.1.0.5:22/tcp", False, "no grant of acme allows tcp/22 there (acme/crm-api allows tcp/443)"),
    ("10.250.3.1", "10.1.0.40:443/tcp", False, "the grant of status-page to initech is not in force: it expired on 2026-10-31"),
    ("10.250.9.9", "10.1.0.5:443/tcp", False, "10.250.9.9 belongs to no partner: the gateway drops it (unknown source)"),
    ("100.64.20.9", "10.1.0.21:8003/tcp", True, "allowed for partner globex by globex/file-drop"),
    ("100.64.20.9", "10.1.0.21:8004/tcp", False, "no grant of globex allows tcp/8004 there (globex/file-drop allows tcp/8000-8003)"),
    ("fd00:250::4:1", "[fd00:1:0:2::7]:8443/tcp", True, "allowed for partner umbrella by umbrella/build-cache"),
    ("10.250.1.1", "10.1.0.1/icmp", True, "allowed for partner acme by acme/lab-ping"),
])
def test_flow_queries(source: str, target: str, allowed: bool, reason: str) -> None:
    result = run_cli("--profiles", str(PROFILES), "query", "--from", source, "--to", target, "--format", "json", "--at", AT)
    assert result.exit_code == (0 if allowed else 1)
    answer = json.loads(result.stdout)
    assert answer["allowed"] is allowed and answer["reason"] == reason


def test_who_reaches_a_target_and_what_a_partner_reaches() -> None:
    who = json.loads(run_cli("--profiles", str(PROFILES), "query", "--to", "10.1.0.5:443/tcp", "--format", "json",
                             "--at", AT).stdout)
    assert sorted((w["partner"], w["grant"]) for w in who) == [("acme", "acme/crm-api"), ("globex", "globex/crm-api")]
    acme = json.loads(run_cli("--profiles", str(PROFILES), "query", "--partner", "initech", "--format", "json",
                              "--at", AT).stdout)
    assert [g["grant"] for g in acme["grants"]] == ["initech/intranet-web"]
    assert acme["not_in_force"] == [{"service": "status-page", "reason": "it expired on 2026-10-31"}]


@pytest.mark.parametrize("text", ["10.1.0.5:99999/tcp", "10.1.0.5:22/sctp", "nowhere", "10.1.0.1:7/icmp"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)
