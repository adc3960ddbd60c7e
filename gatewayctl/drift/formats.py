"""Drift report renderings: text, JSON (versioned), Markdown, JUnit XML, Prometheus textfile."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from gatewayctl.drift.check import STATUS, DriftReport
from gatewayctl.paint import Paint, plain

DRIFT_FORMAT = "gatewayctl-drift/1"
SUMMARY = {0: "in sync: the host matches the last apply and the profiles",
           1: "DRIFT: the host was changed outside gatewayctl",
           3: "the profiles changed since the last apply (run gatewayctl plan)"}


def _applied_line(report: DriftReport) -> str:
    applied = report.applied
    if not applied:
        return "never applied on this host"
    rev = applied.get("revision") or "no git revision"
    return f"last applied {applied.get('applied_at')} by digest {applied.get('digest', '')[:12]} (revision {rev})"


# in sync: ok; the host changed behind gatewayctl's back: error; the profiles not applied yet: warning
STATUS_ROLE = {0: "ok", 1: "error", 3: "warning"}


def text(report: DriftReport, paint: Paint = plain) -> str:
    """The summary, the last apply, one line per finding and each revocation in force; `paint`
    colours the summary by status and each finding by its source (host: error, profiles: warning)."""
    lines = [paint(STATUS_ROLE.get(report.status, ""), SUMMARY[report.status]), _applied_line(report)]
    lines += [paint("error" if f.source == "host" else "warning", f"  {f}") for f in report.findings]
    lines += [f"revoked on this gateway: {r}" for r in report.revocations]
    return "\n".join(lines)


def as_json(report: DriftReport) -> dict[str, Any]:
    return {
        "format": DRIFT_FORMAT, "status": STATUS[report.status], "exit_code": report.status,
        "checked_at": report.checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_apply": {k: report.applied.get(k) for k in ("applied_at", "digest", "revision", "dirty")} if report.applied else None,
        "findings": [f.__dict__ for f in report.findings],
        "revocations": list(report.revocations),
    }


def markdown(report: DriftReport) -> str:
    lines = [f"## Drift report: {STATUS[report.status]}", "", f"**{SUMMARY[report.status]}**", "",
             f"{_applied_line(report)}; checked {report.checked_at.strftime('%Y-%m-%d %H:%M:%SZ')}.", ""]
    if report.findings:
        lines += ["| source | kind | partner | what | detail |", "|---|---|---|---|---|"]
        lines += [f"| {f.source} | `{f.kind}` | {f.partner} | {_md(f.subject)} | {_md(f.detail)} |" for f in report.findings]
    else:
        lines.append("No findings.")
    if report.revocations:
        lines += ["", "Revoked on this gateway:", ""] + [f"- {_md(r)}" for r in report.revocations]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def junit(report: DriftReport) -> str:
    cases = []
    for f in report.findings:
        cases.append(f'  <testcase classname="gatewayctl.drift.{f.source}" name={quoteattr(f"{f.kind}: {f.subject}")}>'
                     f'<failure message={quoteattr(f.detail or f.kind)}>{escape(str(f))}</failure></testcase>')
    if not report.findings:
        cases.append('  <testcase classname="gatewayctl.drift" name="gateway in sync"/>')
    head = (f'<testsuite name="gatewayctl drift" tests="{len(cases)}" failures="{len(report.findings)}" '
            f'timestamp="{report.checked_at.strftime("%Y-%m-%dT%H:%M:%S")}">')
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, *cases, "</testsuite>"]) + "\n"


def prometheus(report: DriftReport) -> str:
    lines = ["# HELP gatewayctl_drift_status 0 in sync, 1 host changed outside gatewayctl, 3 profiles not applied.",
             "# TYPE gatewayctl_drift_status gauge", f"gatewayctl_drift_status {report.status}",
             "# HELP gatewayctl_drift_findings Drift findings by source and kind.", "# TYPE gatewayctl_drift_findings gauge"]
    counts = Counter((f.source, f.kind) for f in report.findings)
    lines += [f'gatewayctl_drift_findings{{source="{s}",kind="{k}"}} {n}' for (s, k), n in sorted(counts.items())]
    lines += ["# HELP gatewayctl_drift_checked_timestamp_seconds When drift was last checked.",
              "# TYPE gatewayctl_drift_checked_timestamp_seconds gauge",
              f"gatewayctl_drift_checked_timestamp_seconds {int(report.checked_at.timestamp())}"]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": text, "json": lambda r: json.dumps(as_json(r), indent=2), "markdown": markdown, "junit": junit,
             "prometheus": prometheus}
