"""Lint output: text (`path:line: CODE message`), JSON (versioned) and SARIF 2.1.0."""

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
            } for f in result.active()],
        }],
    }


def render(result: LintResult, fmt: str, at: dt.datetime) -> str:
    if fmt == "json":
        return json.dumps(as_json(result, at), indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(result), indent=2)
    return text(result)
