"""Address checks no suppression lifts: what a partner may claim, and where a service may be.

A partner's tunnel addresses and LAN networks become WireGuard AllowedIPs and routes on the
gateway: whatever a partner claims is routed into its tunnel. So a partner may claim only
ordinary unicast addresses of its own, never the gateway's, the internal networks, a service,
another partner's or (for LANs) the tunnel pool. A service, in turn, must not be everything,
the gateway, the pool or a partner. Every message names the file and line of both sides and
prints the bad value as it is written in the file.
"""

from __future__ import annotations

import bisect
import contextlib
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gatewayctl.errors import ProfileError, shown
from gatewayctl.loader.profiles import Loaded
from gatewayctl.loader.yaml12 import Document, _child, _tree
from gatewayctl.model import GatewayFile, PartnerFile
from gatewayctl.model.services import ServicesFile
from gatewayctl.model.types import IPNetwork

Loc = tuple[int | str, ...]

# Ranges that are nobody's to claim. Mapped and NAT64 addresses reach IPv4 hosts through an IPv6
# door (a ::ffff:10.1.0.5 route or rule is read differently by different tools); the IPv4-compatible
# block ::/96 is deprecated and holds :: and ::1.
SPECIAL: tuple[tuple[IPNetwork, str], ...] = tuple((ipaddress.ip_network(net), what) for net, what in (
    ("0.0.0.0/8", "'this network', unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
    ("::/96", "unspecified, loopback and IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6"),
    ("64:ff9b::/96", "NAT64 (IPv4-embedded)"),
    ("64:ff9b:1::/48", "local-use NAT64 (IPv4-embedded)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
))
FULL = {4: 2**32 - 1, 6: 2**128 - 1}
FIELD_WORD = {"addresses": "tunnel address", "networks": "partner network"}


@dataclass(frozen=True, slots=True)
class Span:
    """A range someone owns, with what to say about it in a message (built only when needed)."""

    version: int
    first: int
    last: int
    code: str
    kind: str  # "internal network", "service 'crm-api' address", ...
    net: IPNetwork
    doc: Document | None = None
    loc: Loc = ()
    text: str | None = None  # printed instead of the value as written (the address of an interface address)

    def describe(self) -> str:
        """`kind value (file:line)`."""
        value = self.text or (written(self.doc, self.loc, self.net) if self.doc else str(self.net))
        return f"{self.kind} {value}" + (f" ({self.doc.shown_path}:{self.doc.line_of(self.loc)})" if self.doc else "")


class Ranges:
    """Spans indexed for overlap queries: sorted by first address, with a running maximum of the last."""

    def __init__(self, spans: list[Span]) -> None:
        self._index: dict[int, tuple[list[Span], list[int], list[int]]] = {}
        for version in (4, 6):
            ordered = sorted((s for s in spans if s.version == version), key=lambda s: s.first)
            highest, running = -1, []
            for item in ordered:
                highest = max(highest, item.last)
                running.append(highest)
            self._index[version] = (ordered, [s.first for s in ordered], running)

    def overlapping(self, version: int, first: int, last: int) -> Iterator[Span]:
        """Every span of `version` that shares an address with first..last; one bisection when none does."""
        ordered, firsts, running = self._index[version]
        i = bisect.bisect_right(firsts, last) - 1
        while i >= 0 and running[i] >= first:
            if ordered[i].last >= first:
                yield ordered[i]
            i -= 1


def bounds(net: IPNetwork) -> tuple[int, int]:
    """First and last address as integers; from the prefix length, because ipaddress's cached
    broadcast_address costs more than the rest of a claim's checks at thousands of partners."""
    first = int(net.network_address)
    return first, first | ((1 << (net.max_prefixlen - net.prefixlen)) - 1)


def span(net: IPNetwork, code: str, kind: str, doc: Document | None = None, loc: Loc = (), text: str | None = None) -> Span:
    return Span(net.version, *bounds(net), code, kind, net, doc, loc, text)


def written(doc: Document | None, loc: Loc, net: object) -> str:
    """The value at `loc` as written in the file (mapped IPv6 is not normalised), quoted and shortened."""
    node = _tree(doc.text) if doc is not None else None
    for part in doc.source_loc(loc) if doc is not None else loc:
        node = _child(node, part) if node is not None else None
    value = getattr(node, "value", None)
    return shown(value if isinstance(value, str) else str(net))


SPECIAL_RANGES = Ranges([span(net, "GW506", what) for net, what in SPECIAL])


def special_hits(net: IPNetwork, first: int, last: int) -> str:
    """'overlaps 224.0.0.0/4 (multicast) and ...' for the special-purpose ranges `net` touches, or ''."""
    hits = sorted(SPECIAL_RANGES.overlapping(net.version, first, last), key=lambda s: s.first)
    return " and ".join(f"{_relation(net, hit.net)} {hit.net} ({hit.kind})" for hit in hits)


def _relation(net: IPNetwork, other: IPNetwork) -> str:
    if net == other:
        return "is"
    if net.version == other.version and net.subnet_of(other):  # type: ignore[arg-type]
        return "is inside"
    return "contains" if net.supernet_of(other) else "overlaps"  # type: ignore[arg-type]


def gateway_spans(gateway: Loaded[GatewayFile], code: str = "GW504") -> list[Span]:
    """The gateway's own addresses: tunnel addresses (the smart-card front listens on them too) and
    the endpoint when it is an address literal."""
    wg, doc = gateway.model.wireguard, gateway.doc
    spans = [span(ipaddress.ip_network(iface.ip), code, "the gateway's own tunnel address", doc,
                  ("wireguard", "addresses", i), str(iface.ip)) for i, iface in enumerate(wg.addresses)]
    host = wg.endpoint.rsplit(":", 1)[0].strip("[]")
    with contextlib.suppress(ValueError):  # a host name: what it resolves to is not known here
        spans.append(span(ipaddress.ip_network(host), code, "the gateway's endpoint address", doc, ("wireguard", "endpoint"),
                          host))
    return spans


def endpoint_spans(partners: tuple[Loaded[PartnerFile], ...]) -> list[Span]:
    """The peers' underlay endpoints given as address literals: routed into a tunnel, a peer's
    endpoint would carry that peer's own WireGuard packets into the tunnel (its own or another's)."""
    found = []
    for partner in partners:
        for index, peer in enumerate(partner.model.peers):
            if peer.endpoint is None:
                continue
            host = peer.endpoint.rsplit(":", 1)[0].strip("[]")
            with contextlib.suppress(ValueError):  # a host name: what it resolves to is not known here
                found.append(span(ipaddress.ip_network(host), "GW501",
                                  f"the underlay endpoint of peer {peer.name!r} of partner {partner.model.id!r}",
                                  partner.doc, ("peers", index, "endpoint"), host))
    return found


def service_spans(gateway: Loaded[GatewayFile], services: Loaded[ServicesFile] | None) -> list[Span]:
    """The service addresses a partner may not claim. Addresses refused in services.yaml itself (the
    gateway, the pool, special ranges) are left out: they are reported there, not at every partner."""
    if services is None:
        return []
    refused = _service_refusals(gateway)
    found = []
    for name, service in services.model.services.items():
        for i, net in enumerate(service.addresses):
            item = span(net, "GW505", f"service {name!r} address", services.doc, ("services", name, "addresses", i))
            if next(refused.overlapping(item.version, item.first, item.last), None) is None:
                found.append(item)
    return found


def _service_refusals(gateway: Loaded[GatewayFile]) -> Ranges:
    """What no service address may touch: special ranges, the gateway's own addresses, the tunnel pool."""
    pool = [span(p, "GW508", "the tunnel pool", gateway.doc, ("wireguard", "pool", i))
            for i, p in enumerate(gateway.model.wireguard.pool)]
    specials = [span(net, "GW506", what) for net, what in SPECIAL]
    return Ranges([*specials, *gateway_spans(gateway, "GW406"), *pool])


def check_partner_claims(gateway: Loaded[GatewayFile], services: Loaded[ServicesFile] | None,
                         partners: tuple[Loaded[PartnerFile], ...], errors: list[ProfileError]) -> None:
    """Every tunnel address and LAN of every partner against everything that is not the partner's."""
    model, gdoc = gateway.model, gateway.doc
    pool = [span(p, "", "the tunnel pool", gdoc, ("wireguard", "pool", i)) for i, p in enumerate(model.wireguard.pool)]
    internal = [span(n, "GW502", "internal network", gdoc, ("internal_networks", i))
                for i, n in enumerate(model.internal_networks)]
    protected = Ranges(internal + gateway_spans(gateway) + service_spans(gateway, services) + endpoint_spans(partners))
    pools = Ranges(pool)
    limits = model.limits.max_partner_network_prefix
    widest = {4: limits.ipv4, 6: limits.ipv6}
    claims = [Claim.of(partner, index, field, aindex) for partner in partners
              for index, peer in enumerate(partner.model.peers)
              for field in ("addresses", "networks") for aindex in range(len(getattr(peer, field)))]
    for claim in claims:
        errors.extend(claim.problems(gateway, protected, pools, widest[claim.net.version]))
    for one, other in _overlaps(claims):
        errors.extend(_overlap_errors(one, other))


def _overlaps(claims: list[Claim]) -> Iterator[tuple[Claim, Claim]]:
    """Yield (earlier, later) pairs of overlapping claims: a sweep over sorted ranges, O(n log n)."""
    for version in (4, 6):
        ordered = sorted((c for c in claims if c.net.version == version), key=lambda c: (c.first, -c.last))
        widest: Claim | None = None
        for claim in ordered:
            if widest is not None and claim.first <= widest.last:
                yield widest, claim
                if claim.last <= widest.last:
                    continue
            widest = claim


def _overlap_errors(one: Claim, other: Claim) -> Iterator[ProfileError]:
    """One error at each of the two entries, each naming the other with file and line: which of them
    is new or wrong only the reader (or `gatewayctl diff`) can tell."""
    for at, seen in ((one, other), (other, one)):
        yield at.doc.error(at.loc, f"{at.label}: {FIELD_WORD[at.field]} {written(at.doc, at.loc, at.net)} of {at.owner} "
                           f"{_relation(at.net, seen.net)} {seen.describe()}; WireGuard routes an address to one peer "
                           "only, so one of them would receive the other's traffic", "GW501")


def _limit_source(gateway: Loaded[GatewayFile], version: int, widest: int) -> str:
    """'/16 (gateway.yaml:30, limits...ipv4)' where the limit is written, or '/16 (the default of ...)'."""
    setting = f"limits.max_partner_network_prefix.ipv{version}"
    limits = gateway.model.limits
    written_here = "limits" in gateway.model.model_fields_set and "max_partner_network_prefix" in \
        limits.model_fields_set and f"ipv{version}" in limits.max_partner_network_prefix.model_fields_set
    if not written_here:
        return f"/{widest} (the default of gateway.yaml's {setting})"
    return f"/{widest} ({gateway.doc.shown_path}:{gateway.doc.line_of(tuple(setting.split('.')))}, {setting})"


@dataclass(frozen=True, slots=True)
class Claim:
    """One tunnel address or LAN network of one peer."""

    doc: Document
    loc: Loc
    field: str
    net: IPNetwork
    owner: str  # "peer 'x' of partner 'y'"
    first: int
    last: int

    @classmethod
    def of(cls, partner: Loaded[PartnerFile], index: int, field: str, aindex: int) -> Claim:
        peer = partner.model.peers[index]
        net: IPNetwork = getattr(peer, field)[aindex]
        return cls(partner.doc, ("peers", index, field, aindex), field, net, f"peer {peer.name!r} of partner "
                   f"{partner.model.id!r}", *bounds(net))

    def describe(self) -> str:
        """`tunnel address '10.250.1.1/32' of peer 'p' of partner 'q' (file:line)`."""
        return (f"{FIELD_WORD[self.field]} {written(self.doc, self.loc, self.net)} of {self.owner} "
                f"({self.doc.shown_path}:{self.doc.line_of(self.loc)})")

    @property
    def label(self) -> str:
        return f"peers[{self.loc[1]}].{self.field}[{self.loc[3]}]"

    def error(self, message: str, code: str = "") -> ProfileError:
        what = f"{FIELD_WORD[self.field]} {written(self.doc, self.loc, self.net)}"
        return self.doc.error(self.loc, f"{self.label}: {what} {message}", code)

    def problems(self, gateway: Loaded[GatewayFile], protected: Ranges, pools: Ranges, widest: int) -> Iterator[ProfileError]:
        """Everything wrong with this one claim on its own (overlaps between partners are found by a sweep)."""
        net, v, first, last = self.net, self.net.version, self.first, self.last
        specials = special_hits(net, first, last)
        if specials:
            yield self.error(f"{specials}; a partner may only claim ordinary unicast addresses", "GW506")
        if net.prefixlen < widest:
            yield self.error(f"is a /{net.prefixlen}; the widest a partner may claim is {_limit_source(gateway, v, widest)}",
                             "GW507")
        in_pool = [p for p in pools.overlapping(v, first, last) if p.first <= first and last <= p.last]
        if self.field == "addresses" and not in_pool:
            yield self.error(f"is outside the gateway's pool {[str(p) for p in gateway.model.wireguard.pool]}; "
                             "tunnel addresses are taken from the pool")
        if self.field == "networks":
            for hit in pools.overlapping(v, first, last):
                yield self.error(f"overlaps {hit.describe()}; a partner's LAN must lie outside the pool")
        hits = sorted(protected.overlapping(v, first, last), key=lambda h: (h.code, h.first))
        for code in sorted({h.code for h in hits}):
            mine = [h for h in hits if h.code == code]
            listed = " and ".join(f"{_relation(net, h.net)} {h.describe()}" for h in mine[:3])
            more = f" and {len(mine) - 3} more" if len(mine) > 3 else ""
            why = ("packets for the gateway would be routed into the partner's tunnel" if code == "GW504"
                   else "a partner may only claim addresses that are its own")
            yield self.error(f"{listed}{more}; {why}", code)


def check_services(gateway: Loaded[GatewayFile], services: Loaded[ServicesFile], errors: list[ProfileError]) -> None:
    """Every service address: ordinary unicast, not the gateway, not the tunnel pool, and no service
    that is every address of a family, in one network or several."""
    forbidden = _service_refusals(gateway)
    doc = services.doc
    for name, service in services.model.services.items():
        for index, net in enumerate(service.addresses):
            loc = ("services", name, "addresses", index)
            value = written(doc, loc, net)
            first, last = bounds(net)
            specials = special_hits(net, first, last)
            if specials:
                errors.append(doc.error(loc, f"services.{name}.addresses[{index}]: {value} {specials}; "
                                        f"{REASONS['GW506']}", "GW506"))
            for hit in (h for h in forbidden.overlapping(net.version, first, last) if h.code != "GW506"):
                why = REASONS[hit.code]
                errors.append(doc.error(loc, f"services.{name}.addresses[{index}]: {value} {_relation(net, hit.net)} "
                                        f"{hit.describe()}; {why}", hit.code))
        for version in _whole_families(service.addresses):
            verb = "together cover" if len(service.addresses) > 1 else "covers"
            errors.append(doc.error(("services", name, "addresses"), f"services.{name}.addresses: "
                                    f"{_listed(doc, ('services', name, 'addresses'), service.addresses)} {verb} "
                                    f"every IPv{version} address; list the service's real hosts", "GW401"))


def check_grant_unions(services: Loaded[ServicesFile], partners: tuple[Loaded[PartnerFile], ...],
                       errors: list[ProfileError]) -> None:
    """No partner's grants together reach every address of a family (0.0.0.0/1 in one service and
    128.0.0.0/1 in another); a single such service is already reported in services.yaml."""
    catalogue = services.model.services
    sizes = {name: {v: sum(1 << (n.max_prefixlen - n.prefixlen) for n in service.addresses if n.version == v)
                    for v in (4, 6)} for name, service in catalogue.items()}
    for partner in partners:
        granted = [(i, g.service) for i, g in enumerate(partner.model.grants) if g.service in catalogue]
        if all(sum(sizes[name][v] for _, name in granted) <= FULL[v] for v in (4, 6)):
            continue  # the common case, settled without sorting: too few addresses to cover a family
        nets = [net for _, name in granted for net in catalogue[name].addresses]
        for version in _whole_families(nets):
            if any(version in _whole_families(catalogue[name].addresses) for _, name in granted):
                continue
            names = sorted({name for _, name in granted if any(n.version == version for n in catalogue[name].addresses)})
            errors.append(partner.doc.error(("grants", granted[0][0]), f"grants: together the grants of partner "
                                            f"{partner.model.id!r} reach every IPv{version} address (services "
                                            f"{', '.join(names)}); grant the services of real hosts only", "GW401"))


REASONS = {
    "GW506": "a service address must be an ordinary unicast address",
    "GW406": "a service may not be the gateway itself",
    "GW508": "partners' tunnel addresses are not a service",
}


def _whole_families(nets: Iterable[IPNetwork]) -> list[int]:
    """The address families (4, 6) whose every address lies in the union of `nets`."""
    found = []
    for version in (4, 6):
        spans = sorted(bounds(n) for n in nets if n.version == version)
        if sum(last - first + 1 for first, last in spans) <= FULL[version]:
            continue  # cheap test first: fewer addresses in all of them than the family has
        end = -1
        for first, last in spans:
            if first > end + 1:
                break
            end = max(end, last)
        if end == FULL[version]:
            found.append(version)
    return found


def _listed(doc: Document, loc: Loc, nets: list[IPNetwork], limit: int = 4) -> str:
    """The networks as written, the first few and a count of the rest."""
    shown_nets = [written(doc, (*loc, i), net) for i, net in enumerate(nets[:limit])]
    more = f" and {len(nets) - limit} more" if len(nets) > limit else ""
    return ", ".join(shown_nets) + more
