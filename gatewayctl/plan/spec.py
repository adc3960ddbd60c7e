"""The desired state of a gateway in the form the live host is read in, so the two compare directly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gatewayctl.atomicfile import atomic_write
from gatewayctl.compile.ir import CompiledPolicy, NftTableIR, PeerIR, SetElement
from gatewayctl.host.base import Host
from gatewayctl.host.errors import HostError
from gatewayctl.host.nftstate import NftChain, NftSet, NftTableState
from gatewayctl.plan.secrets import Secrets
from gatewayctl.render.artifacts import render_ruleset


@dataclass(frozen=True)
class PeerSpec:
    partner: str
    name: str
    public_key: str
    allowed_ips: frozenset[str]
    endpoint: str | None
    keepalive: int
    psk: str | None
    psk_file: str | None

    @property
    def label(self) -> str:
        return f"{self.partner}/{self.name}"


@dataclass(frozen=True)
class GatewaySpec:
    """What the gateway should run: interface, peers, routes and gatewayctl's table."""

    ifname: str
    listen_port: int
    public_key: str
    private_key_file: str
    mtu: int
    addresses: frozenset[str]
    routes: frozenset[str]
    peers: dict[str, PeerSpec]
    table_name: str
    table: NftTableState
    element_ends: dict[str, dt.datetime]
    needs_forwarding4: bool
    needs_forwarding6: bool


def desired_spec(policy: CompiledPolicy, host: Host, env: jinja2.Environment, secrets: Secrets,
                 loaded_at: dt.datetime, cache: Path | None = None) -> GatewaySpec:
    """Desired state; reads key files (for fingerprints) and resolves peer endpoints."""
    iface = policy.interface
    derived = secrets.public_key_of(iface.private_key_file)
    if derived != iface.public_key:
        raise HostError(f"the private key in {iface.private_key_file} does not belong to the public key in gateway.yaml "
                        f"({iface.public_key}); partners would not reach this gateway. Fix the key file or gateway.yaml.")
    peers = peer_specs(iface.peers, secrets)
    families = {a.version for a in iface.addresses}
    return GatewaySpec(
        ifname=iface.name, listen_port=iface.listen_port, public_key=iface.public_key,
        private_key_file=iface.private_key_file, mtu=iface.mtu, addresses=frozenset(str(a) for a in iface.addresses),
        routes=frozenset(str(n) for p in iface.peers for n in p.networks), peers=peers,
        table_name=policy.table.name, table=canonical_table(policy, host, env, cache),
        element_ends=element_ends(policy.table), needs_forwarding4=4 in families, needs_forwarding6=6 in families,
    )


def peer_specs(peers: Iterable[PeerIR], secrets: Secrets) -> dict[str, PeerSpec]:
    """The desired peers by public key (endpoints resolved, preshared keys read for their fingerprints)."""
    specs = {}
    for peer in peers:
        specs[peer.public_key] = PeerSpec(
            peer.partner, peer.name, peer.public_key, frozenset(str(n) for n in peer.allowed_ips),
            resolve_endpoint(peer.endpoint, f"{peer.partner}/{peer.name}"), peer.keepalive or 0,
            secrets.psk_fingerprint(peer.preshared_key_file), peer.preshared_key_file)
    return specs


def canonical_table(policy: CompiledPolicy, host: Host, env: jinja2.Environment, cache: Path | None) -> NftTableState:
    """The desired table as the kernel lists it.

    The skeleton (set declarations, chains, rules) comes from the kernel itself: the ruleset without
    elements is loaded into a throwaway namespace and read back, and the result is remembered by the
    digest of that text. Elements are spelled from the IR exactly as nft lists them; whether the two
    agree is checked on every apply (verification reads the host back) and by the contract tests."""
    table = policy.table
    bare = table.without_elements()
    text = render_ruleset(dataclasses.replace(policy, table=bare), env, policy.at)
    digest = hashlib.sha256("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")).encode()).hexdigest()
    skeleton = _cached(cache, digest)
    if skeleton is None:
        skeleton = host.nft_canonical(text, table.name)
        _remember(cache, digest, skeleton)
    elements = table.by_set()
    sets = {name: dataclasses.replace(s, elements=frozenset(e.key for e in elements.get(name, ())))
            for name, s in skeleton.sets.items()}
    return NftTableState(skeleton.name, sets, skeleton.chains)


def _cached(cache: Path | None, digest: str) -> NftTableState | None:
    if cache is None or not cache.exists():
        return None
    try:
        data = json.loads(cache.read_text())
    except ValueError:
        return None
    return table_from_json(data["table"]) if data.get("digest") == digest else None


def _remember(cache: Path | None, digest: str, table: NftTableState) -> None:
    if cache is not None and cache.parent.is_dir():
        atomic_write(cache, json.dumps({"digest": digest, "table": table_to_json(table)}).encode(), 0o600)


def element_ends(table: NftTableIR) -> dict[str, dt.datetime]:
    """When each timed element leaves the kernel by itself."""
    return {e.key: e.ends_at for e in (*table.grants4, *table.grants6, *table.icmp4, *table.icmp6) if e.ends_at}


def narrowed_ruleset(policy: CompiledPolicy, env: jinja2.Environment, loaded_at: dt.datetime,
                     live_elements: frozenset[str]) -> str:
    """The desired ruleset with only the grant elements that are live already: never wider than old or new."""
    table = policy.table

    def keep(elements: tuple[SetElement, ...]) -> tuple[SetElement, ...]:
        return tuple(e for e in elements if e.key in live_elements)

    narrowed = dataclasses.replace(table, grants4=keep(table.grants4), grants6=keep(table.grants6),
                                   icmp4=keep(table.icmp4), icmp6=keep(table.icmp6),
                                   auth_clients=tuple(c for c in table.auth_clients if c.key in live_elements))
    return render_ruleset(dataclasses.replace(policy, table=narrowed), env, loaded_at)


def resolve_endpoint(endpoint: str | None, label: str) -> str | None:
    """WireGuard takes an IP:port; a host name is resolved once, here."""
    if endpoint is None:
        return None
    host, _, port_text = endpoint.rpartition(":")
    host, port = host.strip("[]"), int(port_text)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise HostError(f"cannot resolve the endpoint {endpoint} of peer {label}: {exc.strerror}") from None
    address = str(sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0][4][0])
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"




def instant_text(when: dt.datetime) -> str:
    """An instant (UTC) as applied.json spells it, "%Y-%m-%dT%H:%M:%SZ"; cached, since 30,000 ends at
    5,000 partners fall on a few days (keyed with the offset too: equal instants in two zones are
    equal datetimes, spelt differently)."""
    return _instant_text(when, when.utcoffset())


@functools.lru_cache(maxsize=4096)
def _instant_text(when: dt.datetime, _offset: dt.timedelta | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_to_json(spec: GatewaySpec) -> dict[str, Any]:
    """The spec as JSON (no secrets: preshared keys appear as fingerprints)."""
    return {
        "ifname": spec.ifname, "listen_port": spec.listen_port, "public_key": spec.public_key,
        "private_key_file": spec.private_key_file, "mtu": spec.mtu, "addresses": sorted(spec.addresses),
        "routes": sorted(spec.routes), "table_name": spec.table_name,
        "needs_forwarding4": spec.needs_forwarding4, "needs_forwarding6": spec.needs_forwarding6,
        "peers": peers_to_json(spec.peers),
        "table": table_to_json(spec.table),
        "element_ends": {k: instant_text(v) for k, v in sorted(spec.element_ends.items())},
    }


def peers_to_json(peers: dict[str, PeerSpec]) -> dict[str, Any]:
    return {k: {"partner": p.partner, "name": p.name, "allowed_ips": sorted(p.allowed_ips), "endpoint": p.endpoint,
                "keepalive": p.keepalive, "psk": p.psk, "psk_file": p.psk_file} for k, p in peers.items()}


def spec_from_json(data: dict[str, Any]) -> GatewaySpec:
    peers = {k: PeerSpec(p["partner"], p["name"], k, frozenset(p["allowed_ips"]), p["endpoint"], p["keepalive"], p["psk"],
                         p["psk_file"]) for k, p in data["peers"].items()}
    return GatewaySpec(
        ifname=data["ifname"], listen_port=data["listen_port"], public_key=data["public_key"],
        private_key_file=data["private_key_file"], mtu=data["mtu"], addresses=frozenset(data["addresses"]),
        routes=frozenset(data["routes"]), peers=peers, table_name=data["table_name"], table=table_from_json(data["table"]),
        needs_forwarding4=data["needs_forwarding4"], needs_forwarding6=data["needs_forwarding6"],
        element_ends={k: dt.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
                      for k, v in data["element_ends"].items()},
    )


def table_to_json(table: NftTableState) -> dict[str, Any]:
    return {
        "name": table.name,
        "sets": {n: {"kind": s.kind, "type": list(s.type), "flags": list(s.flags), "elements": sorted(s.elements)}
                 for n, s in sorted(table.sets.items())},
        "chains": {n: {"hook": c.hook, "priority": c.priority, "policy": c.policy, "rules": list(c.rules)}
                   for n, c in sorted(table.chains.items())},
    }


def table_from_json(data: dict[str, Any]) -> NftTableState:
    return NftTableState(
        data["name"],
        {n: NftSet(n, s["kind"], tuple(s["type"]), tuple(s["flags"]), frozenset(s["elements"])) for n, s in data["sets"].items()},
        {n: NftChain(n, c["hook"], c["priority"], c["policy"], tuple(c["rules"])) for n, c in data["chains"].items()},
    )
