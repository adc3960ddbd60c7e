"""apply: narrow the firewall, change links and peers, widen the firewall, verify; roll back on failure.

Order keeps access within both the old and the new policy at every moment: first the firewall
holds only grants that are in both, then peers and links change, then the new grants open.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gatewayctl.apply import tablerecord, timers
from gatewayctl.apply.failpoints import checkpoint, spoil
from gatewayctl.apply.revocations import Revocation
from gatewayctl.compile.ir import SESSION_SETS, CompiledPolicy, seen_sets
from gatewayctl.compile.origin import Locate, explain_refusal
from gatewayctl.host import uapi
from gatewayctl.host.base import Host, LiveState, parse_snapshot, read
from gatewayctl.host.errors import HostError
from gatewayctl.host.wgtypes import DeviceUpdate, PeerConfig
from gatewayctl.plan.diff import Plan, describe, diff, peer_differences
from gatewayctl.plan.flows import Flow, stale_flows
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import GatewaySpec, desired_spec, instant_text, narrowed_ruleset
from gatewayctl.render.artifacts import render_guard, render_ruleset
from gatewayctl.render.environment import element_text, exact_timeouts, nft_timeout


class ApplyError(Exception):
    """Apply failed; `rolled_back` says whether the previous state was restored."""

    def __init__(self, message: str, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


@dataclass(frozen=True)
class Prepared:
    """Everything read and computed before asking the engineer."""

    policy: CompiledPolicy
    desired: GatewaySpec
    live_raw: dict[str, Any]
    live: LiveState
    plan: Plan
    now: dt.datetime
    labels: dict[str, str]
    revoked: tuple[Revocation, ...] = ()  # revocations standing on this host (their grants are out of `policy`)
    locate: Locate | None = None  # grant id -> profile file:line, for messages about a refused ruleset
    lint_errors: tuple[str, ...] = ()  # lint errors apply refuses on (path:line: CODE message)
    unrevoked: tuple[Revocation, ...] = ()  # revocations whose access the profiles no longer grant: they end


@dataclass(frozen=True)
class Rollback:
    """The previous state: our table as nft text, the device's raw configuration (secret), the link."""

    ifname: str
    table: str
    nft_text: str | None
    wg_raw: str | None
    wg_backend: str | None
    link: dict[str, Any] | None
    # For a plan that changes elements in place: the inverse operations instead of the whole table
    # (undo_add: each element's key and comment as `add element` takes them, without its timer).
    undo_delete: dict[str, list[str]] | None = None
    undo_add: dict[str, list[str]] | None = None
    # When the record was taken, and the end instant of every element it puts back that has a timer
    # (set -> key -> unix time): a rollback running later restores the same ends (apply/timers.py).
    taken_at: float | None = None
    ends: dict[str, dict[str, float]] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def prepare(policy: CompiledPolicy, host: Host, env: jinja2.Environment, secrets: Secrets, now: dt.datetime,
            labels: dict[str, str], cache: Path | None = None,
            early: Callable[[], dict[str, Any] | None] | None = None, known: Mapping[str, Any] | None = None,
            on_spec: Callable[[GatewaySpec], None] | None = None) -> Prepared:
    """Compute the desired state, read the host once (or collect the snapshot `early` is taking), and diff.
    `known`: the state folder's table record (apply/tablerecord.py), used when the generation proves it.
    `on_spec` is called with the desired state as soon as it is known (apply starts spelling
    applied.json from it while the host is read and diffed)."""
    desired = desired_spec(policy, host, env, secrets, now, cache)
    if on_spec is not None:
        on_spec(desired)
    live_raw = early() if early else None
    if live_raw is None or (live_raw["ifname"], live_raw["table"]) != (desired.ifname, desired.table_name):
        live_raw = host.snapshot(desired.ifname, desired.table_name, known)
    if live_raw.get("nft_proven"):
        if known is None or known.get("table") != desired.table_name:  # proven against another record: read again
            live_raw = host.snapshot(desired.ifname, desired.table_name)
        else:
            live_raw = {**live_raw, "nft_record": known["record"]}
    live = parse_snapshot(live_raw)
    return Prepared(policy, desired, live_raw, live, diff(desired, live, now, labels), now, labels)


def element_grants(policy: CompiledPolicy) -> dict[str, list[str]]:
    """The grants behind each grant-set element (revoke works from this without compiling)."""
    table = policy.table
    return {e.key: list(e.grants) for e in (*table.grants4, *table.grants6, *table.icmp4, *table.icmp6)}


def grant_ends(policy: CompiledPolicy) -> dict[str, str | None]:
    """When each grant in force ends (revoke re-times an element shared with a grant it keeps)."""
    return {g.id: instant_text(g.ends_at) if g.ends_at else None
            for p in policy.partners for g in p.grants}


def execute(prep: Prepared, host: Host, env: jinja2.Environment, secrets: Secrets) -> Rollback:
    """Carry out the plan; on any failure restore the previous state, read it back, and raise ApplyError.

    When gatewayctl's table is not in force (a fresh host) or the interface must be created, a guard
    table drops all partner traffic first, and goes only once the full table is in force, or once the
    previous state is read back restored; if it cannot be, the guard stays and the error says so."""
    rollback = _rollback_of(prep, host)
    guard = _guard(prep, host, env)  # nothing has changed if loading the guard fails
    try:
        checkpoint("after-guard")
        backend = _steps(prep, host, env, secrets)
        left = _verify(prep, host, backend)
        if left:
            raise HostError("the host does not match the plan after applying: " + "; ".join(left[:5]))
        checkpoint("after-widen")
    except Exception as exc:
        _recover(exc, rollback, host, guard)
    if guard or prep.plan.remove_guard:
        host.nft_delete(guard or f"{prep.desired.table_name}_guard")
    return rollback


def close_while_refused(prep: Prepared, host: Host, env: jinja2.Environment) -> str | None:
    """apply refuses (a blocker) on a host where partner traffic is unfiltered (no table of ours, a
    WireGuard device up): load the guard and leave it; return its name, or None when not needed."""
    if prep.live.nft is not None or (prep.live.wg is None and prep.live.link is None):
        return None
    name = f"{prep.desired.table_name}_guard"
    host.nft_load(render_guard(name, prep.desired.ifname, _guard_nets(prep), env))
    return name


def _guard_nets(prep: Prepared) -> list[str]:
    nets = {k for n in ("partner_nets4", "partner_nets6") if n in prep.desired.table.sets
            for k in prep.desired.table.sets[n].elements}
    if prep.live.nft is not None:
        nets |= {k for n in ("partner_nets4", "partner_nets6") if n in prep.live.nft.sets for k in prep.live.nft.sets[n].elements}
    return sorted(nets)


def _guard(prep: Prepared, host: Host, env: jinja2.Environment) -> str | None:
    """Load the guard table when partner traffic could pass unfiltered during this apply; its name."""
    if not (prep.plan.create_interface or prep.live.nft is None):
        return None
    name = f"{prep.desired.table_name}_guard"
    host.nft_load(render_guard(name, prep.desired.ifname, _guard_nets(prep), env))
    return name


def _recover(exc: Exception, rollback: Rollback, host: Host, guard: str | None) -> None:
    """Restore, read back, and raise ApplyError saying exactly what state the host is in."""
    blocked = f"; partner traffic stays blocked by the guard table inet {guard}" if guard else ""
    try:
        restore(rollback, host)
        problems = restored_problems(rollback, host)
    except Exception as second:  # both failures are reported; the first one is the cause
        raise ApplyError(f"{exc}; and the rollback failed too: {second}{blocked}", rolled_back=False) from exc
    if problems:
        raise ApplyError(f"{exc}; the rollback left the host unlike before: {'; '.join(problems)}{blocked}",
                         rolled_back=False) from exc
    if guard:
        host.nft_delete(guard)
    raise ApplyError(f"{exc}; {_before(rollback)} (read back from the host)", rolled_back=True) from exc


def _before(rollback: Rollback) -> str:
    if rollback.link is None:
        return f"the host is as before: no interface {rollback.ifname}, no peers, no table {rollback.table}"
    peers = len(uapi.restorable(rollback.wg_raw).upsert) if rollback.wg_raw else 0
    table = f"the previous table {rollback.table}" if rollback.nft_text or rollback.undo_add is not None else \
        f"no table {rollback.table} (as before)"
    return f"the host is as before: interface {rollback.ifname} with its {peers} previous peer(s), {table}"


def restored_problems(rollback: Rollback, host: Host) -> list[str]:
    """What differs, read back from the host, from the state the rollback record describes."""
    current = parse_snapshot(host.snapshot(rollback.ifname, rollback.table))
    problems = []
    if rollback.link is None and current.link is not None:
        problems.append(f"interface {rollback.ifname} still exists")
    if rollback.wg_raw is None and current.wg is not None:
        problems.append(f"a WireGuard device answers for {rollback.ifname}")
    had_table = rollback.nft_text is not None or rollback.undo_add is not None or rollback.undo_delete is not None
    if had_table != (current.nft is not None):
        problems.append(f"table {rollback.table} " + ("is missing" if had_table else "still exists"))
    if rollback.wg_raw is not None:
        want = {p.public_key for p in uapi.restorable(rollback.wg_raw).upsert}
        have = set(current.wg.peers) if current.wg else set()
        if want != have:
            problems.append(f"{len(want - have)} previous peer(s) missing, {len(have - want)} new peer(s) left")
    return problems


def close_stale_flows(prep: Prepared, host: Host) -> list[Flow]:
    """Delete the conntrack entries of flows that the applied table no longer allows (only those).

    The ruleset already drops their packets one by one; removing the entries also ends them in the
    kernel's state, so nothing of them is left to be picked up again."""
    sets = dict(prep.desired.table.sets)
    if prep.live.nft is not None:  # open smart-card sessions were carried over
        sets.update({name: prep.live.nft.sets[name] for name in SESSION_SETS if name in prep.live.nft.sets})
    stale = stale_flows(host.conntrack_list(), sets, prep.policy.table.auth_port, prep.desired.addresses)
    if stale:
        host.conntrack_delete([flow.raw for flow in stale])
    return stale


def _rollback_of(prep: Prepared, host: Host) -> Rollback:
    """What it takes to put the host back: the whole table, or the inverse of the element changes."""
    desired, plan, live = prep.desired, prep.plan, prep.live
    base = dict(ifname=desired.ifname, table=desired.table_name, wg_raw=prep.live_raw.get("wg_raw"),
                wg_backend=live.wg_backend, link=prep.live_raw.get("link"))
    listed_at = float(prep.live_raw.get("nft_listed_at") or timers.now())
    if plan.nft_replace or live.nft is None:
        taken = timers.now()  # before the listing: the ends it gives are never later than the kernel's
        text = host.nft_list_text(desired.table_name)
        ends = {n: timers.ends_of(s, None, listed_at) for n, s in live.nft.sets.items()} if live.nft else None
        return Rollback(nft_text=text, taken_at=taken, ends=ends, **base)  # type: ignore[arg-type]
    readd = {name: [timers.element_text(key, live.nft.sets[name].comments.get(key), None, 0) or key for key in keys]
             for name, keys in plan.nft_delete.items()}
    ends = {name: timers.ends_of(live.nft.sets[name], list(keys), listed_at) for name, keys in plan.nft_delete.items()}
    return Rollback(nft_text=None, undo_delete={k: list(v) for k, v in plan.nft_add.items()}, undo_add=readd,
                    taken_at=listed_at, ends=ends, **base)  # type: ignore[arg-type]


def _steps(prep: Prepared, host: Host, env: jinja2.Environment, secrets: Secrets) -> str:
    """Carry out the plan in its safe order; return the WireGuard backend in use."""
    desired, plan, live = prep.desired, prep.plan, prep.live
    backend = live.wg_backend
    if plan.create_interface:
        backend = host.wg_create(desired.ifname)
        checkpoint("after-create")
    assert backend is not None
    sessions = carried_sessions(live, desired, prep.policy, prep.now) if plan.nft_replace else ""
    if plan.nft_replace:
        live_elements = frozenset().union(*(s.elements for s in live.nft.sets.values())) if live.nft else frozenset()
        _load(prep, host, spoil("load-narrowed", narrowed_ruleset(prep.policy, env, prep.now, live_elements) + sessions))
    elif plan.nft_delete:  # narrow in place: other elements keep their counters; the flow cache goes with them
        host.nft_elements(desired.table_name, {k: list(v) for k, v in plan.nft_delete.items()}, {},
                          flush=seen_sets(desired.table.sets))
    checkpoint("after-narrow")
    if plan.mtu is not None or plan.up:
        host.link_configure(desired.ifname, plan.mtu, True if plan.up else None)
    for cidr in plan.addresses_add:
        host.address(desired.ifname, cidr, True)
    update = DeviceUpdate(
        listen_port=plan.listen_port,
        private_key=secrets.key(desired.private_key_file, "private key") if plan.private_key else None,
        upsert=tuple(_peer_config(desired, key, secrets) for key in plan.peers_upsert),
        remove=plan.peers_remove,
    )
    host.wg_update(desired.ifname, backend, update)
    checkpoint("after-peers")
    for cidr in plan.addresses_remove:
        host.address(desired.ifname, cidr, False)
    for dst in plan.routes_add:
        host.route(desired.ifname, dst, True)
    for dst in plan.routes_remove:
        host.route(desired.ifname, dst, False)
    checkpoint("before-widen")
    if plan.nft_replace:
        _load(prep, host, spoil("load-full", render_ruleset(prep.policy, env, prep.now) + sessions))
    elif plan.nft_add:
        host.nft_elements(desired.table_name, {}, {name: [t for _, t in items] for name, items in added_elements(prep).items()})
    return backend


def added_elements(prep: Prepared) -> dict[str, list[tuple[str, str]]]:
    """The elements an in-place plan adds: set -> [(key, the element as `add element` takes it)]."""
    by_key = {name: {e.key: e for e in elements} for name, elements in prep.policy.table.by_set().items()}
    timeouts = exact_timeouts(prep.now)
    return {name: [(key, element_text(by_key[name][key], timeouts)) for key in keys] for name, keys in prep.plan.nft_add.items()}


def _load(prep: Prepared, host: Host, text: str) -> None:
    """Load a ruleset; a refusal names the grants behind the element nft points at, with their profile lines."""
    try:
        host.nft_load(text)
    except HostError as exc:
        raise HostError(explain_refusal(str(exc), text, prep.policy.table, prep.locate)) from None


def carried_sessions(live: LiveState, desired: GatewaySpec, policy: CompiledPolicy, now: dt.datetime) -> str:
    """Open smart-card sessions, as commands to add them back (remaining time kept) in the same
    transaction that replaces the table, so replacing the table does not end them. A session that
    could not have been opened (no session partner's address, longer than its session, no timer)
    is not carried over: the apply closes it."""
    if live.nft is None:
        return ""
    from gatewayctl.auth.sessions import session_problems

    wrong = {p.source for p in session_problems(live.nft, policy, [], now) if p.kind != "session-unlogged"}
    lines = []
    for name in SESSION_SETS:
        current = live.nft.sets.get(name)
        keep = sorted(k for k in current.elements if k not in wrong) if current is not None else []
        if keep and name in desired.table.sets:
            items = ", ".join(f"{k} timeout {nft_timeout(max(current.expires.get(k, 1), 1))}" for k in keep)  # type: ignore[union-attr]
            lines.append(f"add element inet {live.nft.name} {name} {{ {items} }}\n")
    return "".join(lines)


def _verify(prep: Prepared, host: Host, backend: str) -> list[str]:
    """Read back what was changed; return what still differs (empty when the host matches).

    A plan that replaced the table or touched the link is checked against a full snapshot; a plan
    that only changed peers and elements reads back the device and the sets it changed."""
    desired, plan = prep.desired, prep.plan
    if plan.nft_replace or plan.link_changes or plan.private_key or plan.listen_port is not None:
        changes = diff(desired, read(host, desired.ifname, desired.table_name), prep.now).changes
        return [str(c) for c in changes if c.kind != "guard-left"]  # the guard goes once this check passes
    left: list[str] = []
    if plan.peers_upsert or plan.peers_remove:
        device = uapi.parse_get(host.wg_read(desired.ifname, backend), only={*plan.peers_upsert, *plan.peers_remove})
        for key in plan.peers_upsert:
            current = device.peers.get(key)
            spec = desired.peers[key]
            if current is None or peer_differences(spec, current):
                left.append(f"peer {spec.label} not as planned")
        left += [f"peer {prep.labels.get(k, 'removed')} still present" for k in plan.peers_remove if k in device.peers]
    if (plan.nft_delete or plan.nft_add) and tablerecord.continued(prep.live.generation, host.generation(), host.nft_writes):
        # the table was read at a known generation and only this apply's transactions came after it;
        # each was committed whole (or the apply failed): the elements are as planned
        return left
    for name in sorted(set(plan.nft_delete) | set(plan.nft_add)):
        asked = sorted(set(plan.nft_delete.get(name, ())) | set(plan.nft_add.get(name, ())))
        got = host.nft_get_elements(desired.table_name, name, asked)
        want = desired.table.sets[name].elements
        left += [f"{name}: {describe(k)} missing" for k in asked if k in want and k not in got]
        left += [f"{name}: {describe(k)} still present" for k in asked if k not in want and k in got]
    return left


def _peer_config(desired: GatewaySpec, key: str, secrets: Secrets) -> PeerConfig:
    peer = desired.peers[key]
    psk = secrets.key(peer.psk_file, "preshared key") if peer.psk_file else None
    return PeerConfig(key, peer.endpoint, peer.keepalive, tuple(sorted(peer.allowed_ips)), psk)


def restore(rollback: Rollback, host: Host) -> None:
    """Put back the previous table and peers (and the link's addresses and routes)."""
    if rollback.undo_delete is not None or rollback.undo_add is not None:
        _undo_elements(rollback, host)
    elif rollback.nft_text is None:
        host.nft_delete(rollback.table)
    else:
        prefix = f"table inet {rollback.table} {{}}\ndelete table inet {rollback.table}\n"
        now = timers.now()
        text = timers.aged(rollback.nft_text, now - rollback.taken_at) if rollback.taken_at else rollback.nft_text
        ended = {n: sorted(k for k, end in e.items() if end - now < 1) for n, e in (rollback.ends or {}).items()}
        # what ended while the rollback waited goes in the same transaction: never back for a moment
        gone = "".join(f"delete element inet {rollback.table} {n} {{ {', '.join(keys)} }}\n" for n, keys in ended.items() if keys)
        host.nft_load(prefix + text + "\n" + gone)
    current = parse_snapshot(host.snapshot(rollback.ifname, rollback.table))
    if rollback.link is None and current.link is not None:  # apply created it: a fresh host goes back to none
        host.wg_destroy(rollback.ifname, current.wg_backend or "userspace")
        return
    if rollback.wg_raw is None or current.wg is None:
        return
    previous = uapi.restorable(rollback.wg_raw)
    keep = {p.public_key for p in previous.upsert}
    host.wg_update(rollback.ifname, current.wg_backend or rollback.wg_backend or "userspace", DeviceUpdate(
        listen_port=previous.listen_port, private_key=previous.private_key,
        upsert=previous.upsert, remove=tuple(k for k in current.wg.peers if k not in keep)))
    _restore_link(rollback, current, host)


def _undo_elements(rollback: Rollback, host: Host) -> None:
    """Remove what was added and put back what was deleted; elements not there (yet) are skipped."""
    delete = {}
    for name, keys in (rollback.undo_delete or {}).items():
        present = host.nft_get_elements(rollback.table, name, keys)
        delete[name] = [k for k in keys if k in present]
    add = {}
    now = timers.now()
    for name, texts in (rollback.undo_add or {}).items():
        present = host.nft_get_elements(rollback.table, name, [_key_of(t) for t in texts])
        ends = (rollback.ends or {}).get(name, {})
        timed = [_timed(t, ends.get(_key_of(t)), now) for t in texts if _key_of(t) not in present]
        add[name] = [t for t in timed if t is not None]  # an element whose end passed meanwhile stays out
    host.nft_elements(rollback.table, delete, add)


def _timed(text: str, end: float | None, now: float) -> str | None:
    """A recorded element text with the time left until its end (records older than `ends` carry their timer)."""
    if end is None:
        return text
    comment = re.search(r' comment "(.*)"$', text)
    return timers.element_text(_key_of(text), comment.group(1) if comment else None, end, now)


def _key_of(text: str) -> str:
    return re.sub(r'( timeout \S+)?( comment ".*")?$', "", text)


def _restore_link(rollback: Rollback, current: LiveState, host: Host) -> None:
    if rollback.link is None or current.link is None:
        return
    before = rollback.link
    if current.link.mtu != before["mtu"] or current.link.up != before["up"]:
        host.link_configure(rollback.ifname, before["mtu"], before["up"])
    for cidr in set(before["addresses"]) - current.link.addresses:
        host.address(rollback.ifname, cidr, True)
    for cidr in current.link.addresses - set(before["addresses"]):
        host.address(rollback.ifname, cidr, False)
    for dst in set(before["routes"]) - current.link.routes:
        host.route(rollback.ifname, dst, True)
    for dst in current.link.routes - set(before["routes"]):
        host.route(rollback.ifname, dst, False)
