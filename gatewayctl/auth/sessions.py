"""Open sessions in the firewall, list them, and tell which of them should not exist."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Any

from gatewayctl.auth.log import parse_time
from gatewayctl.compile.ir import SESSION_SETS, CompiledPolicy
from gatewayctl.host.base import Host
from gatewayctl.host.nftstate import NftTableState
from gatewayctl.render.environment import nft_timeout

# A session's kernel timer and its logged end may differ by the time the authorizer took to write both.
SESSION_SLACK = dt.timedelta(seconds=5)


def session_set(source: str) -> str:
    return SESSION_SETS[0] if ipaddress.ip_address(source).version == 4 else SESSION_SETS[1]


def open_session(host: Host, table: str, source: str, seconds: int) -> None:
    """Add (or renew) the source's session element with its timeout, in one transaction."""
    name = session_set(source)
    present = host.nft_get_elements(table, name, [source])
    host.nft_elements(table, {name: [source]} if present else {}, {name: [f"{source} timeout {nft_timeout(seconds)}"]})


@dataclass(frozen=True)
class Session:
    source: str
    expires_in: int | None  # seconds; None: no timer (never set so by gatewayctl)
    partner: str | None
    decision: dict[str, Any] | None  # the accepted decision that opened it, if logged

    def to_json(self) -> dict[str, Any]:
        d = self.decision or {}
        return {"source": self.source, "partner": self.partner, "expires_in_seconds": self.expires_in,
                "identity": d.get("identity"), "serial": d.get("serial"), "opened": d.get("time"),
                "session_until": d.get("session_until")}


def live_sessions(table: NftTableState | None, policy: CompiledPolicy, decisions: list[dict[str, Any]],
                  now: dt.datetime) -> list[Session]:
    """The sessions in the kernel, each with its partner and the logged decision that opened it."""
    if table is None:
        return []
    clients = sorted(policy.table.auth_clients, key=lambda c: -c.source.prefixlen)
    sessions = []
    for name in SESSION_SETS:
        current = table.sets.get(name)
        for source in sorted(current.elements if current else ()):
            expires = current.expires.get(source) if current else None
            address = ipaddress.ip_address(source)
            partner = next((c.partner for c in clients if address in c.source), None)
            sessions.append(Session(source, expires, partner, _opening(decisions, source, expires, now)))
    return sessions


def _opening(decisions: list[dict[str, Any]], source: str, expires: int | None, now: dt.datetime) -> dict[str, Any] | None:
    """The last accepted decision for `source` whose session end matches the kernel timer."""
    if expires is None:
        return None
    kernel_end = now + dt.timedelta(seconds=expires)
    for record in reversed(decisions):
        if record.get("outcome") != "accepted" or record.get("source") != source:
            continue
        until = parse_time(record.get("session_until"))
        if until is not None and abs(until - kernel_end) <= SESSION_SLACK:
            return dict(record)
    return None


@dataclass(frozen=True)
class SessionProblem:
    kind: str
    partner: str
    source: str
    detail: str


def problems(sessions: list[Session], policy: CompiledPolicy) -> list[SessionProblem]:
    """Sessions that should not exist: for no session partner, without a logged decision, or too long."""
    limits = {p.id: p.certificates.session_seconds for p in policy.partners
              if p.certificates and p.certificates.session_seconds is not None}
    found = []
    for s in sessions:
        if s.partner is None or s.partner not in limits:
            found.append(SessionProblem("session-unexpected", "-", s.source,
                                        "not an address of a partner whose grants wait for a session"))
            continue
        if s.expires_in is None:
            found.append(SessionProblem("session-without-timeout", s.partner, s.source, "the session never ends"))
            continue
        if s.expires_in > limits[s.partner] + SESSION_SLACK.total_seconds():
            found.append(SessionProblem("session-too-long", s.partner, s.source,
                                        f"{s.expires_in} s left, longer than the partner's {limits[s.partner]} s session"))
        if s.decision is None:
            found.append(SessionProblem("session-unlogged", s.partner, s.source,
                                        "no accepted authentication in the decision log opened it"))
    return found


def session_problems(table: NftTableState | None, policy: CompiledPolicy, decisions: list[dict[str, Any]],
                     now: dt.datetime) -> list[SessionProblem]:
    """The sessions in the kernel that should not exist (what drift and the report show)."""
    return problems(live_sessions(table, policy, decisions, now), policy)
