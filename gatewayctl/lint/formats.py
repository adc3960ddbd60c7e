"""Lint output: text (`path:line: CODE message`), JSON (versioned), SARIF 2.1.0, GitHub workflow
commands and GitLab Code Quality JSON."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from gatewayctl import __version__
from gatewayctl.lint import registry
from gatewayctl.lint.engine import LINT_FORMAT, LintResult
from gatewayctl.lint.finding import Finding

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def summary(result: LintResult) -> str:
    active = result.active()
    counts = {s: sum(f.severity == s for f in active) for s in ("error", "warning", "info")}
    suppressed = len(result.findings) - len(active)
    return (f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"
            + (f"; {suppressed} suppressed" if suppressed else ""))


def text(result: LintResult) -> str:
    lines = [f"{f}  [{f.severity}: {f.name}]" for f in result.active()]
    lines.append(summary(result))
    return "\n".join(lines)


def as_json(result: LintResult, at: dt.datetime) -> dict[str, Any]:
    return {
        "format": LINT_FORMAT, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "findings": [{
            "path": f.path, "line": f.line, "code": f.code, "name": f.name, "severity": f.severity,
            "message": f.message, "hint": f.hint, "suppressed": f.suppressed,
            **({"suppression_reason": f.suppression_reason} if f.suppressed else {}),
            **({"gateways": list(f.gateways)} if f.gateways else {}),
        } for f in result.findings],
        "summary": summary(result),
    }


def fingerprint(finding: Finding) -> str:
    """Stable across moved lines and reformatting: the rule, the file and the message."""
    return hashlib.sha256(f"{finding.code}|{finding.path}|{finding.message}".encode()).hexdigest()[:32]


def sarif(result: LintResult) -> dict[str, Any]:
    """SARIF 2.1.0 as GitHub code scanning reads it; suppressed findings are left out."""
    rules = registry.RULES
    index = {rule.code: i for i, rule in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gatewayctl", "version": __version__, "semanticVersion": __version__,
                "informationUri": "https://example.com/gatewayctl/docs/rules.md",
                "rules": [{
                    "id": rule.code, "name": rule.name,
                    "shortDescription": {"text": rule.summary},
                    "fullDescription": {"text": " ".join((rule.__doc__ or "").split())},
                    "help": {"text": rule.hint},
                    "defaultConfiguration": {"level": LEVEL[rule.severity]},
                    "properties": {"tags": ["security", "gatewayctl"]},
                } for rule in rules],
            }},
            "results": [{
                "ruleId": f.code, "ruleIndex": index[f.code], "level": LEVEL[f.severity],
                "message": {"text": f"{f.message} ({f.hint})"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.path},
                    "region": {"startLine": max(f.line, 1)},
                }}],
                "partialFingerprints": {"gatewayctl/v1": fingerprint(f)},
                **({"properties": {"gateways": list(f.gateways)}} if f.gateways else {}),
            } for f in result.active()],
        }],
    }


# GitHub Actions workflow commands, "Setting an error/warning/notice message":
#   ::error file={name},line={line},title={title}::{message}
# https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions ; the escaping is
# the runner's (actions/toolkit packages/core/src/command.ts escapeData and escapeProperty): a raw
# newline would end the command, and `:` or `,` in a property would end the property.
GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}
# GitLab Code Quality severities are info, minor, major, critical, blocker
# (https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format). An error is what
# `apply` refuses to apply: critical; a warning asks for a look before merging: minor.
GITLAB_SEVERITY = {"error": "critical", "warning": "minor", "info": "info"}


def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def github(result: LintResult) -> str:
    """One workflow command per finding not suppressed (error, warning, notice), then the summary
    as a plain log line."""
    lines = []
    for f in result.active():
        props = f"file={_github_property(f.path)},line={max(f.line, 1)},title={_github_property(f.code)}"
        lines.append(f"::{GITHUB_COMMAND[f.severity]} {props}::{_github_data(f'{f.name}: {f.message} (fix: {f.hint})')}")
    lines.append(summary(result))
    return "\n".join(lines)


def gitlab(result: LintResult) -> list[dict[str, Any]]:
    """GitLab Code Quality issues, one per finding not suppressed. The fingerprint is the SARIF one
    (rule, file, message: stable when lines move) with a count for repeats, since GitLab shows only
    the first issue of a fingerprint."""
    issues, seen = [], {}  # type: list[dict[str, Any]], dict[str, int]
    for f in result.active():
        base = fingerprint(f)
        seen[base] = seen.get(base, 0) + 1
        unique = base if seen[base] == 1 else hashlib.sha256(f"{base}|{seen[base]}".encode()).hexdigest()[:32]
        issues.append({"description": f"{f.message} (fix: {f.hint})", "check_name": f.code,
                       "fingerprint": unique, "severity": GITLAB_SEVERITY[f.severity],
                       "location": {"path": f.path, "lines": {"begin": max(f.line, 1)}}})
    return issues


FORMATS = ("text", "json", "sarif", "github", "gitlab")


def render(result: LintResult, fmt: str, at: dt.datetime) -> str:
    """The findings in one of FORMATS."""
    if fmt == "github":
        return github(result)
    if fmt == "gitlab":
        return json.dumps(gitlab(result), indent=2)
    if fmt == "json":
        return json.dumps(as_json(result, at), indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(result), indent=2)
    return text(result)
