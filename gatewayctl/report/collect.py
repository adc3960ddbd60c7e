"""Collect the evidence into one JSON-able document (format gatewayctl-report/1).

Everything the report shows comes from here; the checks and every output format read only this
document, so a partner report (`scope.partner`) is filtered once, here, before anything else."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from gatewayctl import __version__
from gatewayctl.auth.sessions import live_sessions, problems
from gatewayctl.certs.requirements import describe, effective
from gatewayctl.compile.ir import CompiledPolicy, DenyEntry, SetElement
from gatewayctl.drift.check import STATUS, DriftReport
from gatewayctl.host.base import LiveState
from gatewayctl.lint.engine import LintResult
from gatewayctl.pipeline import Compiled
from gatewayctl.policy.assertions import Outcome

FORMAT = "gatewayctl-report/1"


@dataclass
class Live:
    """What was read from the host, or why nothing could be."""

    state: LiveState | None
    drift: DriftReport | None
    reason: str | None
    journal: list[dict[str, Any]]
    applied: dict[str, Any] | None
    decisions: list[dict[str, Any]]
    revocations: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # standing on the host (revoke)


def _stamp(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def collect(compiled: Compiled, lint: LintResult, tests: list[Outcome], live: Live, now: dt.datetime,
            revision: dict[str, Any], partner: str | None = None, warning_days: int | None = None) -> dict[str, Any]:
    policy = compiled.policy
    gw = compiled.estate.gateway.model
    services = compiled.estate.services.model.services
    warning = warning_days if warning_days is not None else gw.lint.expiry_warning_days
    models = {p.model.id: p.model for p in compiled.estate.partners}
    counters = _counters(policy, live.state)
    handshakes = _peers_live(live.state)
    sessions = live_sessions(live.state.nft, policy, live.decisions, now) if live.state and live.state.nft else []
    partners: list[dict[str, Any]] = []
    for p in policy.partners:
        if partner is not None and p.id != partner:
            continue
        model = models[p.id]
        stage = gw.stages[model.stage]
        reqs = model.certificates
        gated = p.certificates is not None and p.certificates.session_seconds is not None
        granted_classes = sorted({g.classification for g in p.grants}, key=policy.classifications.index)
        partners.append({
            "id": p.id, "name": p.name, "stage": p.stage,
            "agreement": {"reference": model.agreement.reference, "expires": model.agreement.expires.isoformat(),
                          "in_force": model.agreement.expires >= now.date()},
            "review_by": model.review_by.isoformat() if model.review_by else None,
            "contacts": [{"name": c.name, "email": c.email, "role": c.role} for c in model.contacts],
            "peers": [{"name": peer.name, "addresses": [str(a) for a in peer.tunnel_addresses],
                       "networks": [str(n) for n in peer.networks], "public_key": peer.public_key,
                       "preshared_key": peer.preshared_key_file is not None,
                       "live": handshakes.get(peer.public_key)} for peer in p.peers],
            "grants": [_grant(g, counters, now, warning, gated) for g in p.grants]
            + [{"id": f"{p.id}/{x.service}", "service": x.service, "classification": services[x.service].classification,
                "protocol": x.protocol, "ports": [str(r) for r in model.grants[x.index].ports or services[x.service].ports],
                "destinations": [str(d) for d in x.destinations],
                "justification": model.grants[x.index].justification, "approved_by": model.grants[x.index].approved_by,
                "expires": _iso(model.grants[x.index].expires),
                "ends_at": None, "in_force": False, "reason": x.reason, "expiring": False, "counters": None, "gated": False}
               for x in p.excluded],
            "classifications": granted_classes,
            "smartcard_needed": sorted(set(stage.smartcard_for) & set(granted_classes)),
            "preshared_key_needed": sorted(set(stage.preshared_key_for) & set(granted_classes)),
            "accepted": counters["partners"].get(p.id) if live.state else None,
            "denied": counters["denied"].get(p.id, {"packets": 0, "bytes": 0}) if live.state else None,
            "certificates": None if reqs is None else {
                "requirements": describe(effective(reqs), p.id, reqs.issuing_cas)[1:],
                "preset": reqs.preset, "revocation": reqs.revocation,
                "session_seconds": p.certificates.session_seconds if p.certificates else None,
                "allowed_users": len(reqs.identity.allowed) if reqs.identity else None},
            "sessions": [s.to_json() for s in sessions if s.partner == p.id],
        })
        _add_must_present(partners[-1])
        if partner is not None:
            _name_cas_by_subject(partners[-1], compiled)
    findings = [_finding(f) for f in lint.findings]
    others = _other_partner_tokens(compiled, partner) if partner is not None else []
    withheld = 0
    if partner is not None:
        mine = [f for f in findings if f["partner"] == partner]
        findings = [f for f in mine if not _mentions(f["message"], others)]
        withheld = len(mine) - len(findings)  # findings that also name another partner are not shown to this one
        for f in findings:
            f["path"] = ""  # a file of the gateway's profiles: not the partner's business (report/withhold.py)
    drift: dict[str, Any] = {"available": live.drift is not None, "reason": live.reason}
    if live.drift is not None:
        drift_findings = [f.__dict__ for f in live.drift.findings if partner is None or (
            f.partner == partner and not _mentions(f"{f.subject} {f.detail}", others))]
        status = live.drift.status if partner is None else (1 if any(f["source"] == "host" for f in drift_findings)
                                                             else 3 if drift_findings else 0)
        drift.update(status=STATUS[status], findings=drift_findings,
                     applied_at=(live.applied or {}).get("applied_at"))
    session_problems = [p.__dict__ for p in problems(sessions, policy) if partner is None or p.partner == partner]
    return {
        "format": FORMAT, "generator": f"gatewayctl {__version__}", "generated_at": _stamp(now),
        "gateway": {"name": gw.name, "endpoint": gw.wireguard.endpoint, "interface": gw.wireguard.interface,
                    "table": policy.table.name, "owner": gw.owner, "classifications": list(policy.classifications),
                    "deny_logging": gw.deny_logging.enabled, "session_front": policy.auth is not None},
        "scope": {"partner": partner}, "profiles": revision,
        "expiry_warning_days": warning,
        "services": {name: {"classification": s.classification, "protocol": s.protocol,
                            "ports": [str(x) for x in s.ports], "addresses": [str(a) for a in s.addresses]}
                     for name, s in services.items()
                     if partner is None or any(g["service"] == name for p in partners for g in p["grants"])},
        "partners": partners,
        "lint": {"findings": [f for f in findings if not f["suppressed"]], "suppressed": [f for f in findings if f["suppressed"]],
                 "withheld": withheld},
        "policy_tests": [{"name": o.test.test.name, "where": o.test.where if partner is None else "",
                          "partner": o.test.test.partner,
                          "passed": o.passed, "detail": o.detail}
                         for o in tests if partner is None or o.test.test.partner == partner],
        "live": {"available": live.state is not None, "reason": live.reason},
        "drift": drift,
        "sessions": {"problems": session_problems},
        # the journal names people and revisions of the whole gateway: not part of a partner's report
        "journal": live.journal if partner is None else None,
        "revocations": [r for r in live.revocations if partner is None or r["partner"] == partner],
    }


def _other_partner_tokens(compiled: Compiled, partner: str) -> list[str]:
    """Names, addresses, keys and contacts of every partner but `partner`: none may appear in its report."""
    tokens: set[str] = set()
    for loaded in compiled.estate.partners:
        m = loaded.model
        if m.id == partner:
            continue
        tokens.update({m.id, m.name, m.agreement.reference, *(c.email for c in m.contacts), *(c.name for c in m.contacts)})
        for peer in m.peers:
            tokens.add(peer.public_key)
            for net in (*peer.addresses, *peer.networks):
                tokens.update({str(net), str(net.network_address)})
    return sorted(tokens)


def _add_must_present(p: dict[str, Any]) -> None:
    """Set each grant's `must_present`: what the partner presents to use it (key, preshared key, smart card)."""
    peers = p["peers"]
    with_psk = [peer["name"] for peer in peers if peer["preshared_key"]]
    session = (p["certificates"] or {}).get("session_seconds")
    for g in p["grants"]:
        need = [f"WireGuard key of peer {', '.join(peer['name'] for peer in peers)}"]
        if g["classification"] in p["preshared_key_needed"] or (with_psk and len(with_psk) == len(peers)):
            need.append("preshared key")
        elif with_psk:
            need.append(f"preshared key (peer {', '.join(with_psk)})")
        if session:
            need.append(f"smart card (a session at the gateway, at most {session} s)")
        elif g["classification"] in p["smartcard_needed"]:
            need.append("smart card (its stage requires one; not yet enforced at the gateway)")
        g["must_present"] = need


def _name_cas_by_subject(p: dict[str, Any], compiled: Compiled) -> None:
    """In a partner's report, name its issuing CAs by subject, not by their file on the gateway."""
    certs = p["certificates"]
    if certs is None:
        return
    lines = certs["requirements"]
    for path, chain in compiled.cas.items():
        subject = "; ".join(c.subject.rfc4514_string() for c in chain) or "(no certificate)"
        lines = [line.replace(path, subject) for line in lines]
    certs["requirements"] = lines


def _mentions(text: str, tokens: list[str]) -> bool:
    return any(t in text for t in tokens)


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _grant(g: Any, counters: dict[str, Any], now: dt.datetime, warning: int, gated: bool) -> dict[str, Any]:
    ends = g.ends_at
    return {"id": g.id, "service": g.service, "classification": g.classification, "protocol": g.protocol,
            "ports": [str(r) for r in g.ports], "destinations": [str(d) for d in g.destinations],
            "justification": g.justification, "approved_by": g.approved_by,
            "expires": g.expires.isoformat() if g.expires else None, "ends_at": _stamp(ends), "in_force": True,
            "reason": None, "expiring": ends is not None and ends - now <= dt.timedelta(days=warning),
            "counters": counters["grants"].get(g.id), "gated": gated}


def _finding(f: Any) -> dict[str, Any]:
    partner = f.obj[1] if len(f.obj) > 1 and f.obj[0] in ("partner", "grant", "peer") else None
    return {"path": f.path, "line": f.line, "code": f.code, "name": f.name, "severity": f.severity, "message": f.message,
            "hint": f.hint, "partner": partner, "suppressed": f.suppressed, "suppression_reason": f.suppression_reason}


def _peers_live(state: LiveState | None) -> dict[str, dict[str, int]]:
    if state is None or state.wg is None:
        return {}
    return {k: {"last_handshake": p.last_handshake, "rx_bytes": p.rx_bytes, "tx_bytes": p.tx_bytes}
            for k, p in state.wg.peers.items()}


def _counters(policy: CompiledPolicy, state: LiveState | None) -> dict[str, Any]:
    """Accepted packets and bytes per grant and per partner (from per-element counters), denied per partner."""
    grants: dict[str, dict[str, int]] = {}
    partners: dict[str, dict[str, int]] = {}
    denied: dict[str, dict[str, int]] = {}
    if state is None or state.nft is None:
        return {"grants": grants, "partners": partners, "denied": denied}
    owner = {g.id: g.partner for p in policy.partners for g in p.grants}
    for name, elements in policy.table.by_set().items():
        live = state.nft.sets.get(name)
        if live is None:
            continue
        for e in elements:
            packets, octets = live.counters.get(e.key, (0, 0))
            if isinstance(e, SetElement):
                for grant in e.grants:
                    _add(grants, grant, packets, octets)
                if e.grants:
                    _add(partners, owner[e.grants[0]], packets, octets)
            elif isinstance(e, DenyEntry):
                _add(denied, e.partner, packets, octets)
    for g in owner:
        grants.setdefault(g, {"packets": 0, "bytes": 0})
    for p in policy.partners:
        partners.setdefault(p.id, {"packets": 0, "bytes": 0})
    return {"grants": grants, "partners": partners, "denied": denied}


def _add(into: dict[str, dict[str, int]], key: str, packets: int, octets: int) -> None:
    slot = into.setdefault(key, {"packets": 0, "bytes": 0})
    slot["packets"] += packets
    slot["bytes"] += octets
