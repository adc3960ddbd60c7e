"""The checks only an estate of several gateways needs, across all of them (loader/fleet.py has the rules).

They run on the whole estate before it is cut to one gateway, whichever gateway a command asks for:
a problem with gateway B is an error on gateway A's build too, as every other input error is.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from gatewayctl.errors import ProfileError
from gatewayctl.loader.fleet import fronted_services, in_pool, partner_gateways, route
from gatewayctl.loader.yaml12 import Document
from gatewayctl.model import GatewayFile, PartnerFile, ServicesFile
from gatewayctl.model.types import IPNetwork
from gatewayctl.suggest import did_you_mean


@dataclass(frozen=True)
class Fleet:
    """The whole estate's gateways: each one's settings, and where gateway.yaml says them."""

    gateways: dict[str, GatewayFile]
    doc: Document
    several: bool  # gateway.yaml has a `gateways:` mapping (even of one)


def fleet_errors(fleet: Fleet, services: ServicesFile | None,
                 partners: list[tuple[PartnerFile, Document]]) -> list[ProfileError]:
    """Every cross-gateway problem, each at its file and line."""
    errors = _pool_overlaps(fleet)
    if fleet.several:
        errors += _internal_over_pools(fleet)
        errors += _lan_claims(fleet, partners)
    fronted = fronted_services(fleet.gateways, services)
    for model, doc in partners:
        errors += _partner_errors(fleet, model, doc, fronted, services)
    return errors


def _internal_over_pools(fleet: Fleet) -> list[ProfileError]:
    """A gateway's internal networks may not cover another gateway's pool or tunnel addresses: a
    service there would be a partner (or the other gateway) reached as an internal service."""
    errors = []
    for name, gw in fleet.gateways.items():
        for other, og in fleet.gateways.items():
            if other == name:
                continue
            theirs = [*og.wireguard.pool, *(a.network for a in og.wireguard.addresses)]
            errors += [fleet.doc.error(("gateways", name, "internal_networks", i), f"gateways.{name}.internal_networks"
                                       f"[{i}]: {net} overlaps {hit}, the tunnel pool or address of gateway {other!r}")
                       for i, net in enumerate(gw.internal_networks) for hit in theirs if _overlap(net, hit)][:1]
    return errors


@dataclass(frozen=True)
class _Lan:
    net: IPNetwork
    partner: str
    doc: Document
    loc: tuple[int | str, ...]
    gateways: frozenset[str]


def _lan_claims(fleet: Fleet, partners: list[tuple[PartnerFile, Document]]) -> list[ProfileError]:
    """Partner LANs across the fleet: none inside any gateway's pool or tunnel addresses, and none
    overlapping another partner's (the internal networks can route a LAN to one gateway only).
    Overlaps between partners of a common gateway are that gateway's own check (validate_addresses)."""
    available = list(fleet.gateways)
    spans = [(g, n) for g, gw in fleet.gateways.items() for n in (*gw.wireguard.pool, *(a.network for a in gw.wireguard.addresses))]
    lans = []
    errors = []
    for model, doc in partners:
        order = partner_gateways(model, available)
        for j, peer in enumerate(model.peers):
            mine = frozenset(g for g in (peer.gateways or order) if g in available)
            for k, lan in enumerate(peer.networks):
                loc = ("peers", j, "networks", k)
                lans.append(_Lan(lan, model.id, doc, loc, mine))
                hit = next(((g, n) for g, n in spans if g not in mine and _overlap(lan, n)), None)
                if hit is not None:
                    errors.append(doc.error(loc, f"peers[{j}].networks[{k}]: {lan} overlaps {hit[1]}, the tunnel pool or "
                                            f"address of gateway {hit[0]!r}; a partner network may not claim it"))
    for one, two in _overlapping(lans):
        if one.partner != two.partner and not one.gateways & two.gateways:
            for at, seen in ((one, two), (two, one)):
                errors.append(at.doc.error(at.loc, f"peers[{at.loc[1]}].networks[{at.loc[3]}]: {at.net} of partner "
                                           f"{at.partner!r} overlaps {seen.net} of partner {seen.partner!r} "
                                           f"({seen.doc.shown_path}:{seen.doc.line_of(seen.loc)}) on another gateway; "
                                           "the internal networks route a LAN to one gateway only"))
    return errors


def _overlapping(lans: list[_Lan]) -> list[tuple[_Lan, _Lan]]:
    """Pairs of overlapping LANs: a sweep over the ranges sorted by start (no pairwise comparison)."""
    pairs = []
    for version in (4, 6):
        ordered = sorted((x for x in lans if x.net.version == version),
                         key=lambda x: (int(x.net.network_address), -x.net.prefixlen))
        open_: list[_Lan] = []
        for lan in ordered:
            start = int(lan.net.network_address)
            open_ = [o for o in open_ if int(o.net.broadcast_address) >= start]
            pairs += [(o, lan) for o in open_]
            open_.append(lan)
    return pairs


def _overlap(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def _pool_overlaps(fleet: Fleet) -> list[ProfileError]:
    errors = []
    for (one, a), (two, b) in itertools.combinations(fleet.gateways.items(), 2):
        for i, net in enumerate(b.wireguard.pool):
            for other in a.wireguard.pool:
                if _overlap(net, other):
                    errors.append(fleet.doc.error(("gateways", two, "wireguard", "pool", i),
                                                  f"gateways.{two}.wireguard.pool: {net} overlaps the pool {other} of "
                                                  f"gateway {one!r}; pools of different gateways never overlap "
                                                  "(a partner address would belong to two gateways)"))
    return errors


def _partner_errors(fleet: Fleet, model: PartnerFile, doc: Document, fronted: dict[str, set[str]],
                    services: ServicesFile | None) -> list[ProfileError]:
    available = list(fleet.gateways)
    errors = _named_gateways(fleet, model, doc, available)
    order = partner_gateways(model, available)
    for j, peer in enumerate(model.peers):
        mine = [g for g in (peer.gateways or order) if g in available]
        for k, g in enumerate(peer.gateways or []):
            if g not in order:
                errors.append(doc.error(("peers", j, "gateways", k), f"peers[{j}].gateways[{k}]: {g!r} is not one of "
                                        f"the partner's gateways {order}; a peer connects through some of them"))
        pools = {g: list(fleet.gateways[g].wireguard.pool) for g in mine}
        for g, pool in pools.items():
            if not any(in_pool(a, pool) for a in peer.addresses):
                errors.append(doc.error(("peers", j, "addresses"), f"peers[{j}].addresses: peer {peer.name!r} connects "
                                        f"through gateway {g!r} but has no tunnel address in its pool "
                                        f"{', '.join(map(str, pool))}"))
        for k, a in enumerate(peer.addresses):
            if fleet.several and not any(in_pool(a, p) for p in pools.values()):
                errors.append(doc.error(("peers", j, "addresses", k), f"peers[{j}].addresses[{k}]: {a} is in the pool "
                                        f"of none of the peer's gateways {mine}"))
        for k, lan in enumerate(peer.networks):
            errors += [doc.error(("peers", j, "networks", k), f"peers[{j}].networks[{k}]: {lan} overlaps {net}, an "
                                 f"internal network of gateway {g!r}; a partner network may not claim internal "
                                 "addresses of any gateway")
                       for g, gw in fleet.gateways.items() if g not in mine for net in gw.internal_networks
                       if _overlap(lan, net)]
    if fleet.several and services is not None:
        errors += _grant_routes(model, doc, order, fronted, services)
    return errors


def _named_gateways(fleet: Fleet, model: PartnerFile, doc: Document, available: list[str]) -> list[ProfileError]:
    if model.gateways is None:
        if len(available) > 1:
            return [doc.error(("id",), f"gateways: required when the estate has several gateways ({', '.join(available)}): "
                              "list the ones this partner connects through, in order of preference, or write `all`")]
        return []
    if model.gateways == ["all"]:
        return []
    errors, seen = [], set()
    for i, g in enumerate(model.gateways):
        if g not in available:
            errors.append(doc.error(("gateways", i), f"gateways[{i}]: no gateway named {g!r}; this estate has "
                                    f"{', '.join(available)}{did_you_mean(g, available)}"))
        elif g in seen:
            errors.append(doc.error(("gateways", i), f"gateways[{i}]: {g!r} is listed twice"))
        seen.add(g)
    return errors


def _grant_routes(model: PartnerFile, doc: Document, order: list[str], fronted: dict[str, set[str]],
                  services: ServicesFile) -> list[ProfileError]:
    """Every grant is reached through one of the partner's gateways; and the addresses reached through
    one gateway never overlap those reached through another (the partner's WireGuard routes an address
    to one peer)."""
    errors, reached = [], []
    known = set(services.services)
    for i, grant in enumerate(model.grants):
        if grant.service not in known:
            errors.append(doc.error(("grants", i, "service"), f"grants[{i}].service: no service named {grant.service!r} "
                                    f"in services.yaml{did_you_mean(grant.service, known)}"))
            continue
        via = route(order, fronted, grant.service)
        if via is None:
            fronting = sorted(g for g, s in fronted.items() if grant.service in s)
            errors.append(doc.error(("grants", i, "service"), f"grants[{i}].service: {grant.service!r} is fronted by "
                                    f"{'gateway(s) ' + ', '.join(fronting) if fronting else 'no gateway'}, none of which "
                                    f"this partner connects through ({', '.join(order) or 'none'})"))
        else:
            reached.append((i, grant.service, via))
    return errors + _crossed_routes(doc, reached, services)


def _crossed_routes(doc: Document, reached: list[tuple[int, str, str]], services: ServicesFile) -> list[ProfileError]:
    """Grants of one partner reached through different gateways whose service addresses overlap."""
    errors = []
    for (i, one, via_one), (k, two, via_two) in itertools.combinations(reached, 2):
        if via_one == via_two:
            continue
        hit = next(((a, b) for a in services.services[one].addresses for b in services.services[two].addresses
                    if _overlap(a, b)), None)
        if hit is not None:
            errors.append(doc.error(("grants", k, "service"), f"grants[{k}].service: {two!r} is reached through gateway "
                                    f"{via_two!r} and {one!r} (grants[{i}], line {doc.line_of(('grants', i))}) through "
                                    f"{via_one!r}, and their addresses {hit[1]} and {hit[0]} overlap: the partner's "
                                    "WireGuard routes an address to one gateway only; order the partner's gateways so "
                                    "both go through the same one, or split the service"))
    return errors
