"""Confirm-or-roll-back: after `apply --confirm-timeout`, the change stands only if `confirm` arrives."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from typing import Any

from gatewayctl.apply.engine import Rollback, restore
from gatewayctl.host.base import Host
from gatewayctl.state import StateDir

PENDING = "pending-confirm.json"


def arm(state: StateDir, rollback: Rollback, previous_applied: dict[str, Any] | None, seconds: int) -> str:
    """Record the rollback (0600: it holds the previous device configuration) and start the watcher."""
    token = uuid.uuid4().hex
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    state.write_json(PENDING, {"id": token, "deadline": deadline.timestamp(), "rollback": rollback.to_json(),
                               "previous_applied": previous_applied}, secret=True)
    subprocess.Popen([sys.executable, "-m", "gatewayctl", "_confirm-watch", "--state-dir", str(state.root), "--id", token],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return token


def watch(state: StateDir, host: Host, token: str) -> str:
    """Wait for the deadline; roll back unless confirmed. Returns what happened."""
    pending = state.read_json(PENDING)
    if pending is None or pending["id"] != token:
        return "nothing pending"
    time.sleep(max(0.0, pending["deadline"] - time.time()))
    while True:
        try:
            with state.lock():
                return _expire(state, host, token)
        except Exception as exc:  # the lock is held by an apply: try again shortly
            if "holds the lock" not in str(exc):
                raise
            time.sleep(0.5)


def _expire(state: StateDir, host: Host, token: str) -> str:
    pending = state.read_json(PENDING)
    if pending is None or pending["id"] != token:
        return "confirmed"
    restore(Rollback(**pending["rollback"]), host)
    if pending["previous_applied"] is not None:
        state.write_json("applied.json", pending["previous_applied"], compact=True)
    else:
        state.remove("applied.json")
    state.remove(PENDING)
    state.journal({"event": "rolled-back", "reason": "not confirmed before the deadline", "apply_id": token})
    return "rolled back"


def confirm(state: StateDir) -> str | None:
    """Keep the pending change; returns its id, or None when nothing was pending."""
    with state.lock():
        pending = state.read_json(PENDING)
        if pending is None:
            return None
        state.remove(PENDING)
        state.journal({"event": "confirmed", "apply_id": pending["id"]})
        return str(pending["id"])
