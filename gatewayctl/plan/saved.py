"""Saved plans: `plan -o FILE` pins a plan to the profiles and the host it was made from; `apply FILE`
re-plans, and carries the plan out only when every pin and every operation is the same (Terraform's
saved-plan habit). Everything here is pure except reading the profiles folder and the plan file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gatewayctl.atomicfile import atomic_write
from gatewayctl.compile.ir import SEEN_SETS, SESSION_SETS
from gatewayctl.host.base import LiveState
from gatewayctl.host.nftstate import NftChain, NftSet, NftTableState
from gatewayctl.host.wgtypes import PeerState
from gatewayctl.loader.safefs import MAX_FILE_BYTES
from gatewayctl.plan.diff import Plan, describe, element_changes
from gatewayctl.plan.render import plan_operations
from gatewayctl.plan.savedfile import (
    SAVED_FORMAT,
    ChainChange,
    ChainSide,
    ChangeRecord,
    ElementChange,
    ElementSide,
    FirewallPlan,
    Operations,
    PeerChange,
    PeerSide,
    Pins,
    ProfilesPin,
    SavedPlan,
    SetChange,
    SetSide,
)
from gatewayctl.plan.spec import GatewaySpec, PeerSpec

RUNTIME_SETS = frozenset(SESSION_SETS) | frozenset(SEEN_SETS)  # filled by the kernel and the auth front, not by apply
_MAX_PLAN_BYTES = 64 * 1024 * 1024


class SavedPlanError(ValueError):
    """A plan file that cannot be read or is not a saved plan; the message names the file and what is wrong."""


def _sha256(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def host_digest(live: LiveState) -> str:
    """The digest of what the plan was computed from on the host: link, WireGuard configuration, our
    table (elements and rules), forwarding, the guard. Counters, handshakes, element timers, roaming
    endpoints and the run-time session sets move by themselves and are left out (timers and endpoints
    that matter show in the plan's operations, which are compared as well)."""
    link = live.link
    wg = live.wg
    return _sha256({
        "link": None if link is None else {"name": link.name, "up": link.up, "mtu": link.mtu, "kind": link.kind,
                                           "addresses": sorted(link.addresses), "routes": sorted(link.routes)},
        "wg_backend": live.wg_backend, "wg_error": live.wg_error,
        "wg": None if wg is None else {"public_key": wg.public_key, "listen_port": wg.listen_port,
                                       "peers": {k: _peer_pin(p) for k, p in sorted(wg.peers.items())}},
        "nft": None if live.nft is None else _table_pin(live.nft),
        "forwarding": [live.forwarding4, live.forwarding6], "guard": live.guard,
    })


def _peer_pin(peer: PeerState) -> dict[str, Any]:
    return {"allowed_ips": sorted(peer.allowed_ips), "keepalive": peer.keepalive, "psk": peer.psk_fingerprint}


def _table_pin(table: NftTableState) -> dict[str, Any]:
    return {
        "sets": {n: {"kind": s.kind, "type": list(s.type), "flags": list(s.flags),
                     "elements": [] if n in RUNTIME_SETS else sorted(s.elements),
                     "comments": {} if n in RUNTIME_SETS else dict(sorted(s.comments.items()))}
                 for n, s in sorted(table.sets.items())},
        "chains": {n: [c.hook, c.priority, c.policy, list(c.rules)] for n, c in sorted(table.chains.items())},
    }


def profiles_digest(root: Path) -> str:
    """sha256 over the relative path and content of every file below the profiles folder, links by
    their target (never followed), other kinds by their kind; .git folders are left out."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder, name)
            digest.update(f"{path.relative_to(root).as_posix()}\0{_file_pin(path)}\0".encode())
    return digest.hexdigest()


def _file_pin(path: Path) -> str:
    """A file's content digest; a link's target; a FIFO or device by its kind (never opened)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    if not stat.S_ISREG(info.st_mode):
        return f"kind:{stat.S_IFMT(info.st_mode)}"
    if info.st_size > MAX_FILE_BYTES:  # never loaded as a profile: its size and time say enough
        return f"large:{info.st_size}:{info.st_mtime_ns}"
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read(MAX_FILE_BYTES + 1)).hexdigest()


def build(plan: Plan, desired: GatewaySpec, live: LiveState, labels: dict[str, str], now: dt.datetime,
          pins: Pins, gateway: str, version: str) -> SavedPlan:
    """The saved plan of `plan` (made from `desired` and `live` at `now`), with its pins."""
    return SavedPlan(
        format=SAVED_FORMAT, gatewayctl_version=version, made_at=_instant(now), gateway=gateway,
        interface=desired.ifname, table=desired.table_name, pins=pins, blockers=list(plan.blockers),
        changes=[ChangeRecord(sign=c.sign, area=c.area, subject=c.subject, detail=c.detail, kind=c.kind)  # type: ignore[arg-type]
                 for c in plan.changes],
        firewall=firewall_plan(plan, desired, live, now), peers=peer_changes(plan, desired, live, labels),
        operations=Operations(**plan_operations(plan)),
    )


def make_pins(desired_digest: str, live: LiveState, revision: dict[str, Any], content_digest: str) -> Pins:
    """The pins of a plan: the desired state's digest, the host's, the profiles' revision and content."""
    return Pins(desired_digest=desired_digest, host_digest=host_digest(live),
                profiles=ProfilesPin(revision=revision.get("revision"), dirty=revision.get("dirty"),
                                     content_digest=content_digest))


def _instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def firewall_plan(plan: Plan, desired: GatewaySpec, live: LiveState, now: dt.datetime) -> FirewallPlan:
    """Every element of gatewayctl's table added, removed or re-timed, and every set or chain that
    changes, each with its before and after."""
    have = live.nft or NftTableState(desired.table_name, {}, {})
    owners = {ip.split("/")[0] if ip.endswith(("/32", "/128")) else ip: p.partner
              for p in desired.peers.values() for ip in p.allowed_ips}
    elements: list[ElementChange] = []
    for name in sorted(set(desired.table.sets) | set(have.sets)):
        if name in RUNTIME_SETS:
            continue
        want = desired.table.sets.get(name) or _empty_like(have.sets[name])
        current = have.sets.get(name) or _empty_like(want)
        elements += _element_records(name, want, current, owners, desired, now)
    sets = [SetChange(set=n, before=_set_side(have.sets.get(n)), after=_set_side(desired.table.sets.get(n)))
            for n in sorted(set(desired.table.sets) | set(have.sets))
            if _set_side(have.sets.get(n)) != _set_side(desired.table.sets.get(n))]
    chains = [ChainChange(chain=n, before=_chain_side(have.chains.get(n)), after=_chain_side(desired.table.chains.get(n)))
              for n in sorted(set(desired.table.chains) | set(have.chains))
              if desired.table.chains.get(n) != have.chains.get(n)]
    return FirewallPlan(table=desired.table_name, replace=plan.nft_replace, elements=elements, sets=sets, chains=chains)


def _empty_like(model: NftSet) -> NftSet:
    return NftSet(model.name, model.kind, model.type, model.flags, frozenset())


def _element_records(name: str, want: NftSet, have: NftSet, owners: dict[str, str], desired: GatewaySpec,
                     now: dt.datetime) -> list[ElementChange]:
    """One set's element changes, as diff computes them (elements about to expire are not added)."""
    _, delete, add = element_changes(want, have, owners, desired.element_ends, now)
    records = []
    for key in sorted(set(delete) | set(add)):
        before = None if key not in have.elements else ElementSide(ends_at=_live_end(have, key, now))
        after = None if key not in want.elements else ElementSide(
            ends_at=_instant(desired.element_ends[key]) if key in desired.element_ends else None)
        records.append(ElementChange(set=name, element=key, words=describe(key),
                                     partner=owners.get(key.split(" ", 1)[0], "unknown source"), before=before, after=after))
    return records


def _live_end(have: NftSet, key: str, now: dt.datetime) -> str | None:
    seconds = have.expires.get(key)
    return None if seconds is None else _instant(now + dt.timedelta(seconds=seconds))


def _set_side(s: NftSet | None) -> SetSide | None:
    return None if s is None else SetSide(kind=s.kind, type=list(s.type), flags=list(s.flags))


def _chain_side(c: NftChain | None) -> ChainSide | None:
    return None if c is None else ChainSide(hook=c.hook, priority=c.priority, policy=c.policy, rules=list(c.rules))


def peer_changes(plan: Plan, desired: GatewaySpec, live: LiveState, labels: dict[str, str]) -> list[PeerChange]:
    """Each peer added, changed or removed, before and after; preshared keys only as fingerprints."""
    have = live.wg.peers if live.wg else {}
    changes = []
    for key in plan.peers_upsert:
        spec = desired.peers[key]
        changes.append(PeerChange(public_key=key, label=spec.label, before=_live_side(have.get(key)), after=_spec_side(spec)))
    for key in plan.peers_remove:
        changes.append(PeerChange(public_key=key, label=labels.get(key, "not in the profiles"),
                                  before=_live_side(have.get(key)), after=None))
    return changes


def _live_side(peer: PeerState | None) -> PeerSide | None:
    if peer is None:
        return None
    return PeerSide(allowed_ips=sorted(peer.allowed_ips), endpoint=peer.endpoint, keepalive=peer.keepalive,
                    preshared_key=peer.psk_fingerprint)


def _spec_side(spec: PeerSpec) -> PeerSide:
    return PeerSide(allowed_ips=sorted(spec.allowed_ips), endpoint=spec.endpoint, keepalive=spec.keepalive,
                    preshared_key=spec.psk)


def stale_reasons(saved: SavedPlan, fresh: SavedPlan) -> list[str]:
    """Why the saved plan may not be applied now (empty: it is exactly the plan made now)."""
    reasons = []
    for what in ("gateway", "interface", "table"):
        if getattr(saved, what) != getattr(fresh, what):
            reasons.append(f"it was made for {what} {getattr(saved, what)!r}, this is {getattr(fresh, what)!r}")
    was, now = saved.pins.profiles, fresh.pins.profiles
    if was.revision != now.revision:
        reasons.append(f"the profiles' git revision changed ({was.revision or 'none'} -> {now.revision or 'none'})")
    if was.content_digest != now.content_digest:
        reasons.append("the profiles changed since (their content digest differs)")
    if saved.pins.desired_digest != fresh.pins.desired_digest:
        reasons.append("the desired state differs (profiles, key files, revocations, or grants that began or ended)")
    if saved.pins.host_digest != fresh.pins.host_digest:
        reasons.append("the host changed since the plan was made (link, WireGuard peers or gatewayctl's table)")
    if saved.operations != fresh.operations:
        reasons.append("the plan made now carries out different operations")
    return reasons


def write(path: Path, saved: SavedPlan) -> None:
    """Write the plan file atomically, readable by its owner only (0600)."""
    atomic_write(path, (json.dumps(saved.model_dump(mode="json"), indent=2) + "\n").encode(), 0o600)


def read(path: Path) -> SavedPlan:
    """The saved plan in `path`; raises SavedPlanError naming the file, the place and the problem."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise SavedPlanError(f"{path}: cannot read the plan file: {exc.strerror}") from None
    if len(raw) > _MAX_PLAN_BYTES:
        raise SavedPlanError(f"{path}: a plan file may be at most {_MAX_PLAN_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", 1)
        raise SavedPlanError(f"{path}:{line}: not JSON ({getattr(exc, 'msg', exc)}); give a file written by "
                             "`gatewayctl plan -o FILE`") from None
    if not isinstance(data, dict) or data.get("format") != SAVED_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise SavedPlanError(f"{path}:1: format must be {SAVED_FORMAT!r} (a file written by `gatewayctl plan -o FILE`), "
                             f"found {_short(found)}")
    try:
        return SavedPlan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise SavedPlanError(f"{path}: {where}: {first['msg']} (found {_short(first.get('input'))}); "
                             f"{exc.error_count()} problem(s) in all; make the plan again with `gatewayctl plan -o FILE`") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
