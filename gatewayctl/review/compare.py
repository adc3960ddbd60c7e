"""The access diff between two compiled policies: keyed on meaning, never on lines.

Flows are keyed on (partner, destination, protocol) with their ports as the value, so moving a
grant, renaming a file or reformatting YAML changes nothing here. Beside the flows: every peer
setting that bears on access, each partner's effective certificate requirements and the gateway's
own settings (review/settings.py), each loosening marked as a risk."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from gatewayctl.compile.ir import CompiledPolicy, GrantIR, PartnerIR, PeerIR
from gatewayctl.loader.profiles import Estate
from gatewayctl.model.partner import PartnerFile
from gatewayctl.ports import merge
from gatewayctl.review.change import GATEWAY, Change
from gatewayctl.review.settings import certificate_changes, certificate_values, gateway_changes

__all__ = ["GATEWAY", "Change", "access_diff", "sensitive"]


FlowKey = tuple[str, str, str]  # partner, destination, protocol


def sensitive(policy: CompiledPolicy) -> set[str]:
    """The upper half of the gateway's ordered classifications (confidential and restricted by default):
    new access to those needs a security reviewer."""
    order = policy.classifications
    return set(order[len(order) // 2:])


def _flows(policy: CompiledPolicy) -> dict[FlowKey, tuple[list[tuple[int, int]], set[str], str]]:
    """(partner, destination, protocol) -> (merged port ranges, grant ids, highest classification)."""
    rank = {level: i for i, level in enumerate(policy.classifications)}
    levels: dict[FlowKey, str] = {}
    flows: dict[FlowKey, tuple[list[tuple[int, int]], set[str], str]] = {}
    for partner in policy.partners:
        for grant in partner.grants:
            for dst in grant.destinations:
                key = (partner.id, str(dst), grant.protocol)
                ports, grants, _level = flows.get(key, ([], set(), ""))
                ports = merge(ports + [(p.first, p.last) for p in grant.ports])
                levels[key] = max(levels.get(key, grant.classification), grant.classification, key=lambda c: rank.get(c, -1))
                flows[key] = (ports, grants | {grant.id}, levels[key])
    return flows


def _ports(ranges: list[tuple[int, int]]) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges) or "echo"


def _covers(outer: list[tuple[int, int]], inner: list[tuple[int, int]]) -> bool:
    return all(any(a <= c and d <= b for a, b in outer) for c, d in inner)


def access_diff(old: CompiledPolicy, new: CompiledPolicy, old_estate: Estate, new_estate: Estate) -> list[Change]:
    """Every difference a reviewer should see, sorted; the estates are the validated profiles the
    policies were compiled from (for what the compiled policy does not keep, such as presets)."""
    changes: list[Change] = []
    changes += _flow_changes(old, new)
    changes += _partner_changes(old, new, _models(old_estate), _models(new_estate))
    changes += gateway_changes(old_estate.gateway.model, new_estate.gateway.model)
    changes += suppression_changes(old_estate, new_estate)
    return sorted(set(changes))


def _models(estate: Estate) -> dict[str, PartnerFile]:
    return {loaded.model.id: loaded.model for loaded in estate.partners}


def _flow_changes(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    before, after = _flows(old), _flows(new)
    watched = sensitive(new)
    grants = {g.id: g for p in new.partners for g in p.grants}
    changes = []
    for key in sorted(set(before) | set(after)):
        partner, dst, proto = key
        if key in before and key in after:
            changes += _port_change(key, before[key], after[key])
            changes += _level_change(key, before[key][2], after[key][2], watched, new.classifications)
            continue
        if key in after:
            ports, ids, level = after[key]
            wider = _enlarged(key, before)
            kind, detail = ("flow-widened", f"{wider} enlarged to {dst} {proto}/{_ports(ports)}") if wider else \
                ("flow-added", f"{dst} {proto}/{_ports(ports)} via {_grant_notes(ids, grants)}")
            risk = f"new access to {level} data" if level in watched else ("access widened" if wider else "")
            changes.append(Change(partner, kind, f"{dst} {proto}", f"{detail} [{level}]", risk))
        else:
            ports, ids, level = before[key]
            if _enlarged_to(key, after):
                continue  # reported as widened from the new side
            changes.append(Change(partner, "flow-removed", f"{dst} {proto}", f"{dst} {proto}/{_ports(ports)} "
                                  f"(was {', '.join(sorted(ids))}) [{level}]"))
    return changes


def _grant_notes(ids: set[str], grants: Mapping[str, GrantIR]) -> str:
    """Each grant behind a new flow with who approved it and why, as the reviewer must judge them."""
    notes = []
    for gid in sorted(ids):
        grant = grants.get(gid)
        approved = f"approved by {grant.approved_by}" if grant and grant.approved_by else "no approver"
        why = f"justification: {grant.justification}" if grant and grant.justification else "no justification"
        notes.append(f"{gid} ({approved}; {why})")
    return ", ".join(notes)


def _level_change(key: FlowKey, old: str, new: str, watched: set[str], order: tuple[str, ...]) -> list[Change]:
    """A flow whose data is classified differently: a lower class drops the requirements tied to the
    old one (preshared keys, smart cards, stage ceilings); a higher one may be sensitive data now."""
    if old == new:
        return []
    rank = {level: i for i, level in enumerate(order)}
    lowered = rank.get(new, -1) < rank.get(old, -1)
    risk = f"classification lowered from {old}" if lowered else (f"now {new} data" if new in watched else "")
    return [Change(key[0], "flow-reclassified", f"{key[1]} {key[2]}", f"{old} -> {new}", risk)]


def _port_change(key: FlowKey, old: tuple[list[tuple[int, int]], set[str], str],
                 new: tuple[list[tuple[int, int]], set[str], str]) -> list[Change]:
    partner, dst, proto = key
    if old[0] == new[0]:
        return []
    if _covers(new[0], old[0]):
        return [Change(partner, "flow-widened", f"{dst} {proto}", f"ports {_ports(old[0])} -> {_ports(new[0])}",
                       "access widened")]
    if _covers(old[0], new[0]):
        return [Change(partner, "flow-narrowed", f"{dst} {proto}", f"ports {_ports(old[0])} -> {_ports(new[0])}")]
    return [Change(partner, "flow-changed", f"{dst} {proto}", f"ports {_ports(old[0])} -> {_ports(new[0])}",
                   "access widened")]


def _enlarged(key: FlowKey, before: Mapping[FlowKey, object]) -> str | None:
    """An old destination of the same partner and protocol that lies inside this new, wider one."""
    partner, dst, proto = key
    net = ipaddress.ip_network(dst)
    for other in before:
        if other[0] == partner and other[2] == proto and other[1] != dst:
            old = ipaddress.ip_network(other[1])
            if old.version == net.version and old.subnet_of(net):  # type: ignore[arg-type]
                return other[1]
    return None


def _enlarged_to(key: FlowKey, after: Mapping[FlowKey, object]) -> bool:
    partner, dst, proto = key
    net = ipaddress.ip_network(dst)
    return any(o[0] == partner and o[2] == proto and o[1] != dst and net.version == ipaddress.ip_network(o[1]).version
               and net.subnet_of(ipaddress.ip_network(o[1])) for o in after)  # type: ignore[arg-type]


def _partner_changes(old: CompiledPolicy, new: CompiledPolicy, old_models: Mapping[str, PartnerFile],
                     new_models: Mapping[str, PartnerFile]) -> list[Change]:
    changes = []
    before = {p.id: p for p in old.partners}
    after = {p.id: p for p in new.partners}
    for pid in sorted(set(after) - set(before)):
        added = after[pid]
        changes.append(Change(pid, "partner-added", pid, f"{added.name}, stage {added.stage}, agreement "
                              f"{added.agreement_reference} until {added.agreement_expires}, {len(added.peers)} peer(s)"))
        changes += [Change(pid, "peer-added", peer.name, _peer_summary(peer)) for peer in added.peers]
    for pid in sorted(set(before) - set(after)):
        changes.append(Change(pid, "partner-removed", pid, f"{before[pid].name}"))
    stages = list(new.stages)
    for pid in sorted(set(before) & set(after)):
        changes += _same_partner(before[pid], after[pid], stages)
        changes += _cert_changes(before[pid], after[pid], old_models.get(pid), new_models.get(pid))
    return changes


def _same_partner(old: PartnerIR, new: PartnerIR, stages: list[str]) -> list[Change]:
    pid = old.id
    changes = []
    if old.name != new.name:
        changes.append(Change(pid, "partner-renamed", pid, f"{old.name} -> {new.name}"))
    if old.stage != new.stage:
        raised = stages.index(new.stage) > stages.index(old.stage) if old.stage in stages and new.stage in stages else True
        changes.append(Change(pid, "stage-changed", pid, f"{old.stage} -> {new.stage}", "stage raised" if raised else ""))
    if (old.agreement_reference, old.agreement_expires) != (new.agreement_reference, new.agreement_expires):
        pushed = new.agreement_expires > old.agreement_expires
        changes.append(Change(pid, "agreement-changed", pid, f"{old.agreement_reference} until {old.agreement_expires} -> "
                              f"{new.agreement_reference} until {new.agreement_expires}", "expiry pushed out" if pushed else ""))
    changes += _peer_changes(old, new)
    changes += _expiry_changes(old, new)
    return changes


def _peer_summary(peer: PeerIR) -> str:
    """Everything about a new peer that bears on access: its addresses, LANs, endpoint and keys."""
    lans = ", ".join(str(n) for n in peer.networks) or "none"
    return (f"addresses {', '.join(str(a) for a in peer.tunnel_addresses)}; LANs {lans}; endpoint {peer.endpoint or 'roaming'}; "
            f"keepalive {peer.keepalive or 'off'}; preshared key {'yes' if peer.preshared_key_file else 'none'}")


def _peer_changes(old: PartnerIR, new: PartnerIR) -> list[Change]:
    changes = []
    before = {p.name: p for p in old.peers}
    after = {p.name: p for p in new.peers}
    for name in sorted(set(after) - set(before)):
        changes.append(Change(old.id, "peer-added", name, _peer_summary(after[name]), "new peer"))
    for name in sorted(set(before) - set(after)):
        changes.append(Change(old.id, "peer-removed", name, ""))
    for name in sorted(set(before) & set(after)):
        changes += _same_peer(old.id, before[name], after[name])
    return changes


def _same_peer(pid: str, a: PeerIR, b: PeerIR) -> list[Change]:
    name = a.name
    changes = []
    if a.public_key != b.public_key:
        changes.append(Change(pid, "key-rotated", name, "the peer's public key changed: whoever holds the new key gets "
                              "this peer's access (check it came from the partner)", "peer key replaced"))
    changes += _address_changes(pid, name, "peer-addresses", a.tunnel_addresses, b.tunnel_addresses)
    changes += _address_changes(pid, name, "peer-networks", a.networks, b.networks)
    if a.preshared_key_file != b.preshared_key_file:
        if b.preshared_key_file is None:
            changes.append(Change(pid, "preshared-key-removed", name, f"{a.preshared_key_file} -> none (loosened)",
                                  "preshared key removed"))
        else:
            verdict = "tightened" if a.preshared_key_file is None else "changed"
            changes.append(Change(pid, "preshared-key-changed", name,
                                  f"{a.preshared_key_file or 'none'} -> {b.preshared_key_file} ({verdict})"))
    changes += _peer_setting(pid, name, "endpoint", a.endpoint or "roaming", b.endpoint or "roaming")
    changes += _peer_setting(pid, name, "keepalive", a.keepalive or "off", b.keepalive or "off")
    return changes


def _address_changes(pid: str, name: str, kind: str, old: tuple[Any, ...], new: tuple[Any, ...]) -> list[Change]:
    grown = sorted(str(n) for n in set(new) - set(old))
    shrunk = sorted(str(n) for n in set(old) - set(new))
    what = "addresses" if kind == "peer-addresses" else "LANs"
    return ([Change(pid, f"{kind}-added", name, ", ".join(grown), f"access widened: new {what}")] if grown else []) + \
        ([Change(pid, f"{kind}-removed", name, ", ".join(shrunk))] if shrunk else [])


def _peer_setting(pid: str, name: str, what: str, old: object, new: object) -> list[Change]:
    # neither widens what the peer may reach (WireGuard authenticates by key), but the reviewer sees both
    return [] if old == new else [Change(pid, f"peer-{what}-changed", name, f"{old} -> {new} (changed)")]


def _expiry_changes(old: PartnerIR, new: PartnerIR) -> list[Change]:
    changes = []
    before: dict[str, GrantIR] = {g.id: g for g in old.grants}
    for grant in new.grants:
        was = before.get(grant.id)
        if was is None or was.expires == grant.expires:
            continue
        if grant.expires is None:
            changes.append(Change(old.id, "expiry-removed", grant.id, f"{was.expires} -> no expiry", "expiry removed"))
        elif was.expires is None or grant.expires > was.expires:
            changes.append(Change(old.id, "expiry-moved", grant.id, f"{was.expires or 'none'} -> {grant.expires}",
                                  "expiry pushed out"))
        else:
            changes.append(Change(old.id, "expiry-moved", grant.id, f"{was.expires} -> {grant.expires}"))
    return changes


def _cert_changes(old: PartnerIR, new: PartnerIR, old_model: PartnerFile | None,
                  new_model: PartnerFile | None) -> list[Change]:
    """The partner's effective certificate requirements compared one by one (presets resolved)."""
    a, b = old.certificates, new.certificates
    if a is None and b is None:
        return []
    if a is None:
        return [Change(old.id, "certificates-added", old.id,
                       ("smart card required" if b and b.smartcard_required else "certificates required") + " (tightened)")]
    if b is None:
        return [Change(old.id, "certificates-removed", old.id, "no certificate requirement any more (loosened)",
                       "certificate requirement removed")]
    old_reqs = old_model.certificates if old_model else None
    new_reqs = new_model.certificates if new_model else None
    if old_reqs is None or new_reqs is None:  # cannot happen (compiled from these models); fail closed if it does
        return [Change(old.id, "certificates-changed", old.id, "requirements could not be compared", "unknown change")]
    return certificate_changes(old.id, certificate_values(old_reqs, a), certificate_values(new_reqs, b))


def suppression_changes(old_estate: Estate, new_estate: Estate) -> list[Change]:
    """Every suppression or gateway exception added, changed or extended, each a risk: an exception
    decides that a finding does not count. Removed ones, and ones that only end sooner, are not."""
    from gatewayctl.lint.ledger import ledger  # imported here: lint's rule modules are only needed by diff

    before, after = ledger(old_estate), ledger(new_estate)
    changes = []
    for key in sorted(set(before) | set(after)):
        scope, where, rule = key
        subject = f"{rule} {where}"
        if key not in before:
            reason, expires, approver = after[key]
            by = f", approved by {approver}" if approver else ""
            changes.append(Change(scope, "suppression-added", subject, f"until {expires}{by}: {reason}", "exception added"))
        elif key not in after:
            changes.append(Change(scope, "suppression-removed", subject, f"was until {before[key][1]}"))
        elif before[key] != after[key]:
            (r0, e0, a0), (r1, e1, a1) = before[key], after[key]
            if (r0, a0) == (r1, a1) and e1 < e0:
                changes.append(Change(scope, "suppression-shortened", subject, f"until {e0} -> {e1}"))
                continue
            kind, risk = ("suppression-extended", "exception extended") if e1 > e0 else ("suppression-changed", "exception changed")
            detail = "; ".join(f"{what} {a!r} -> {b!r}" for what, a, b in
                               (("until", e0, e1), ("reason", r0, r1), ("approved by", a0, a1)) if a != b)
            changes.append(Change(scope, kind, subject, detail, risk))
    limit_old, limit_new = old_estate.gateway.model.lint.max_exception_days, new_estate.gateway.model.lint.max_exception_days
    if limit_new > limit_old:
        changes.append(Change(GATEWAY, "gateway-changed", "lint.max_exception_days", f"{limit_old} -> {limit_new}",
                              "exceptions may run longer"))
    return changes
