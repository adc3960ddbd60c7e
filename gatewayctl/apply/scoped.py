"""A partner-scoped apply: when only some partners' files changed since the last apply, plan and
apply at the cost of those partners, not of the estate (issue 13.7: at 5,000 partners a whole apply
loads, validates and compiles every partner file, and diffs and records every element and peer).

`attempt` decides whether the change is such a change, from the state folder's basis (apply/basis.py),
and if it is, returns the apply's plan, worked out from the changed partners alone:

- Preconditions (any one unmet: None and the reason; the caller does a whole apply, as before): a
  basis; the same code, profiles folder, gateway and UTC day as when it was written; applied.json and
  the revocations as that apply left them; every file of the profiles folder and every key file as
  then, except partner files, of which between 1 and MAX_FILES changed and none was added or removed;
  an estate of one gateway that is not a pair; the changed files load and validate without an error,
  lint finds no error in them, and compiling them gives the gateway the same warnings as before.
  Each changed partner keeps its identity (apply/basis.py: id, peers' names, keys, addresses,
  networks, endpoints, preshared key files) and has no certificate requirements, old or new.
  The table was last written by gatewayctl and the generation proves the state folder's record of it
  (apply/tablerecord.py), so the table is what the last apply left, less what expired.
- Why the rest stays right: every check between partners looks only at the identities, which are
  unchanged, so it passes as it did; every element of a grant has one of its partner's sources as its
  source, and sources of different partners never overlap (validation), so the elements of the
  changed partners are exactly those whose source is one of theirs, and nothing else in the table
  depends on them (partner_nets and the deny sets depend only on sources; the chains and set
  declarations on the gateway, the partner ids and certificate requirements; the routes on networks).
- The plan is diff() of the changed partners' desired peers and elements against the same partners'
  peers on the device and elements in the record (the set declarations, chains, partner_nets and
  routes of the last apply on both sides: the precondition makes them the desired ones). A plan that
  would replace the table, change the link or the interface's keys or port, or is blocked, is not
  scoped: the caller does a whole apply, which plans it again from everything.

What is different from a whole apply is only what is not looked at: another partner's peer changed by
hand on the device is not put back by a scoped apply (drift reports it; a whole apply repairs it,
and runs whenever anything but partner files changed). tests/test_scoped.py holds a scoped apply to a
whole one on many kinds of change: the same plan, the same applied.json, the same host.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gatewayctl import forked
from gatewayctl.apply import basis, revocations, tablerecord
from gatewayctl.apply.basis import Basis
from gatewayctl.apply.engine import Prepared, element_grants, grant_ends
from gatewayctl.compile.ir import SEEN_SETS, SESSION_SETS, CompiledPolicy
from gatewayctl.forked import Forked
from gatewayctl.host import nftrecord
from gatewayctl.host.base import Host, parse_snapshot
from gatewayctl.host.errors import HostError
from gatewayctl.host.nftstate import NftSet, NftTableState
from gatewayctl.loader import prefetch
from gatewayctl.loader.profiles import Estate, peek_names
from gatewayctl.plan.diff import diff
from gatewayctl.plan.flows import Flow, stale_flows
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import (
    GatewaySpec,
    PeerSpec,
    element_ends,
    instant_text,
    peer_specs,
    peers_to_json,
    resolve_endpoint,
)
from gatewayctl.plan.specdigest import SPEC_KEYS, digest
from gatewayctl.state import StateDir

MAX_FILES = 16  # more changed partner files than this: a whole apply (the scoped path gains little)
PARTNER_NETS = ("partner_nets4", "partner_nets6")


@dataclass(frozen=True)
class Scope:
    """A scoped apply's plan and what it needs to finish (patch applied.json, close flows, keep the basis)."""

    prep: Prepared
    partners: frozenset[str]  # the changed partners' ids
    sources: frozenset[str]  # their sources as element keys spell them
    secrets: Secrets
    basis: Basis  # the basis to keep once the apply succeeds (applied.json and revocations: stat them after)
    document: Forked[tuple[str, dict[str, str]]]  # applied.json's digest and parts (document_parts), being spelt


class Early(Protocol):
    """The host's snapshot being taken in a forked child (host/real.py ForkedSnapshot)."""

    def result(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


def attempt(profiles: Path, state: StateDir, host: Host, now: dt.datetime, first_read_ns: int,
            lint_errors: Callable[[Estate, dict[str, Any], list[Path]], tuple[str, ...]],
            early: Callable[[str, str, Callable[[], Mapping[str, Any] | None]], Early] | None = None) -> Scope | str:
    """The scoped plan of this apply, or why there is none (the caller then applies the whole estate).
    `lint_errors(estate, cas, files)`: the lint errors apply would refuse on, of the changed files.
    `early(ifname, table, record)`: start reading the host while the changed files are compiled
    (`record()` gives the table record).
    `first_read_ns`: when this process could first have read a profile file (apply/basis.py)."""
    old = basis.load(state.root)
    if old is None:
        return "no record of the last apply's profiles"
    names = peek_names(profiles)
    if names is None:
        return "gateway.yaml names no interface"
    # a forked child reads the host from now on (it loads the table record itself); when the apply turns
    # out whole it is stopped again (its cost is the other core's; it saves a scoped apply ~0.05 s)
    reading = early(*names, lambda: tablerecord.load(state.root)) if early is not None and forked.enabled() else None
    try:
        return _changes(profiles, state, host, now, first_read_ns, lint_errors, old, names, reading)
    finally:
        if reading is not None:
            reading.stop()


def _changes(profiles: Path, state: StateDir, host: Host, now: dt.datetime, first_read_ns: int,
             lint_errors: Callable[[Estate, dict[str, Any], list[Path]], tuple[str, ...]], old: Basis,
             names: tuple[str, str], reading: Early | None) -> Scope | str:
    racy = basis.racy_threshold(first_read_ns)
    files = basis.tree(profiles, racy)  # before anything is read
    if files.keys() != old.files.keys():
        return "files were added to or removed from the profiles folder"
    changed = []
    for rel, stat in files.items():
        kept = basis.same(old.files[rel], stat, profiles / rel)
        if kept is None:
            if rel not in old.partners:
                return f"{rel} changed"
            changed.append(rel)
        else:
            files[rel] = kept
    if not changed:
        return "no partner file changed"
    if len(changed) > MAX_FILES:
        return f"{len(changed)} partner files changed"
    prefetch.discard()  # only partner files changed: the whole estate is not likely to be loaded, its core is wanted
    keys = basis.key_files(list(old.keys), racy)
    if any(stat is None or stat != old.keys[path] for path, stat in keys.items()):
        return "a key file changed"
    if old.applied is None or basis.file_stat(state.root / "applied.json") != old.applied:
        return "applied.json changed since the last apply"
    if basis.file_stat(state.root / revocations.FILE) != old.revocations:
        return "the revocations changed since the last apply"
    if old.stamp != basis.stamp(profiles, old.stamp[2], now.date().isoformat()):
        return "other code, profiles folder or day"
    if old.ca_end is not None and now.timestamp() >= old.ca_end:
        return "a CA certificate of the estate has expired since (lint GW701 looks at every partner)"
    for text, address in (old.endpoints or {}).values():
        try:
            if resolve_endpoint(text, "a peer") != address:
                return f"the endpoint {text} resolves to another address now"
        except HostError:
            return f"the endpoint {text} no longer resolves"
    known = tablerecord.load(state.root)
    if known is None or known.get("table") != names[1]:
        return "no record of the table"
    return _compiled(profiles, state, host, now, lint_errors, old, files, keys, changed, known, reading)


def _compiled(profiles: Path, state: StateDir, host: Host, now: dt.datetime,
              lint_errors: Callable[[Estate, dict[str, Any], list[Path]], tuple[str, ...]], old: Basis,
              files: dict[str, basis.Stat], keys: dict[str, basis.Stat], changed: list[str], known: Mapping[str, Any],
              reading: Early | None) -> Scope | str:
    from gatewayctl.compile.compiler import compile_estate
    from gatewayctl.errors import ProfileErrors
    from gatewayctl.loader.profiles import gc_paused, load_estate
    from gatewayctl.validate import validate_estate

    paths = [profiles / rel for rel in sorted(changed)]
    try:
        with gc_paused():
            estate, cas = validate_estate(load_estate(profiles, None, only=paths))
            policy = compile_estate(estate, cas, now)
    except ProfileErrors:
        return "the changed files have errors"
    if estate.several or estate.gateway.model.ha is not None or policy.gateway != old.stamp[2]:
        return "an estate of several gateways, or a pair"
    gateway_warnings = policy.warnings[:len(policy.warnings) - sum(len(w) for w in policy.partner_warnings)]
    if gateway_warnings != old.gateway_warnings:
        return "the gateway's warnings differ"
    partners = dict(old.partners)
    for loaded, warnings in zip(estate.partners, policy.partner_warnings, strict=True):
        rel = basis.relative(profiles, loaded.doc.path)
        ident = basis.identity(loaded)
        if rel not in old.partners or old.partners[rel][1] != ident or ident[2]:
            return f"{rel}: the partner's identity or certificate requirements changed"
        partners[rel] = (ident[0], ident, warnings)
        if files.get(rel) is None:  # changed too close to this read for its times to tell: its text does
            files[rel] = basis.text_digest(loaded.doc.text.encode())
    ids = frozenset(p.id for p in policy.partners)
    found = revocations.load(state)
    standing_mine, ended = revocations.still_granted([r for r in found if r.partner in ids], policy)
    standing = [r for r in found if r.partner not in ids or r in standing_mine]
    restricted = revocations.restrict(policy, standing_mine)
    secrets = Secrets()
    part = Part(ids, frozenset(_spelled(str(net)) for p in restricted.interface.peers for net in p.allowed_ips),
                restricted, peer_specs(restricted.interface.peers, secrets), now)
    # applied.json is spelt from here on by a forked child (the other core), while lint runs and the host
    # is read, diffed and changed
    document = Forked(lambda: document_parts(state.root, part))
    scope: Scope | str = "stopped"
    try:
        if lint_errors(estate, cas, paths):
            return "lint finds errors"
        reading_names = (policy.interface.name, policy.table.name)
        try:
            raw = reading.result() if reading is not None else host.snapshot(*reading_names, known)
        except HostError:
            return "the host could not be read"
        if (raw.get("ifname"), raw.get("table")) != reading_names:
            return "the interface or table was renamed"
        scope = _plan(estate, policy, old, files, keys, partners, known, raw, part, secrets, document, standing, ended)
        return scope
    finally:
        if isinstance(scope, str):  # no scoped apply: nobody takes the document
            document.stop()


@dataclass(frozen=True)
class Part:
    """The changed partners' part of the desired state, from their files alone."""

    partners: frozenset[str]  # their ids
    sources: frozenset[str]  # their sources as element keys spell them
    policy: CompiledPolicy  # compiled from their files, revoked grants taken out
    peers: dict[str, PeerSpec]  # their peers
    now: dt.datetime


def _plan(estate: Estate, policy: CompiledPolicy, old: Basis, files: dict[str, basis.Stat],
          keys: dict[str, basis.Stat], partners: dict[str, tuple[str, Any, tuple[str, ...]]], known: Mapping[str, Any],
          raw: dict[str, Any], part: Part, secrets: Secrets, document: Forked[tuple[str, dict[str, str]]],
          standing: list[revocations.Revocation], ended: list[revocations.Revocation]) -> Scope | str:
    from gatewayctl.compile.origin import grant_locator

    restricted, now, sources = part.policy, part.now, part.sources
    if not raw.get("nft_proven") or list(raw.get("nft_generation") or ()) != known.get("generation"):
        return "the table changed since the last apply"
    raw = {**raw, "nft_record": known["record"]}
    # the changed partners' peers and elements only (and partner_nets whole): decoding the whole record
    # and parsing every peer is the estate's cost, not the change's
    live = parse_snapshot({**raw, "nft_record": _theirs(known["record"], sources)},
                          peers={p.public_key for p in restricted.interface.peers})
    if live.nft is None or live.wg is None or live.link is None:
        return "no table, device or interface"
    mine = live.nft
    by_set = restricted.table.by_set()
    iface = restricted.interface
    families = {a.version for a in iface.addresses}
    desired = GatewaySpec(
        ifname=iface.name, listen_port=iface.listen_port, public_key=iface.public_key,
        private_key_file=iface.private_key_file, mtu=iface.mtu, addresses=frozenset(str(a) for a in iface.addresses),
        routes=frozenset(old.routes), peers=part.peers, table_name=restricted.table.name,
        table=NftTableState(mine.name, {
            name: s if name in PARTNER_NETS else NftSet(name, s.kind, s.type, s.flags, frozenset(
                e.key for e in by_set.get(name, ()))) for name, s in mine.sets.items()}, mine.chains),
        element_ends=element_ends(restricted.table), needs_forwarding4=4 in families, needs_forwarding6=6 in families)
    if set(by_set) - set(mine.sets) - set(SESSION_SETS) - set(SEEN_SETS):
        return "the compiled sets are not the table's"
    if any(e.key.split(" ", 1)[0] not in sources for name, elements in by_set.items() if name not in PARTNER_NETS
           for e in elements):
        # every element's source is one of its partner's sources as written (validation keeps sources
        # apart, so intervals.disjoint never cuts one): what the filters above and document_parts rely on
        return "an element's source is not one of its partner's sources"
    plan = diff(desired, live, now, {})
    if (plan.blockers or plan.nft_replace or plan.link_changes or plan.private_key or plan.listen_port is not None
            or plan.remove_guard or plan.peers_remove):
        return "the plan goes beyond the changed partners' peers and elements"
    prep = Prepared(restricted, desired, raw, live, plan, now, {}, revoked=tuple(standing), unrevoked=tuple(ended),
                    locate=grant_locator(estate, policy))
    kept = Basis(old.stamp, files, keys, partners, old.gateway_warnings, old.routes, None, None, old.ca_end,
                 old.endpoints)
    return Scope(prep, part.partners, sources, secrets, kept, document)


def _theirs(record: Mapping[str, Any], sources: frozenset[str]) -> dict[str, Any]:
    """The table record (host/nftrecord.py) with only the elements whose source is one of `sources`
    (partner_nets whole)."""
    sets = []
    for name, kind, types, flags, elements, ends, comments in record["sets"]:
        if name not in PARTNER_NETS:
            elements = [k for k in elements if k.split(" ", 1)[0] in sources]
            ends = {k: ends[k] for k in elements if k in ends}
            comments = {k: comments[k] for k in elements if k in comments}
        sets.append([name, kind, types, flags, elements, ends, comments])
    return {**record, "sets": sets}


def warnings(scope: Scope) -> list[str]:
    """The compile warnings a whole apply prints, in its order: the gateway's, then each partner's
    (the basis keeps the partners in the estate's order)."""
    return [*scope.basis.gateway_warnings, *(w for entry in scope.basis.partners.values() for w in entry[2])]


def _spelled(network: str) -> str:
    """A source as element keys spell it: a single address without its prefix length (plan/diff.py _owners)."""
    address, _, length = network.partition("/")
    return address if not length or length == ("128" if ":" in address else "32") else network


def document_parts(state_root: Path, part: Part) -> tuple[str, dict[str, str]]:
    """applied.json's parts (apply_cmd.document_parts) from the last one, the changed partners' peers,
    elements, ends and grants replaced by theirs now."""
    from gatewayctl.apply.restore import SKELETON

    with open(state_root / "applied.json", "rb") as handle:
        applied = json.loads(handle.read())
    sources, policy = part.sources, part.policy
    applied["peers"] = {k: p for k, p in applied["peers"].items() if p["partner"] not in part.partners}
    applied["peers"].update(peers_to_json(part.peers))
    by_set = policy.table.by_set()
    for name, data in applied["table"]["sets"].items():
        if name in PARTNER_NETS:
            continue
        data["elements"] = sorted([k for k in data["elements"] if k.split(" ", 1)[0] not in sources]
                                  + [e.key for e in by_set.get(name, ())])
    ends = {k: instant_text(v) for k, v in element_ends(policy.table).items()}
    for field, new in (("element_ends", ends), ("element_grants", element_grants(policy))):
        applied[field] = {k: v for k, v in applied[field].items() if k.split(" ", 1)[0] not in sources}
        applied[field].update(new)
    applied["grant_ends"] = {g: v for g, v in applied["grant_ends"].items() if g.partition("/")[0] not in part.partners}
    applied["grant_ends"].update(grant_ends(policy))
    before, now = applied["applied_at"], part.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    applied["applied_at"] = now
    # the skeleton is the last one (the same gateway and partners, no certificates changed): only its
    # header's instants ("compiled for", "exact for loading at") are this apply's
    lines = applied[SKELETON].split("\n")
    head = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    applied[SKELETON] = "\n".join([line.replace(before, now) for line in lines[:head]] + lines[head:])
    parts = {k: applied[k] for k in (*SPEC_KEYS, "applied_at", "element_grants", "grant_ends", SKELETON)}
    spec_digest = digest({k: parts[k] for k in SPEC_KEYS})
    return spec_digest, {k: json.dumps(v, sort_keys=True, separators=(",", ":")) for k, v in parts.items()}


def close_stale_flows(scope: Scope, host: Host) -> list[Flow]:
    """Delete the conntrack entries of flows that the table now in force no longer allows, as a whole
    apply does (engine.close_stale_flows): judged against the whole table, the changed partners'
    elements as planned and every other element as the table record holds it now (the kernel's, less
    what ended by its timer since; open sessions included). Decoding the whole record is this step's
    cost only (it runs in a forked child while applied.json is written)."""
    prep = scope.prep
    record = nftrecord.decode(prep.live_raw["nft_record"], time.time())
    sources = scope.sources
    sets = {}
    for name, live in record.sets.items():
        planned = prep.desired.table.sets.get(name)
        if name in PARTNER_NETS or planned is None or name in SESSION_SETS or name in SEEN_SETS:
            sets[name] = live
        else:
            others = frozenset(k for k in live.elements if k.split(" ", 1)[0] not in sources)
            sets[name] = dataclasses.replace(live, elements=others | planned.elements)
    stale = stale_flows(host.conntrack_list(), sets, prep.policy.table.auth_port, prep.desired.addresses)
    if stale:
        host.conntrack_delete([flow.raw for flow in stale])
    return stale


def key_paths(policy: CompiledPolicy) -> list[str]:
    """The key files the desired state is read with: the gateway's private key, the preshared keys."""
    return [policy.interface.private_key_file,
            *sorted({p.preshared_key_file for p in policy.interface.peers if p.preshared_key_file})]


def whole(state_root: Path, profiles: Path, files: dict[str, basis.Stat], estate: Estate, policy: CompiledPolicy,
          desired: GatewaySpec, keys: dict[str, basis.Stat], cas: Mapping[str, list[Any]]) -> Basis:
    """The basis after a whole apply (`files`: the profiles folder's stats taken before it was loaded,
    `keys` the key files' before they were read; `cas`: the estate's CA certificates by file)."""
    partners = {basis.relative(profiles, loaded.doc.path): (loaded.model.id, basis.identity(loaded), warnings)
                for loaded, warnings in zip(estate.partners, policy.partner_warnings, strict=True)}
    texts = {basis.relative(profiles, doc.path): doc.text
             for doc in (estate.gateway.doc, estate.services.doc, *(p.doc for p in estate.partners))}
    files = {rel: basis.text_digest(texts[rel].encode()) if stat is None and rel in texts else stat
             for rel, stat in files.items()}
    gateway_warnings = policy.warnings[:len(policy.warnings) - sum(len(w) for w in policy.partner_warnings)]
    ends = [cert.not_valid_after_utc.timestamp() for certs in cas.values() for cert in certs]
    endpoints = {p.public_key: (p.endpoint, desired.peers[p.public_key].endpoint) for p in policy.interface.peers
                 if p.endpoint and not _literal(p.endpoint)}
    return Basis(basis.stamp(profiles, policy.gateway, policy.at.date().isoformat()), files,
                 keys, partners, tuple(gateway_warnings), tuple(sorted(desired.routes)),
                 None, None, min(ends) if ends else None, endpoints)


def _literal(endpoint: str) -> bool:
    """Whether an endpoint's host is an address (nothing to resolve), not a name."""
    host = endpoint.rpartition(":")[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def keep(state_root: Path, kept: Basis) -> None:
    """Write the basis, with applied.json and the revocations as this apply leaves them."""
    basis.save(state_root, dataclasses.replace(kept, applied=basis.file_stat(state_root / "applied.json"),
                                                revocations=basis.file_stat(state_root / revocations.FILE)))
