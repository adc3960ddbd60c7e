"""Output for CI systems, each checked against what its consumer documents:

- `test --format junit`: read by junitparser (a JUnit XML reader CI plugins use) and by xml.etree.
- `lint --format github`: GitHub Actions workflow commands, "::error file={name},line={line},title={title}::{message}"
  (https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions), escaped as the
  runner unescapes them (actions/runner src/Runner.Common/ActionCommand.cs).
- `lint --format gitlab`: GitLab Code Quality JSON, an array of issues with description, check_name,
  fingerprint, severity (info, minor, major, critical, blocker), location.path and location.lines.begin
  (https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format).
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import junitparser
import pytest

from gatewayctl.lint.engine import LintResult
from gatewayctl.lint.finding import Finding
from gatewayctl.lint.formats import github
from tests.conftest import AT, PROFILES, run_cli

# The Code Quality fields GitLab's documentation lists as required, written here as a JSON Schema.
GITLAB_ISSUE = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object", "required": ["path", "lines"],
                "properties": {"path": {"type": "string", "minLength": 1},
                               "lines": {"type": "object", "required": ["begin"],
                                         "properties": {"begin": {"type": "integer", "minimum": 1}}}},
            },
        },
    },
}
# ::COMMAND key=value,key=value::message (the runner's parser: ActionCommand.TryParseV2)
COMMAND = re.compile(r"^::(?P<command>[a-z]+) (?P<props>[^:]*)::(?P<message>.*)$")


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    match = COMMAND.match(line)
    assert match, f"not a workflow command: {line!r}"
    props = dict(item.split("=", 1) for item in match["props"].split(","))
    return match["command"], {k: unescape_property(v) for k, v in props.items()}, unescape_data(match["message"])


def line_of(path: Path, text: str) -> int:
    """The 1-based line of `text` in the file (the test's own data)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def lint_estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example estate with an error (telnet: GW404), a warning (a /20 service: GW402), an info
    (a service nobody is granted: GW603) and the estate's own expired grant (GW201)."""
    root = tmp_path / "profiles"
    shutil.copytree(PROFILES, root)
    services = root / "services.yaml"
    text = services.read_text().replace("    ports: [22]", "    ports: [23]")
    text = text.replace("addresses: [10.1.0.5/32]", "addresses: [10.1.0.0/20]")
    services.write_text(text + "  unused-wiki:\n    description: Nobody is granted this.\n    owner: Web Team "
                        "<web@example.com>\n    classification: internal\n    addresses: [10.1.0.77/32]\n"
                        "    protocol: tcp\n    ports: [443]\n")
    monkeypatch.chdir(tmp_path)
    return Path("profiles")


def lint_json(root: Path) -> list[dict[str, Any]]:
    findings = json.loads(run_cli("--profiles", str(root), "lint", "--format", "json", "--at", AT).stdout)["findings"]
    return [f for f in findings if not f["suppressed"]]


def test_github_annotations_one_per_finding_at_its_file_and_line(lint_estate: Path) -> None:
    result = run_cli("--profiles", str(lint_estate), "lint", "--format", "github", "--at", AT)
    assert result.exit_code == 1, result.stdout + result.stderr  # an error finding
    lines = result.stdout.strip().splitlines()
    *commands, summary = lines
    assert summary == "1 error(s), 2 warning(s), 1 info", summary
    parsed = [parse_command(line) for line in commands]
    by_code = {props["title"]: (command, props) for command, props, _ in parsed}
    assert {code: command for code, (command, _) in by_code.items()} == {
        "GW404": "error", "GW402": "warning", "GW201": "warning", "GW603": "notice"}
    services, initech = lint_estate / "services.yaml", lint_estate / "partners" / "initech.yaml"
    assert by_code["GW201"][1] == {"file": str(initech), "line": str(line_of(initech, "expires: 2026-10-31")),
                                   "title": "GW201"}
    assert by_code["GW603"][1]["file"] == str(services)  # at the service entry's first line
    assert by_code["GW603"][1]["line"] == str(line_of(services, "Nobody is granted this."))
    # the same findings as the JSON report, at the same places
    expected = {(f["code"], f["path"], str(f["line"]), f"{f['name']}: {f['message']} (fix: {f['hint']})")
                for f in lint_json(lint_estate)}
    assert {(p["title"], p["file"], p["line"], message) for _, p, message in parsed} == expected
    assert "unused-wiki" in next(m for _, p, m in parsed if p["title"] == "GW603")


def test_github_escapes_what_would_end_a_command_or_a_property() -> None:
    tricky = Finding("profiles/partners/a,b:c.yaml", 7, "GW201", "grant-expired", "warning",
                     "50% done: first line\nsecond line, with a comma", "fix it\r\n")
    out = github(LintResult([tricky], []))  # type: ignore[arg-type]
    first, summary = out.splitlines()
    assert "\n" not in first and summary.startswith("0 error(s), 1 warning(s)")
    command, props, message = parse_command(first)
    assert command == "warning"
    assert props == {"file": "profiles/partners/a,b:c.yaml", "line": "7", "title": "GW201"}
    assert message == "grant-expired: 50% done: first line\nsecond line, with a comma (fix: fix it\r\n)"


def test_gitlab_code_quality_has_the_documented_shape(lint_estate: Path) -> None:
    result = run_cli("--profiles", str(lint_estate), "lint", "--format", "gitlab", "--at", AT)
    assert result.exit_code == 1, result.stderr
    issues = json.loads(result.stdout)
    jsonschema.Draft202012Validator(GITLAB_ISSUE).validate(issues)
    severity = {i["check_name"]: i["severity"] for i in issues}
    assert severity == {"GW404": "critical", "GW402": "minor", "GW201": "minor", "GW603": "info"}  # docs/review.md
    services = lint_estate / "services.yaml"
    wiki = next(i for i in issues if i["check_name"] == "GW603")
    assert wiki["location"] == {"path": str(services), "lines": {"begin": line_of(services, "Nobody is granted this.")}}
    assert "unused-wiki" in wiki["description"]
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_gitlab_fingerprints_stay_when_lines_move_and_repeats_stay_distinct(lint_estate: Path) -> None:
    def issues() -> list[dict[str, Any]]:
        out = json.loads(run_cli("--profiles", str(lint_estate), "lint", "--format", "gitlab", "--at", AT).stdout)
        return sorted(out, key=lambda i: i["check_name"])

    before = issues()
    services = lint_estate / "services.yaml"
    services.write_text("# a comment that moves every line down\n# and another\n" + services.read_text())
    after = issues()
    assert [i["fingerprint"] for i in before] == [i["fingerprint"] for i in after]
    moved = [(b["location"]["lines"]["begin"], a["location"]["lines"]["begin"]) for b, a in zip(before, after, strict=True)
             if a["location"]["path"] == str(services)]
    assert moved and all(a == b + 2 for b, a in moved), moved
    # two identical findings (same rule, file, message) on different lines still get two fingerprints
    twin = Finding("p.yaml", 1, "GW201", "grant-expired", "warning", "same", "hint")
    from gatewayctl.lint.formats import gitlab

    out = gitlab(LintResult([twin, Finding("p.yaml", 9, "GW201", "grant-expired", "warning", "same", "hint")], []))  # type: ignore[arg-type]
    assert len({i["fingerprint"] for i in out}) == 2


@pytest.fixture
def failing_tests(estate: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example estate with two policy tests added: one that holds, one that fails (acme is granted crm-api)."""
    (estate / "tests" / "ci.yaml").write_text(
        "tests:\n"
        "  - name: acme never reaches the CRM API\n    partner: acme\n    cannot_reach: {service: crm-api}\n"
        "  - name: initech never reaches restricted data\n    partner: initech\n    cannot_reach: {classification: restricted}\n")
    monkeypatch.chdir(estate.parent)
    return Path("profiles")


def test_junit_one_testcase_per_policy_test_read_by_junitparser(failing_tests: Path) -> None:
    result = run_cli("--profiles", str(failing_tests), "test", "--format", "junit", "--at", AT)
    assert result.exit_code == 1, result.stderr
    path = failing_tests.parent / "report.xml"
    path.write_text(result.stdout)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    cases = {case.name: case for suite in suites for case in suite}
    access = (PROFILES / "tests" / "access.yaml").read_text().count("- name:")
    assert len(cases) == access + 2
    assert sum(s.tests for s in suites) == access + 2 and sum(s.failures for s in suites) == 1
    failed = cases["acme never reaches the CRM API"]
    (failure,) = failed.result
    assert isinstance(failure, junitparser.Failure)
    assert "allowed by" in (failure.message or "") and "crm-api" in (failure.message or "")
    assert "acme" in (failure.text or "")  # the evidence: the grant of acme
    ci = failing_tests / "tests" / "ci.yaml"
    assert failed.classname == "gatewayctl.test.ci"
    assert failed._elem.get("file") == str(ci)
    assert failed._elem.get("line") == str(line_of(ci, "acme never reaches the CRM API"))
    passed = cases["initech never reaches restricted data"]
    assert passed.is_passed and not passed.result


def test_junit_parses_with_xml_etree_and_counts_agree(failing_tests: Path) -> None:
    result = run_cli("--profiles", str(failing_tests), "test", "--format", "junit", "--at", AT)
    root = ET.fromstring(result.stdout.encode())
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "-1")) == len(cases)
    assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in cases) == 1
    assert all(c.get("classname", "").startswith("gatewayctl.test.") and c.get("name") for c in cases)


def test_junit_all_pass_exits_zero(estate: Path) -> None:
    result = run_cli("--profiles", str(estate), "test", "--format", "junit", "--at", AT)
    assert result.exit_code == 0, result.stderr
    root = ET.fromstring(result.stdout.encode())
    assert root.get("failures") == "0" and int(root.get("tests", "0")) > 0
