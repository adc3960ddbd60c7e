"""The built-in checks, each evaluated on the collected document alone, and the control mapping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from gatewayctl.errors import ProfileErrors
from gatewayctl.loader.profiles import _translate
from gatewayctl.loader.yaml12 import read_document
from gatewayctl.model.types import Strict, Text
from gatewayctl.report.withhold import withhold_paths

PASS, FAIL, NOT_EVIDENCED = "pass", "fail", "not-evidenced"
DEFAULT_CONTROLS = Path(__file__).with_name("controls.yaml")
Doc = dict[str, Any]
Result = tuple[str, str, list[str]]  # status, detail, evidence


def _where(f: Doc) -> str:
    """`path:line: ` of a lint finding; empty in a partner's report, which shows no path of the gateway."""
    return f"{f['path']}:{f['line']}: " if f["path"] else ""


def _lint(doc: Doc, prefixes: tuple[str, ...], severities: tuple[str, ...] = ("error",)) -> list[str]:
    return [f"{_where(f)}{f['code']} {f['message']}" for f in doc["lint"]["findings"]
            if f["code"].startswith(prefixes) and f["severity"] in severities]


def _from_lint(doc: Doc, prefixes: tuple[str, ...], ok: str, bad: str, severities: tuple[str, ...] = ("error",)) -> Result:
    found = _lint(doc, prefixes, severities)
    return (FAIL, f"{len(found)} {bad}", found) if found else (PASS, ok, [])


def default_deny(doc: Doc) -> Result:
    drift = doc["drift"]
    if not drift["available"]:
        return NOT_EVIDENCED, f"the live firewall could not be read: {drift['reason']}", []
    broken = [f"{f['subject']}: {f['detail']}" for f in drift["findings"] if f["source"] == "host"
              and f["kind"] in ("table-missing", "table-changed", "rule-changed", "foreign-base-chain")]
    if broken:
        return FAIL, "the live ruleset differs from the approved deny-by-default ruleset", broken
    return PASS, (f"table inet {doc['gateway']['table']} is live as applied: partner traffic is dropped unless a grant "
                  "set holds (source, destination, protocol, port) for the partner's own address"), []


def least_privilege(doc: Doc) -> Result:
    return _from_lint(doc, ("GW1", "GW4", "GW5"), "no grant above its stage, too broad, insecure or overlapping",
                      "grant(s) above the stage, too broad or overlapping")


def grants_justified(doc: Doc) -> Result:
    grants = [g for p in doc["partners"] for g in p["grants"] if g["in_force"]]
    missing = [f"{g['id']}: {'no justification' if not g['justification'] else 'no approver'}" for g in grants
               if not g["justification"] or not g["approved_by"]]
    unknown = _lint(doc, ("GW604",), ("warning", "error"))
    if missing or unknown:
        return FAIL, f"{len(missing) + len(unknown)} grant(s) without justification or known approver", missing + unknown
    return PASS, f"all {len(grants)} grants in force have a justification and an approver", []


def access_time_limited(doc: Doc) -> Result:
    grants = [g for p in doc["partners"] for g in p["grants"] if g["in_force"]]
    open_ended = [g["id"] for g in grants if g["ends_at"] is None]
    too_long = _lint(doc, ("GW103", "GW206"), ("warning", "error"))
    if open_ended or too_long:
        return FAIL, "access without an end, or longer than the stage allows", open_ended + too_long
    expiring = sum(1 for g in grants if g["expiring"])
    return PASS, (f"all {len(grants)} grants end (the kernel closes them on time); {expiring} end within "
                  f"{doc['expiry_warning_days']} days"), []


def reviews_current(doc: Doc) -> Result:
    today = doc["generated_at"][:10]
    late = [f"{p['id']}: review due {p['review_by']}" if p["review_by"] else f"{p['id']}: no review date"
            for p in doc["partners"] if not p["review_by"] or p["review_by"] < today]
    if late:
        return FAIL, f"{len(late)} partner profile(s) without a current review", late
    return PASS, f"every partner profile has a review date ahead ({len(doc['partners'])} partners)", []


def agreements_in_force(doc: Doc) -> Result:
    expired = [f"{p['id']}: agreement {p['agreement']['reference']} ended {p['agreement']['expires']}"
               for p in doc["partners"] if not p["agreement"]["in_force"]]
    if expired:
        return FAIL, f"{len(expired)} partner(s) without an agreement in force (their grants are left out)", expired
    return PASS, f"every partner has an agreement in force ({len(doc['partners'])} partners)", []


def lint_clean(doc: Doc) -> Result:
    errors = [f"{_where(f)}{f['code']} {f['message']}" for f in doc["lint"]["findings"] if f["severity"] == "error"]
    suppressed = len(doc["lint"]["suppressed"])
    if errors:
        return FAIL, f"{len(errors)} lint error(s)", errors
    return PASS, f"no lint error ({len(doc['lint']['findings'])} warnings or notes; {suppressed} accepted exceptions)", []


def policy_tests_pass(doc: Doc) -> Result:
    tests = doc["policy_tests"]
    if not tests:
        return NOT_EVIDENCED, "no policy test covers this scope", []
    failed = [f"{t['where'] + ': ' if t['where'] else ''}{t['name']}: {t['detail']}" for t in tests if not t["passed"]]
    if failed:
        return FAIL, f"{len(failed)} of {len(tests)} policy tests fail", failed
    return PASS, f"all {len(tests)} policy tests pass", []


def live_matches_approved(doc: Doc) -> Result:
    drift = doc["drift"]
    if not drift["available"]:
        return NOT_EVIDENCED, f"the live gateway could not be read: {drift['reason']}", []
    if drift["status"] == "in-sync":
        return PASS, f"the live gateway matches the last apply ({drift.get('applied_at') or 'never applied'}) and the profiles", []
    found = [f"[{f['source']}] {f['kind']}: {f['subject']}" + (f": {f['detail']}" if f["detail"] else "")
             for f in drift["findings"]]
    return FAIL, f"drift: {drift['status']}", found


def changes_recorded(doc: Doc) -> Result:
    journal = doc["journal"]
    if journal is None:
        return NOT_EVIDENCED, "the gateway's change journal is not part of a partner report", []
    applies = [e for e in journal if e.get("event") == "applied"]
    if not applies:
        return NOT_EVIDENCED, "no apply is recorded in the journal", []
    missing = [f"{e.get('time')}: apply without {'user' if not e.get('user') else 'revision'}" for e in applies
               if not e.get("user") or not e.get("revision")]
    if missing:
        return FAIL, "applies without a user or a git revision", missing
    last = applies[-1]
    return PASS, (f"{len(applies)} applies recorded with user and revision; last {last.get('time')} by {last.get('user')} "
                  f"at {str(last.get('revision'))[:12]}"), []


def strong_authentication(doc: Doc) -> Result:
    needing = [p for p in doc["partners"] if p["smartcard_needed"]]
    if not needing:
        return PASS, "no partner reaches data whose stage requires a smart card", []
    weak = []
    for p in needing:
        certs = p["certificates"]
        if certs is None:
            weak.append(f"{p['id']}: reaches {', '.join(p['smartcard_needed'])} without certificate requirements")
        elif not certs["session_seconds"]:
            weak.append(f"{p['id']}: smart-card requirements declared but not enforced at the gateway (no session)")
    if weak:
        return FAIL, f"{len(weak)} of {len(needing)} partner(s) needing smart cards are not enforced", weak
    return PASS, f"all {len(needing)} partner(s) needing smart cards reach their grants only in a smart-card session", []


def certificate_trust_valid(doc: Doc) -> Result:
    with_certs = [p for p in doc["partners"] if p["certificates"]]
    if not with_certs:
        return NOT_EVIDENCED, "no partner has certificate requirements", []
    return _from_lint(doc, ("GW7",), f"the issuing CAs of {len(with_certs)} partner(s) are valid, strong and current",
                      "problem(s) with issuing CAs", ("error", "warning"))


def encryption_in_transit(doc: Doc) -> Result:
    missing = _lint(doc, ("GW104",))
    if missing:
        return FAIL, "peers reaching sensitive data without the preshared key their stage requires", missing
    peers = sum(len(p["peers"]) for p in doc["partners"])
    return PASS, (f"all {peers} peers reach services only through WireGuard (ChaCha20-Poly1305); preshared keys "
                  "where the stage requires them"), []


def access_monitored(doc: Doc) -> Result:
    if not doc["live"]["available"]:
        return NOT_EVIDENCED, f"the live gateway could not be read: {doc['live']['reason']}", []
    if not doc["gateway"]["deny_logging"]:
        return FAIL, "deny logging is off (gateway.yaml deny_logging.enabled)", []
    return PASS, "per-peer handshakes and transfer, per-grant accepted and per-partner denied counters read live; denies logged", []


def sessions_legitimate(doc: Doc) -> Result:
    if not doc["gateway"]["session_front"]:
        return NOT_EVIDENCED, "the gateway has no smart-card session front", []
    if not doc["live"]["available"]:
        return NOT_EVIDENCED, f"the live gateway could not be read: {doc['live']['reason']}", []
    wrong = [f"{p['kind']}: {p['source']} ({p['partner']}): {p['detail']}" for p in doc["sessions"]["problems"]]
    if wrong:
        return FAIL, f"{len(wrong)} session(s) that should not exist", wrong
    count = sum(len(p["sessions"]) for p in doc["partners"])
    return PASS, f"{count} open session(s), each opened by a logged authentication", []


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    run: Callable[[Doc], Result]


CHECKS = [Check(*c) for c in (
    ("default-deny", "Deny by default, allow by grant", default_deny),
    ("least-privilege", "Least privilege: grants within stage ceilings, narrow, not overlapping", least_privilege),
    ("grants-justified", "Every grant justified and approved", grants_justified),
    ("access-time-limited", "Access is limited in time", access_time_limited),
    ("reviews-current", "Partner profiles reviewed on time", reviews_current),
    ("agreements-in-force", "Agreements in force", agreements_in_force),
    ("lint-clean", "No policy lint errors", lint_clean),
    ("policy-tests-pass", "Policy tests pass", policy_tests_pass),
    ("live-matches-approved", "The live gateway matches the approved configuration", live_matches_approved),
    ("changes-recorded", "Changes recorded with who and which revision", changes_recorded),
    ("strong-authentication", "Strong authentication where the stage requires it", strong_authentication),
    ("certificate-trust-valid", "Partner certificate authorities valid and strong", certificate_trust_valid),
    ("encryption-in-transit", "Encryption in transit", encryption_in_transit),
    ("access-monitored", "Access monitored", access_monitored),
    ("sessions-legitimate", "Smart-card sessions legitimate", sessions_legitimate),
)]
BY_ID = {c.id: c for c in CHECKS}


class Control(Strict):
    framework: str
    id: Text
    title: Text
    checks: list[Literal[tuple(BY_ID)]] = Field(min_length=1)  # type: ignore[valid-type]


class ControlFile(Strict):
    version: Literal[1]
    frameworks: dict[str, Text] = Field(min_length=1)
    controls: list[Control] = Field(min_length=1)


def load_controls(path: Path | None) -> ControlFile:
    """The control mapping (the packaged one by default); errors name file and line."""
    path = path or DEFAULT_CONTROLS
    doc = read_document(path, str(path))
    try:
        model = ControlFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ProfileErrors(_translate(exc, doc, ControlFile)) from None
    unknown = [(i, c.framework) for i, c in enumerate(model.controls) if c.framework not in model.frameworks]
    if unknown:
        raise ProfileErrors([doc.error(("controls", i, "framework"), f"framework {name!r} is not among frameworks: "
                                       f"{sorted(model.frameworks)}") for i, name in unknown])
    return model


def control_status(statuses: dict[str, str]) -> tuple[str, list[str]]:
    """A control's status from the statuses of the checks it cites, and the cited checks not evidenced.

    Fail when one check fails; pass only when every check passes; otherwise not evidenced, however
    many of the others pass: a control is never shown as met on part of its evidence."""
    missing = [c for c, s in statuses.items() if s == NOT_EVIDENCED]
    if FAIL in statuses.values():
        return FAIL, missing
    return (NOT_EVIDENCED if missing else PASS), missing


def evaluate(doc: Doc, controls: ControlFile) -> Doc:
    """Add `checks`, `controls` and `summary` to the document; return it."""
    results = {c.id: c.run(doc) for c in CHECKS}
    cited: dict[str, list[str]] = {c.id: [] for c in CHECKS}
    rows = []
    for control in controls.controls:
        label = f"{controls.frameworks[control.framework]} {control.id}"
        status, missing = control_status({c: results[c][0] for c in control.checks})
        rows.append({"framework": control.framework, "framework_title": controls.frameworks[control.framework],
                     "id": control.id, "title": control.title, "status": status, "checks": list(control.checks),
                     "not_evidenced": missing})
        for c in control.checks:
            cited[c].append(label)
    doc["checks"] = [{"id": c.id, "title": c.title, "status": results[c.id][0], "detail": results[c.id][1],
                      "evidence": results[c.id][2][:200], "evidence_total": len(results[c.id][2]), "controls": cited[c.id]}
                     for c in CHECKS]
    doc["controls"] = rows
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in (PASS, FAIL, NOT_EVIDENCED)}
    doc["summary"] = {"controls": counts, "status": FAIL if counts[FAIL] else PASS,
                      "checks": {s: sum(1 for c in doc["checks"] if c["status"] == s) for s in (PASS, FAIL, NOT_EVIDENCED)}}
    if doc["scope"]["partner"] is not None:
        doc.update(withhold_paths(doc))  # after the checks, whose details quote findings and host errors
    return doc
