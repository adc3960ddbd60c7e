"""`revoke`: close a partner's access on the live host at once, without compiling the estate.

It works from the last applied state (`applied.json`, which names the grants behind every set
element), so its cost is that of one partner, not of the estate: it deletes the elements whose
grants are all revoked in one nft transaction, deletes the conntrack entries of that partner's
flows that nothing covers any more, and records the revocation so that later applies keep it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from gatewayctl.apply import tablerecord
from gatewayctl.apply.revocations import Revocation, add, load, save
from gatewayctl.compile.ir import seen_sets
from gatewayctl.forked import Forked
from gatewayctl.host import generation, nftrecord
from gatewayctl.host.base import Host
from gatewayctl.host.errors import HostError
from gatewayctl.host.nftstate import NftSet
from gatewayctl.plan.flows import Coverage, parse_flows
from gatewayctl.plan.specdigest import SPEC_KEYS, digest
from gatewayctl.state import StateDir, current_user
from gatewayctl.suggest import did_you_mean


@dataclass(frozen=True)
class RevokeResult:
    revocation: Revocation
    elements: int
    flows: int
    flows_error: str | None = None  # the open connections could not be listed or deleted (the elements are gone)


def revoke(host: Host, state: StateDir, partner: str, service: str | None, reason: str,
           fork: bool = False) -> RevokeResult:
    """Record the revocation, take its elements out of the kernel and of applied.json, end its flows.
    `fork`: the flows are ended by a forked child while applied.json is written (for a host whose
    state is the kernel's, as the command's is; a fake host's would change only in the child)."""
    applied = state.read_json("applied.json")
    if applied is None:
        raise HostError("nothing was applied on this host yet (no applied.json): there is no access to revoke")
    grants: dict[str, list[str]] = applied.get("element_grants", {})
    partners = {p["partner"] for p in applied["peers"].values()}
    if partner not in partners:
        raise HostError(f"partner {partner!r} has no peer on this gateway (last apply){did_you_mean(partner, partners)}; "
                        f"partners here: {', '.join(sorted(partners)) or 'none'}")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = Revocation(partner, service, reason, current_user(), now)
    if service is not None and not any(new.covers(g) for ids in grants.values() for g in ids):
        raise HostError(f"partner {partner!r} has no grant of service {service!r} in force on this gateway")
    standing = add(load(state), new)
    save(state, standing)
    touched = _touched(grants, standing)
    gone = _gone(applied, standing, touched)  # every revocation in force counts: an element shared by two revoked grants goes
    table = applied["table_name"]
    known, start = tablerecord.load(state.root), host.generation()
    proven = generation.proves(known, start, table)
    present = _present(host, table, gone, known if proven else None)
    host.nft_elements(table, {n: k for n, k in present.items() if k}, {}, flush=seen_sets(applied["table"]["sets"]))
    retimed = _retime(host, applied, standing, touched)
    _keep_record(state, host, known if proven else None, start, present, retimed)
    for name, keys in gone.items():
        sets = applied["table"]["sets"][name]
        sets["elements"] = sorted(set(sets["elements"]) - set(keys))
        for key in keys:
            grants.pop(key, None)
            applied["element_ends"].pop(key, None)
    applied["digest"] = digest({k: applied[k] for k in SPEC_KEYS if k in applied})  # restore checks it
    # the partner's flows end in a forked child (gatewayctl/forked.py: importing pyroute2 for conntrack
    # is 0.15 s) while applied.json is written; deleting by tuple is safe to do again if it fails. A
    # failure there does not undo the revocation: the elements are gone, so the ruleset drops the
    # flows' packets one by one; it is said and journaled, as apply does
    flows, error = 0, None
    with Forked(lambda: _close_flows(host, applied, partner), fork) as closing:
        state.write_json("applied.json", applied, compact=True)
        try:
            flows = closing.result()
        except HostError as exc:
            error = str(exc)
    count = sum(len(k) for k in present.values())
    state.journal({"event": "revoked", "partner": partner, "service": service, "reason": reason, "elements": count,
                   "flows_closed": flows, **({"flows_error": error} if error else {})})
    return RevokeResult(new, count, flows, error)


def _revoked(grant: str, revocations: list[Revocation]) -> bool:
    return any(r.covers(grant) for r in revocations)


def _touched(grants: dict[str, list[str]], revocations: list[Revocation]) -> set[str]:
    """The elements with at least one grant of a partner that a revocation names (the only ones a
    revocation can change: looked for once, instead of testing every grant of every element)."""
    partners = {r.partner for r in revocations}
    return {key for key, ids in grants.items() if any(g.partition("/")[0] in partners for g in ids)}


def _gone(applied: dict[str, Any], revocations: list[Revocation], touched: set[str]) -> dict[str, list[str]]:
    """The elements, by set, whose every grant a revocation in force covers."""
    grants: dict[str, list[str]] = applied.get("element_grants", {})
    gone: dict[str, list[str]] = {}
    for name, data in applied["table"]["sets"].items():
        keys = [k for k in data["elements"] if k in touched and grants.get(k) and all(_revoked(g, revocations) for g in grants[k])]
        if keys:
            gone[name] = keys
    return gone


def _present(host: Host, table: str, gone: dict[str, list[str]], known: dict[str, Any] | None) -> dict[str, list[str]]:
    """Which of `gone` are in the kernel (an element may have left by its timeout, and deleting one that
    is not there fails the whole transaction): from the table record when the generation proves it
    (apply/tablerecord.py), else asked of nft."""
    if known is None:
        return {name: sorted(host.nft_get_elements(table, name, keys)) for name, keys in gone.items()}
    sets = nftrecord.decode(known["record"], time.time()).sets
    return {name: sorted(set(keys) & (sets[name].elements if name in sets else frozenset())) for name, keys in gone.items()}


def _keep_record(state: StateDir, host: Host, known: dict[str, Any] | None, start: tuple[str, int, int] | None,
                 present: dict[str, list[str]], retimed: tuple[dict[str, list[str]], dict[str, list[tuple[str, float, str]]]]) -> None:
    """The table record after the revocation, when it held before and nobody else committed since; else none."""
    now = host.generation()
    if known is None or not tablerecord.continued(start, now, host.nft_writes):
        tablerecord.forget(state.root)
        return
    assert now is not None
    delete = {name: [*present.get(name, []), *retimed[0].get(name, [])] for name in {*present, *retimed[0]}}
    record = nftrecord.changed(known["record"], delete, retimed[1], time.time())
    tablerecord.save(state.root, now, known["table"], record, known.get("foreign"))  # revoke changed only its table


def _close_flows(host: Host, applied: dict[str, Any], partner: str) -> int:
    """Delete the partner's tracked flows that the remaining elements do not cover (session-gated
    elements count as covered here: their per-packet rule still needs the session)."""
    nets = [ipaddress.ip_network(n) for p in applied["peers"].values() if p["partner"] == partner for n in p["allowed_ips"]]
    mine = [f for f in parse_flows(host.conntrack_list()) if any(ipaddress.ip_address(f.src) in n for n in nets)]
    if not mine:
        return 0
    sets = {name: NftSet(name, d["kind"], tuple(d["type"]), tuple(d["flags"]), frozenset(d["elements"]))
            for name, d in applied["table"]["sets"].items()}
    coverage = Coverage(sets, assume_sessions=True, sources={str(ipaddress.ip_address(f.src)) for f in mine})
    stale = [f for f in mine if not coverage.covers(f)]
    return host.conntrack_delete([f.raw for f in stale]) if stale else 0


def _retime(host: Host, applied: dict[str, Any], revocations: list[Revocation], touched: set[str]
            ) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, float, str]]]]:
    """An element shared by a revoked grant and one that stands stays, but only until the standing
    grants end: when the revoked grant held it open longer, it is put back with the shorter timer.
    Returns what it deleted and added (set -> keys; set -> (key, end, comment))."""
    grants: dict[str, list[str]] = applied.get("element_grants", {})
    ends: dict[str, str | None] = applied.get("grant_ends", {})
    now = dt.datetime.now(dt.UTC)
    delete: dict[str, list[str]] = {}
    add: dict[str, list[str]] = {}
    added: dict[str, list[tuple[str, float, str]]] = {}
    for name, data in applied["table"]["sets"].items():
        for key in data["elements"]:
            if key not in touched:
                continue
            ids = grants.get(key, [])
            left = [g for g in ids if not _revoked(g, revocations)]
            if not left or len(left) == len(ids) or any(ends.get(g) is None for g in left):
                continue
            end = max(dt.datetime.strptime(str(ends[g]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) for g in left)
            current = applied["element_ends"].get(key)
            if current is not None and current <= end.strftime("%Y-%m-%dT%H:%M:%SZ"):
                continue
            seconds = max(int((end - now).total_seconds()), 1)
            delete.setdefault(name, []).append(key)
            add.setdefault(name, []).append(f'{key} timeout {seconds}s comment "{" ".join(left)}"')
            added.setdefault(name, []).append((key, now.timestamp() + seconds, " ".join(left)))
            grants[key] = left
            applied["element_ends"][key] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    if delete:
        host.nft_elements(applied["table_name"], delete, add)
    return delete, added
