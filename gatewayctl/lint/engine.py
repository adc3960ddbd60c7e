"""Run every rule, then apply suppressions: the whole linter as one function."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from gatewayctl.errors import ProfileError, ProfileErrors
from gatewayctl.exceptions import RESTRICTED_FAMILIES, grant_refs, judge, restricted
from gatewayctl.lint import registry
from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule
from gatewayctl.lint.rules import secrets, suppressions
from gatewayctl.loader.profiles import Estate, gc_paused, load_estate
from gatewayctl.loader.yaml12 import Document
from gatewayctl.model.exceptions import GatewayException
from gatewayctl.model.types import Suppression
from gatewayctl.validate import check_estate

LINT_FORMAT = "gatewayctl-lint/1"


@dataclass(frozen=True)
class LintResult:
    """All findings (suppressed ones included, marked) and the input errors that stopped linting."""

    findings: tuple[Finding, ...]
    errors: tuple[ProfileError, ...]

    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]


@dataclass(frozen=True)
class Exemption:
    """A suppression (in the file of the object it exempts) or a gateway exception, where it is written."""

    suppression: Suppression | GatewayException
    obj: tuple[str, ...]
    doc: Document
    loc: tuple[int | str, ...]


def run_lint(root: Path, at: dt.datetime, gateway: str | None = None) -> LintResult:
    """Lint the profiles under `root` at instant `at` (as `gateway` sees them, in an estate of several)."""
    with gc_paused():
        try:
            partial = load_estate(root, gateway)
        except ProfileErrors as exc:
            return LintResult((), tuple(exc.errors))
        estate, cas, errors = check_estate(partial)
    return lint_checked(root, estate, cas, errors, at)


def merge(results: dict[str, LintResult]) -> LintResult:
    """The lint of every gateway of an estate as one result: a finding every gateway reports once, as
    it is; one only some report, with the gateways named after its message."""
    if len(results) == 1:
        return next(iter(results.values()))
    seen: dict[Finding, list[str]] = {}
    for name, result in results.items():
        for finding in result.findings:
            seen.setdefault(finding, []).append(name)
    findings = [dataclasses.replace(f, gateways=tuple(names)) if len(names) == len(results) else
                dataclasses.replace(f, message=f"{f.message} (gateway {', '.join(names)})", gateways=tuple(names))
                for f, names in seen.items()]
    errors = dict.fromkeys(e for r in results.values() for e in r.errors)
    return LintResult(tuple(sorted(findings)), tuple(errors))


def lint_checked(root: Path, estate: Estate | None, cas: dict[str, list[x509.Certificate]], errors: list[ProfileError],
                 at: dt.datetime, errors_only: bool = False, only: list[Path] | None = None) -> LintResult:
    """Lint an estate already loaded and checked (check_estate's results).

    `errors_only` (apply, which refuses on errors and nothing else) runs only the rules of error
    severity and keeps only error findings: a warning rule left out cannot change an error, since
    suppressions match by rule and the only finding about a suppression that depends on which rules
    ran (GW902, unused) is a warning. `only`: scan only these files for secrets (a partner-scoped
    apply's changed files, gatewayctl/apply/scoped.py)."""
    coded = [e for e in errors if e.code]
    fatal = tuple(e for e in errors if not e.code)
    secret_findings = secrets.scan(root, read=_texts(estate) if estate is not None else None, only=only)
    if fatal or estate is None:
        return LintResult(tuple(sorted(secret_findings)), fatal)
    ctx = LintContext(estate, cas, at)
    findings = [_from_validation(e) for e in coded] + secret_findings
    for rule in registry.RULES:
        if rule.__module__ not in (secrets.__name__, suppressions.__name__) and not (errors_only and rule.severity != "error"):
            findings.extend(rule().check(ctx))
    exemptions, refused = _admitted(estate, at)
    result = _suppress(findings, exemptions, ctx.today) + refused
    return LintResult(tuple(sorted(f for f in result if f.severity == "error" or not errors_only)), ())


def _texts(estate: Estate) -> dict[str, str]:
    """The text of every file of the estate, as the loader read it, by normalised path."""
    docs = [estate.gateway.doc, estate.services.doc, *(p.doc for p in estate.partners)]
    return {os.path.normpath(d.path): d.text for d in docs if d.text is not None}


def _from_validation(error: ProfileError) -> Finding:
    rule = registry.BY_CODE[error.code]
    return Finding(error.path, error.line, rule.code, rule.name, rule.severity, error.message, rule.hint)


def _exemptions(estate: Estate) -> Iterator[Exemption]:
    gateway = estate.gateway
    for i, s in enumerate(gateway.model.suppressions):
        yield Exemption(s, ("gateway",), gateway.doc, ("suppressions", i))
    for name, service in estate.services.model.services.items():
        for i, s in enumerate(service.suppressions):
            yield Exemption(s, ("service", name), estate.services.doc, ("services", name, "suppressions", i))
    for partner in estate.partners:
        model, doc = partner.model, partner.doc
        for i, s in enumerate(model.suppressions):
            yield Exemption(s, ("partner", model.id), doc, ("suppressions", i))
        for p, peer in enumerate(model.peers):
            for i, s in enumerate(peer.suppressions):
                yield Exemption(s, ("peer", model.id, str(p)), doc, ("peers", p, "suppressions", i))
        for g, grant in enumerate(model.grants):
            for i, s in enumerate(grant.suppressions):
                yield Exemption(s, ("grant", model.id, str(g)), doc, ("grants", g, "suppressions", i))


def _admitted(estate: Estate, at: dt.datetime) -> tuple[list[Exemption], list[Finding]]:
    """The exemptions that may lift findings, and findings about those that may not: local suppressions
    of restricted rules (only gateway exceptions may lift them) and gateway exceptions that are refused."""
    admitted: list[Exemption] = []
    refused: list[Finding] = []
    limit = estate.gateway.model.lint.max_exception_days
    for ex in _exemptions(estate):
        rule = registry.resolve(ex.suppression.rule)
        if rule is not None and restricted(rule.code):
            refused.append(_meta(suppressions.SuppressionNotGatewayOwned, ex, _not_here(rule, _target(estate, ex.obj), limit)))
        else:
            admitted.append(ex)
    doc = estate.gateway.doc
    for judged in judge(estate, at):
        ex = Exemption(judged.exception, judged.obj, doc, ("exceptions", judged.index))
        refused += [_meta(registry.BY_CODE[code], ex, message) for code, message in judged.problems]
        if not judged.problems:
            admitted.append(ex)
    return admitted, refused


def _not_here(rule: type[Rule], target: str, limit: int) -> str:
    family = RESTRICTED_FAMILIES[rule.code[:3]]
    return (f"suppression of {rule.code} ({rule.name}) is not accepted here: {family} rules are excepted only by the "
            f"gateway owners, in gateway.yaml exceptions: [{{rule: {rule.code}{target}, reason: ..., approved_by: "
            f"(one of lint.approvers), expires: (at most {limit} days away)}}]")


def _target(estate: Estate, obj: tuple[str, ...]) -> str:
    """The target fields of a gateway exception naming the object `obj` of a local suppression."""
    kind, *rest = obj
    if kind == "service":
        return f", service: {rest[0]}"
    partner = next((p.model for p in estate.partners if p.model.id == rest[0]), None) if rest else None
    if partner is None:
        return ""
    if kind == "peer":
        return f", partner: {partner.id}, peer: {partner.peers[int(rest[1])].name}"
    if kind == "grant":
        return f", partner: {partner.id}, grant: {dict(grant_refs(partner.grants))[int(rest[1])]}"
    return f", partner: {partner.id}"


def _suppress(findings: list[Finding], exemptions: list[Exemption], today: dt.date) -> list[Finding]:
    by_object: dict[tuple[str, ...], list[Exemption]] = {}
    meta: list[Finding] = []
    for ex in exemptions:
        rule = registry.resolve(ex.suppression.rule)
        if rule is None:
            meta.append(_meta(suppressions.SuppressionUnknownRule, ex, f"suppression names unknown rule {ex.suppression.rule!r}"))
        elif ex.suppression.expires < today:
            meta.append(_meta(suppressions.SuppressionExpired, ex, f"suppression of {rule.code} ({rule.name}) expired on "
                              f"{ex.suppression.expires}: {ex.suppression.reason}"))
        else:
            by_object.setdefault(ex.obj, []).append(ex)
    used: set[int] = set()
    result = []
    for finding in findings:
        match = next((ex for ex in by_object.get(finding.obj, []) if registry.resolve(ex.suppression.rule) is
                      registry.BY_CODE.get(finding.code)), None)
        if match is not None:
            used.add(id(match))
            finding = dataclasses.replace(finding, suppressed=True, suppression_reason=match.suppression.reason)
        result.append(finding)
    for group in by_object.values():
        for ex in group:
            if id(ex) not in used:
                meta.append(_meta(suppressions.SuppressionUnused, ex, f"suppression of {ex.suppression.rule} exempts no "
                                  "finding on this object"))
    return result + meta


def _meta(rule: type[Rule], ex: Exemption, message: str) -> Finding:
    return Finding(ex.doc.shown_path, ex.doc.line_of(ex.loc), rule.code, rule.name, rule.severity, message, rule.hint, ex.obj)
