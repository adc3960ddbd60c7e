"""The access in force: what the last apply installed (the state folder's applied.json).

The authorizer decides against this, not against the profiles it read when it started: a partner
removed, a grant removed or a gated requirement lifted by an apply opens no new session, and a
revocation (which takes its elements out of applied.json) is honoured at once, with no restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

APPLIED = "applied.json"
FRONT_SETS = ("auth_clients4", "auth_clients6")  # the sources that may reach the session front
GATED_SETS = ("gated4", "gated6", "gated_icmp4", "gated_icmp6")  # grants that wait for a session


@dataclass(frozen=True)
class GatedGrant:
    """A gated grant element in force: its source, and when its kernel timeout ends it (if it does)."""

    source: IPNetwork
    element: str
    ends: dt.datetime | None


@dataclass(frozen=True)
class InForce:
    """The front's clients and the gated grants the last apply installed."""

    digest: str
    table: str
    front: tuple[IPNetwork, ...]
    gated: tuple[GatedGrant, ...]

    def refusal(self, address: IPAddress, now: dt.datetime) -> str | None:
        """Why no session may open for `address` under the access in force, or None if one may."""
        if not any(address in net for net in self.front):
            return (f"source address {address}: the applied firewall does not let it reach the session front "
                    "(partner removed, no longer gated, or revoked)")
        if not any(address in g.source and (g.ends is None or g.ends > now) for g in self.gated):
            return (f"source address {address}: no grant in force waits for a session from it "
                    "(grants removed, ended or revoked by the last apply)")
        return None


def parse(data: dict[str, Any], fallback_digest: str) -> InForce:
    """The access in force from applied.json's content (raises ValueError, KeyError or TypeError when
    it is not what apply writes)."""
    sets = data["table"]["sets"]
    ends = {k: _time(v) for k, v in data.get("element_ends", {}).items()}
    front = tuple(net for name in FRONT_SETS for e in sets.get(name, {}).get("elements", ()) for net in _networks(e))
    gated = tuple(GatedGrant(net, e, ends.get(e)) for name in GATED_SETS for e in sets.get(name, {}).get("elements", ())
                  for net in _networks(e))
    return InForce(str(data.get("digest") or fallback_digest), str(data["table"]["name"]), front, gated)


def _networks(element: str) -> list[IPNetwork]:
    """The source networks of a set element ("10.250.2.1 . 10.2.0.5 . tcp . 5432", "100.64.20.0/24",
    "10.0.0.1-10.0.0.9 . ...")."""
    first = element.split(" . ", 1)[0].split()[0]
    if "-" in first and "/" not in first:
        low, high = (ipaddress.ip_address(a) for a in first.split("-", 1))
        return list(ipaddress.summarize_address_range(low, high))
    return [ipaddress.ip_network(first, strict=False)]


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


class AppliedFile:
    """applied.json in a state folder, re-read whenever it changes (inode, size or mtime)."""

    def __init__(self, state_root: Path) -> None:
        self.path = state_root / APPLIED
        self._seen: tuple[int, int, int] | None = None
        self._current: InForce | None = None
        self.problem: str | None = None  # why there is no access in force, when there is none

    def current(self) -> InForce | None:
        """The access in force now, or None (nothing applied, or applied.json unreadable: no session)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._current, self.problem = None, None, f"nothing has been applied on this host ({self.path})"
            return None
        except OSError as exc:
            self._seen, self._current, self.problem = None, None, f"cannot read {self.path}: {exc.strerror}"
            return None
        seen = (info.st_ino, info.st_size, info.st_mtime_ns)
        if seen != self._seen:
            self._seen, self._current, self.problem = seen, *self._load()
        return self._current

    def _load(self) -> tuple[InForce | None, str | None]:
        try:
            raw = self.path.read_bytes()
            return parse(json.loads(raw), hashlib.sha256(raw).hexdigest()), None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            return None, f"{self.path} is not a state apply wrote ({type(exc).__name__}): no session opens"
