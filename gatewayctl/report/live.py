"""Read the live gateway for the report, never failing the report: what cannot be read is said."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gatewayctl.apply import revocations
from gatewayctl.apply.engine import prepare
from gatewayctl.auth import log as auth_log
from gatewayctl.auth.sessions import session_problems
from gatewayctl.drift.check import check
from gatewayctl.host.errors import HostError
from gatewayctl.host.real import RealHost
from gatewayctl.pipeline import Compiled
from gatewayctl.plan.secrets import Secrets
from gatewayctl.render.environment import make_environment
from gatewayctl.report.collect import Live
from gatewayctl.state import StateDir


def read_live(compiled: Compiled, state_root: Path, now: dt.datetime, offline: bool) -> Live:
    state = StateDir(state_root)
    try:
        journal = state.read_journal()
        applied = state.read_json("applied.json")
        decisions = auth_log.read(state_root)
    except (OSError, ValueError) as exc:
        journal, applied, decisions = [], None, []
        reason = f"the state folder {state_root} could not be read: {exc}"
        return Live(None, None, reason, journal, applied, decisions)
    if offline:
        return Live(None, None, "not read (--offline)", journal, applied, decisions,
                    [r.to_json() for r in revocations.load(state)])
    standing, _ = revocations.still_granted(revocations.load(state), compiled.policy)
    revoked = [r.to_json() for r in standing]
    policy = revocations.restrict(compiled.policy, standing)  # the access in force on this host
    try:
        host = RealHost(log_dir=None)
        prep = prepare(policy, host, make_environment(), Secrets(), now, {}, cache=None)
    except HostError as exc:
        return Live(None, None, str(exc), journal, applied, decisions, revoked)
    except Exception as exc:  # netlink, permissions, ...: the report says so, and does not fail
        return Live(None, None, f"{type(exc).__name__}: {exc}", journal, applied, decisions, revoked)
    sessions = session_problems(prep.live.nft, policy, decisions, now)
    return Live(prep.live, check(prep.desired, prep.live, applied, now, sessions), None, journal, applied, decisions,
                revoked)
