"""Compare the live host with the last applied state and with the current profiles, and tell them apart.

Exit status: 0 in sync; 1 the host was changed outside gatewayctl; 3 the profiles changed but were
not applied. Counters, handshakes and expiry timers moving are not drift.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatewayctl.auth.sessions import SessionProblem
from gatewayctl.drift import bypass
from gatewayctl.host.base import LinkState, LiveState
from gatewayctl.host.nftstate import NftTableState
from gatewayctl.host.wgtypes import DeviceState, PeerState
from gatewayctl.plan.diff import Change, diff
from gatewayctl.plan.spec import GatewaySpec, spec_from_json

IN_SYNC, HOST_CHANGED, NOT_APPLIED = 0, 1, 3
STATUS = {IN_SYNC: "in-sync", HOST_CHANGED: "host-changed", NOT_APPLIED: "profiles-not-applied"}


@dataclass(frozen=True)
class Finding:
    """One difference: where it comes from (host or profiles), its kind, the partner it concerns."""

    source: str
    kind: str
    partner: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.source}] {self.kind}: {self.subject}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class DriftReport:
    status: int
    findings: tuple[Finding, ...]
    applied: dict[str, Any] | None
    checked_at: dt.datetime
    revocations: tuple[str, ...] = ()  # emergency revocations standing on the host (not drift: listed)

    @property
    def host_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.source == "host")


def check(desired: GatewaySpec, live: LiveState, applied: dict[str, Any] | None, now: dt.datetime,
          sessions: Sequence[SessionProblem] = (), flows: Sequence[Finding] = ()) -> DriftReport:
    """Pure: the drift report from desired state, live state and the record of the last apply
    (and the smart-card sessions that should not exist)."""
    findings: list[Finding] = [Finding("host", p.kind, p.partner, f"session {p.source}", p.detail) for p in sessions]
    findings += flows
    if applied is not None:
        last = spec_from_json(applied)
        labels = {k: p.label for k, p in last.peers.items()}
        plan = diff(last, live, now, labels)
        findings += [_finding("host", c, last) for c in plan.changes]
        scanned = [Finding("host", k, "-", s, d) for k, s, d in bypass.host_findings(live, (last, desired))]
        seen = {f.kind for f in scanned}  # the device scan names both names of a renamed interface: say it once
        findings += [Finding("host", kind, "-", "host", b) for b in plan.blockers if (kind := _blocker_kind(b)) not in seen]
        findings += scanned
        pending = diff(desired, as_live(last, now), now, labels)
        findings += [_finding("profiles", c, desired) for c in pending.changes]
    else:
        plan = diff(desired, live, now)
        findings += [_finding("profiles", c, desired) for c in plan.changes]
        findings += [Finding("host", k, "-", s, d) for k, s, d in bypass.host_findings(live, (desired,))]
    status = HOST_CHANGED if any(f.source == "host" for f in findings) else NOT_APPLIED if findings else IN_SYNC
    return DriftReport(status, tuple(findings), applied, now)


def _blocker_kind(text: str) -> str:
    if "renamed or moved" in text:
        return "interface-renamed"
    return "forwarding-off" if "forwarding" in text else "wireguard-unreachable"


def _finding(source: str, change: Change, spec: GatewaySpec) -> Finding:
    partner = change.subject.split("/")[0] if change.area == "peer" else change.subject if change.area == "firewall" else "-"
    if change.area == "firewall" and partner not in {p.partner for p in spec.peers.values()}:
        partner = "-"
    kind = change.kind or f"{change.area}-changed"
    return Finding(source, kind, partner, f"{change.area} {change.subject}", change.detail)


def as_live(spec: GatewaySpec, now: dt.datetime) -> LiveState:
    """The state the host has, at `now`, when it still is what `spec` applied (timers running down)."""
    peers = {k: PeerState(k, p.psk, p.endpoint, p.keepalive, p.allowed_ips) for k, p in spec.peers.items()}
    left = {k: int((end - now).total_seconds()) for k, end in spec.element_ends.items() if end > now}
    table = NftTableState(spec.table.name, {
        name: dataclasses.replace(s, elements=frozenset(e for e in s.elements if e not in spec.element_ends or e in left),
                                  expires={e: left[e] for e in s.elements if e in left})
        for name, s in spec.table.sets.items()}, spec.table.chains)
    return LiveState(
        link=LinkState(spec.ifname, True, spec.mtu, "wireguard", spec.addresses, spec.routes),
        wg_backend="userspace", wg=DeviceState(spec.public_key, spec.listen_port, peers), wg_error=None,
        nft=table, foreign_chains=(), forwarding4=True, forwarding6=True)
