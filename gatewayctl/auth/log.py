"""The decision log: one JSON line per decision in the state folder, append only."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from gatewayctl.auth.decide import Decision

LOG_NAME = "auth-decisions.jsonl"


def append(state_root: Path, decision: Decision) -> None:
    fd = os.open(state_root / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(decision.to_json(), sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read(state_root: Path) -> list[dict[str, Any]]:
    """Every decision logged, oldest first; unreadable lines are skipped (the log is evidence, not input)."""
    path = state_root / LOG_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
