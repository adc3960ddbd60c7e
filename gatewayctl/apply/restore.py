"""restore: bring a gateway back after a reboot or a crash from the state folder, closed first.

What comes back is the last applied state as `applied.json` records it (interface, key file names,
peers with their resolved endpoints, addresses, routes, the table's elements with their grants and
absolute end instants, the ruleset skeleton apply rendered), minus what has ended since and what is
revoked (`revocations.json`). Nothing is compiled: the profiles may have moved on since that apply.

Order: the guard table (every partner packet dropped), then the interface (wireguard-go where the
kernel has no module), key, peers, addresses and routes, then gatewayctl's table with every kernel
timer recomputed from its absolute end (an element whose end has passed is left out), then a read
back of the whole host against the record; only when nothing differs is the guard lifted. Any
failure leaves the guard in force. A host that already matches the record is left untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import jinja2

from gatewayctl.apply.failpoints import checkpoint
from gatewayctl.apply.revocations import Revocation
from gatewayctl.apply.revocations import load as load_revocations
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.host.base import Host, LiveState, read
from gatewayctl.host.errors import HostError
from gatewayctl.host.wgtypes import DeviceUpdate, PeerConfig, public_of
from gatewayctl.plan.diff import Plan, diff
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import GatewaySpec, spec_from_json
from gatewayctl.plan.specdigest import SPEC_KEYS
from gatewayctl.render.artifacts import render_guard, render_ruleset
from gatewayctl.render.environment import nft_timeout
from gatewayctl.state import StateDir

SKELETON = "ruleset_skeleton"  # the key apply records the table's declarations and rules under, in applied.json
# What an element key or a grant id may hold as read back from the state folder: addresses, prefixes,
# ranges, protocol names, `.` concatenations and `: jump chain` verdicts; never nft syntax of its own.
_KEY = re.compile(r"[0-9A-Za-z.:/_ -]{1,200}")
_GRANT = re.compile(r"[A-Za-z0-9_./#+-]{1,200}")
_COMMENT_MAX = 120  # as the ruleset writes comments (render/environment.py nft_element_tail)


class StateError(Exception):
    """The state folder cannot be restored from (missing, unreadable or inconsistent record)."""


class RestoreError(Exception):
    """Restoring failed; `guard` names the guard table that still blocks partner traffic (None: none could be loaded)."""

    def __init__(self, message: str, guard: str | None) -> None:
        super().__init__(message)
        self.guard = guard


@dataclass(frozen=True)
class Record:
    """The last applied state, as restore needs it."""

    spec: GatewaySpec
    skeleton: str
    grants: dict[str, list[str]]  # element key -> the grants behind it (comments in the kernel)
    labels: dict[str, str]  # peer public key -> partner/peer
    revoked: tuple[Revocation, ...]


@dataclass(frozen=True)
class Outcome:
    """What restore did: the differences it repaired (empty: the host matched) and when each step ended."""

    changes: tuple[str, ...]
    steps: dict[str, float]


def skeleton(policy: CompiledPolicy, env: jinja2.Environment) -> str:
    """The ruleset without any element (declarations and rules), recorded by apply for restore."""
    bare = dataclasses.replace(policy, table=policy.table.without_elements())
    return render_ruleset(bare, env, policy.at)


def load_record(state: StateDir) -> Record | None:
    """The record of the last apply; None when nothing was applied here. Raises StateError naming the
    file and what is wrong with it."""
    path = state.root / "applied.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        spec = spec_from_json(data)
        text = data[SKELETON]
        grants = {str(k): [str(g) for g in v] for k, v in data.get("element_grants", {}).items()}
        labels = {k: f"{p['partner']}/{p['name']}" for k, p in data["peers"].items()}
    except KeyError as exc:
        hint = " (it was written before gatewayctl recorded it: run `gatewayctl apply` once)" if exc.args[0] == SKELETON else ""
        raise StateError(f"{path}: the last applied state must hold {exc.args[0]!r} and does not{hint}") from None
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise StateError(f"{path}: the last applied state must be the JSON apply wrote; it is not: "
                         f"{_short(str(exc) or type(exc).__name__)}") from None
    _check_names(path.name, spec)
    _check_digest(path.name, data)
    _check_skeleton(path.name, text, spec.table_name)
    _check_elements(path.name, spec, grants)
    try:
        revoked = tuple(load_revocations(state))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise StateError(f"{state.root / 'revocations.json'}: the revocations must be the JSON revoke wrote; they are not: "
                         f"{_short(str(exc))}") from None
    return Record(spec, text, grants, labels, revoked)


_TABLE = re.compile(r"gatewayctl(_[a-z0-9]{1,20})?")  # model/gateway.py Firewall.table
_IFNAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,14}")
_NFT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # every set and chain name the ruleset template declares


def _check_names(name: str, spec: GatewaySpec) -> None:
    """Names restore writes into nft commands and the guard: each must be a plain name of the kind
    gatewayctl itself declares, so that no text from the file can become a command of its own."""
    if not _TABLE.fullmatch(spec.table_name):
        raise StateError(f"{name}: the table must be gatewayctl or gatewayctl_<suffix>; it is {_short(spec.table_name)!r}")
    if not _IFNAME.fullmatch(spec.ifname):
        raise StateError(f"{name}: the interface must be an interface name; it is {_short(spec.ifname)!r}")
    for kind, names in (("set", spec.table.sets), ("chain", spec.table.chains)):
        bad = next((n for n in names if not _NFT_NAME.fullmatch(n)), None)
        if bad is not None:
            raise StateError(f"{name}: a {kind} name must be lower-case letters, digits and _; it is {_short(bad)!r}")


def _check_digest(name: str, data: dict[str, Any]) -> None:
    """The record's digest (written by apply and revoke) must match what it holds: an element or rule
    added by hand or by corruption would otherwise be loaded and then taken as what was applied."""
    from gatewayctl.plan.specdigest import digest

    spec_part = {k: data[k] for k in SPEC_KEYS if k in data}
    if data.get("digest") != digest(spec_part):
        raise StateError(f"{name}: the last applied state does not match its digest (changed since apply or revoke "
                         "wrote it); restore loads only what was applied: run `gatewayctl apply`")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def _check_skeleton(name: str, text: str, table: str) -> None:
    """The skeleton may define gatewayctl's table and nothing else: at brace depth 0 only the three
    lines of an atomic replace of that table (anything else could touch other tables when loaded)."""
    allowed = {f"table inet {table} {{}}", f"delete table inet {table}", f"table inet {table} {{"}
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        bare = re.sub(r'"[^"]*"', '""', line).split("#", 1)[0].strip()  # strings first: a '#' in one is not a comment
        if depth == 0 and bare and bare not in allowed:
            raise StateError(f"{name}: {SKELETON} line {number} must belong to table inet {table}; it is {_short(bare)!r}")
        depth += bare.count("{") - bare.count("}")
        if depth < 0:
            raise StateError(f"{name}: {SKELETON} line {number} closes a brace it never opened")
    if depth != 0:
        raise StateError(f"{name}: {SKELETON} ends with {depth} brace(s) open")


def _check_elements(name: str, spec: GatewaySpec, grants: dict[str, list[str]]) -> None:
    for set_name, data in spec.table.sets.items():
        for key in data.elements:
            if not _KEY.fullmatch(key):
                raise StateError(f"{name}: an element of set {set_name} must be addresses, ports and protocols; "
                                 f"it is {_short(key)!r}")
    for key, ids in grants.items():
        bad = next((g for g in ids if not _GRANT.fullmatch(g)), None)
        if bad is not None:
            raise StateError(f"{name}: the grants of element {_short(key)!r} must be grant ids; one is {_short(bad)!r}")


def guard_nets(spec: GatewaySpec, live: LiveState | None = None) -> list[str]:
    """The tunnel pool and partner LANs, recorded and live: what the guard drops by address."""
    names = ("partner_nets4", "partner_nets6")
    nets = {k for n in names if n in spec.table.sets for k in spec.table.sets[n].elements}
    if live is not None and live.nft is not None:
        nets |= {k for n in names if n in live.nft.sets for k in live.nft.sets[n].elements}
    return sorted(nets)


def load_guard(host: Host, env: jinja2.Environment, table: str, ifname: str, nets: list[str]) -> str:
    """Load (or replace) the guard table that drops all partner traffic; return its name."""
    name = f"{table}_guard"
    host.nft_load(render_guard(name, ifname, nets, env))
    return name


def restore(host: Host, record: Record, env: jinja2.Environment, secrets: Secrets, now: dt.datetime) -> Outcome:
    """Make the host what the record says (as of `now`), guarded; raise RestoreError, guard left in force,
    when anything fails or the read-back differs."""
    spec = _in_force(record, now)
    live = _live(host, spec)
    plan = diff(spec, live, now, record.labels)
    if plan.empty:
        return Outcome((), {})
    steps: dict[str, float] = {}
    guard: str | None = None
    try:
        guard = load_guard(host, env, spec.table_name, spec.ifname, guard_nets(spec, live))
        steps["guard"] = time.time()
        checkpoint("restore-after-guard")
        if plan.blockers:
            raise HostError("; ".join(plan.blockers))
        _interface(host, spec, plan, live, secrets)
        steps["interface"] = time.time()
        checkpoint("restore-before-table")
        _table(host, record, spec, plan, now)
        steps["table"] = time.time()
        left = [str(c) for c in diff(spec, read(host, spec.ifname, spec.table_name), now, record.labels).changes
                if c.kind != "guard-left"]
        if left:
            raise HostError("the host does not match the last applied state after restoring: " + "; ".join(left[:5]))
        checkpoint("restore-before-lift")
    except Exception as exc:  # every failure: the guard stays, the reason goes to the caller
        held = f"; partner traffic stays blocked by the guard table inet {guard}" if guard else \
            "; and the guard table could not be loaded: partner traffic may pass unfiltered"
        raise RestoreError(f"{exc}{held}", guard) from exc
    steps["verified"] = time.time()  # the guard goes from here on: the earliest moment a packet may pass
    host.nft_delete(guard)
    steps["guard_lifted"] = time.time()
    return Outcome(tuple(str(c) for c in plan.changes), steps)


def _in_force(record: Record, now: dt.datetime) -> GatewaySpec:
    """The recorded spec without the elements that have ended by `now` or that a revocation covers."""
    spec = record.spec

    def ended(key: str) -> bool:
        end = spec.element_ends.get(key)
        return end is not None and end <= now

    def revoked(key: str) -> bool:
        ids = record.grants.get(key, [])
        return bool(ids) and all(any(r.covers(g) for r in record.revoked) for g in ids)

    sets = {name: dataclasses.replace(s, elements=frozenset(k for k in s.elements if not ended(k) and not revoked(k)))
            for name, s in spec.table.sets.items()}
    return dataclasses.replace(spec, table=dataclasses.replace(spec.table, sets=sets))


def _live(host: Host, spec: GatewaySpec) -> LiveState:
    """The host now. A UAPI socket left by a wireguard-go that died, with its interface gone, is a
    crashed device to start again, not a device that refuses to answer."""
    live = read(host, spec.ifname, spec.table_name)
    if live.link is None and live.wg is None and live.wg_error is not None:
        live = dataclasses.replace(live, wg_error=None, wg_backend=None)
    return live


def _interface(host: Host, spec: GatewaySpec, plan: Plan, live: LiveState, secrets: Secrets) -> None:
    """Interface (created when missing), link settings, key, port, peers, addresses and routes, as recorded."""
    backend = host.wg_create(spec.ifname) if plan.create_interface else live.wg_backend
    if backend is None:
        raise HostError(f"{spec.ifname} exists but no WireGuard device answers for it")
    if plan.mtu is not None or plan.up:
        host.link_configure(spec.ifname, plan.mtu, True if plan.up else None)
    for cidr in plan.addresses_add:
        host.address(spec.ifname, cidr, True)
    for cidr in plan.addresses_remove:
        host.address(spec.ifname, cidr, False)
    host.wg_update(spec.ifname, backend, DeviceUpdate(
        listen_port=plan.listen_port, private_key=_private_key(spec, secrets) if plan.private_key else None,
        upsert=tuple(_peer(spec, key, secrets) for key in plan.peers_upsert), remove=plan.peers_remove))
    for dst in plan.routes_add:
        host.route(spec.ifname, dst, True)
    for dst in plan.routes_remove:
        host.route(spec.ifname, dst, False)


def _private_key(spec: GatewaySpec, secrets: Secrets) -> bytes:
    key = secrets.key(spec.private_key_file, "private key")
    if public_of(key) != spec.public_key:
        raise HostError(f"the private key in {spec.private_key_file} no longer belongs to the applied public key "
                        f"{spec.public_key}: the key file changed since the last apply")
    return key


def _peer(spec: GatewaySpec, key: str, secrets: Secrets) -> PeerConfig:
    peer = spec.peers[key]
    psk = secrets.key(peer.psk_file, "preshared key") if peer.psk_file else None
    return PeerConfig(key, peer.endpoint, peer.keepalive, tuple(sorted(peer.allowed_ips)), psk)


def _table(host: Host, record: Record, spec: GatewaySpec, plan: Plan, now: dt.datetime) -> None:
    """The whole table in one transaction (skeleton plus elements), or only the elements that differ."""
    if plan.nft_replace:
        adds = [f"add element inet {spec.table_name} {name} {{ {', '.join(texts)} }}\n"
                for name, texts in _element_texts(record, spec, {n: s.elements for n, s in spec.table.sets.items()}, now)]
        host.nft_load(record.skeleton.rstrip("\n") + "\n" + "".join(adds))
    elif plan.nft_delete or plan.nft_add:
        add = dict(_element_texts(record, spec, plan.nft_add, now))
        host.nft_elements(spec.table_name, {k: list(v) for k, v in plan.nft_delete.items()}, add)


def _element_texts(record: Record, spec: GatewaySpec, keys: Any, now: dt.datetime) -> list[tuple[str, list[str]]]:
    """Each set's elements as `add element` text: the timer is the time left to the element's absolute
    end (counted from `now`), the comment names its grants as apply wrote it."""
    result = []
    for name in sorted(keys):
        texts = []
        for key in sorted(keys[name]):
            text = key
            end = spec.element_ends.get(key)
            if end is not None:
                text += f" timeout {nft_timeout(max(int((end - now).total_seconds()), 1))}"
            ids = record.grants.get(key)
            if ids:
                comment = " ".join(ids)
                text += f' comment "{comment if len(comment) <= _COMMENT_MAX else f"{ids[0]} +{len(ids) - 1}"}"'
            texts.append(text)
        if texts:
            result.append((name, texts))
    return result
