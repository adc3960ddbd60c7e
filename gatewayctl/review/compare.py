"""The access diff between two compiled policies: keyed on meaning, never on lines.

Flows are keyed on (partner, destination, protocol) with their ports as the value, so moving a
grant, renaming a file or reformatting YAML changes nothing here."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from gatewayctl.compile.ir import CompiledPolicy, GrantIR, PartnerIR
from gatewayctl.ports import merge


@dataclass(frozen=True, order=True)
class Change:
    """One difference a reviewer should see; `risk` says why a security reviewer must look."""

    partner: str
    kind: str
    subject: str
    detail: str
    risk: str = ""


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


def access_diff(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    changes: list[Change] = []
    changes += _flow_changes(old, new)
    changes += _partner_changes(old, new)
    return sorted(set(changes))


def _flow_changes(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    before, after = _flows(old), _flows(new)
    watched = sensitive(new)
    changes = []
    for key in sorted(set(before) | set(after)):
        partner, dst, proto = key
        if key in before and key in after:
            changes += _port_change(key, before[key], after[key])
            continue
        if key in after:
            ports, grants, level = after[key]
            wider = _enlarged(key, before)
            kind, detail = ("flow-widened", f"{wider} enlarged to {dst} {proto}/{_ports(ports)}") if wider else \
                ("flow-added", f"{dst} {proto}/{_ports(ports)} via {', '.join(sorted(grants))}")
            risk = f"new access to {level} data" if level in watched else ("access widened" if wider else "")
            changes.append(Change(partner, kind, f"{dst} {proto}", f"{detail} [{level}]", risk))
        else:
            ports, grants, level = before[key]
            if _enlarged_to(key, after):
                continue  # reported as widened from the new side
            changes.append(Change(partner, "flow-removed", f"{dst} {proto}", f"{dst} {proto}/{_ports(ports)} "
                                  f"(was {', '.join(sorted(grants))}) [{level}]"))
    return changes


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


def _partner_changes(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    changes = []
    before = {p.id: p for p in old.partners}
    after = {p.id: p for p in new.partners}
    for pid in sorted(set(after) - set(before)):
        changes.append(Change(pid, "partner-added", pid, f"{after[pid].name}, stage {after[pid].stage}"))
    for pid in sorted(set(before) - set(after)):
        changes.append(Change(pid, "partner-removed", pid, f"{before[pid].name}"))
    stages = list(new.stages)
    for pid in sorted(set(before) & set(after)):
        changes += _same_partner(before[pid], after[pid], stages)
    return changes


def _same_partner(old: PartnerIR, new: PartnerIR, stages: list[str]) -> list[Change]:
    pid = old.id
    changes = []
    if old.stage != new.stage:
        raised = stages.index(new.stage) > stages.index(old.stage) if old.stage in stages and new.stage in stages else True
        changes.append(Change(pid, "stage-changed", pid, f"{old.stage} -> {new.stage}", "stage raised" if raised else ""))
    if (old.agreement_reference, old.agreement_expires) != (new.agreement_reference, new.agreement_expires):
        pushed = new.agreement_expires > old.agreement_expires
        changes.append(Change(pid, "agreement-changed", pid, f"{old.agreement_reference} until {old.agreement_expires} -> "
                              f"{new.agreement_reference} until {new.agreement_expires}", "expiry pushed out" if pushed else ""))
    changes += _peer_changes(old, new)
    changes += _expiry_changes(old, new)
    changes += _cert_changes(old, new)
    return changes


def _peer_changes(old: PartnerIR, new: PartnerIR) -> list[Change]:
    changes = []
    before = {p.name: p for p in old.peers}
    after = {p.name: p for p in new.peers}
    for name in sorted(set(after) - set(before)):
        changes.append(Change(old.id, "peer-added", name, f"addresses {', '.join(str(a) for a in after[name].allowed_ips)}",
                              "new peer"))
    for name in sorted(set(before) - set(after)):
        changes.append(Change(old.id, "peer-removed", name, ""))
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if a.public_key != b.public_key:
            changes.append(Change(old.id, "key-rotated", name, "the peer's public key changed"))
        if set(b.allowed_ips) - set(a.allowed_ips):
            grown = ", ".join(sorted(str(n) for n in set(b.allowed_ips) - set(a.allowed_ips)))
            changes.append(Change(old.id, "peer-addresses-added", name, grown, "access widened"))
        if set(a.allowed_ips) - set(b.allowed_ips):
            shrunk = ", ".join(sorted(str(n) for n in set(a.allowed_ips) - set(b.allowed_ips)))
            changes.append(Change(old.id, "peer-addresses-removed", name, shrunk))
    return changes


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


def _cert_changes(old: PartnerIR, new: PartnerIR) -> list[Change]:
    a, b = old.certificates, new.certificates
    if a == b:
        return []
    if a is None and b is not None:
        return [Change(old.id, "certificates-added", old.id, "smart card required" if b.smartcard_required else "certificates required")]
    if b is None and a is not None:
        return [Change(old.id, "certificates-removed", old.id, "no certificate requirement any more",
                       "smart-card requirement removed")]
    assert a is not None and b is not None
    weaker = []
    if a.smartcard_required and not b.smartcard_required:
        weaker.append("smart card no longer required")
    if set(a.policy_oids) - set(b.policy_oids):
        weaker.append(f"policy OIDs dropped: {', '.join(sorted(set(a.policy_oids) - set(b.policy_oids)))}")
    if set(a.ekus) - set(b.ekus):
        weaker.append(f"EKUs dropped: {', '.join(sorted(set(a.ekus) - set(b.ekus)))}")
    if b.min_rsa_bits < a.min_rsa_bits:
        weaker.append(f"RSA minimum {a.min_rsa_bits} -> {b.min_rsa_bits}")
    if set(b.ec_curves) - set(a.ec_curves):
        weaker.append(f"curves added: {', '.join(sorted(set(b.ec_curves) - set(a.ec_curves)))}")
    if a.ca_bundle_pem != b.ca_bundle_pem:
        weaker.append("issuing CAs changed")
    detail = "; ".join(weaker) or "requirements tightened or reworded"
    return [Change(old.id, "certificates-changed", old.id, detail, "smart-card requirement weakened or changed" if weaker else "")]
