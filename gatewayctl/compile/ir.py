"""The intermediate representation: one source of truth for rendering, queries, plans and drift.

Everything here is a frozen dataclass describing the desired state of the gateway
at one instant (`CompiledPolicy.at`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the IR is read without importing the profile models (revoke)
    from gatewayctl.model.types import IPInterface, IPNetwork


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    """An inclusive range of ports; a single port has first == last."""

    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class GrantIR:
    """A grant in force: partner sources may reach service destinations on these ports."""

    id: str
    partner: str
    index: int
    service: str
    classification: str
    protocol: str
    ports: tuple[PortRange, ...]
    destinations: tuple[IPNetwork, ...]
    sources: tuple[IPNetwork, ...]
    expires: dt.date | None
    ends_at: dt.datetime | None
    justification: str | None
    approved_by: str | None


@dataclass(frozen=True, slots=True)
class ExcludedGrant:
    """A grant written in the profile but not compiled, and why."""

    partner: str
    index: int
    service: str
    reason: str
    destinations: tuple[IPNetwork, ...] = ()
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class PeerIR:
    """One WireGuard peer as the gateway sees it."""

    partner: str
    name: str
    public_key: str
    tunnel_addresses: tuple[IPNetwork, ...]
    networks: tuple[IPNetwork, ...]
    endpoint: str | None
    keepalive: int | None
    preshared_key_file: str | None

    @property
    def allowed_ips(self) -> tuple[IPNetwork, ...]:
        return self.tunnel_addresses + self.networks


@dataclass(frozen=True, slots=True)
class CertRequirementsIR:
    """What a partner's users must present, with the CA bundle it refers to (PEM)."""

    partner: str
    smartcard_required: bool
    issuing_cas: tuple[str, ...]
    ca_bundle_pem: str
    policy_oids: tuple[str, ...]
    ekus: tuple[str, ...]
    min_rsa_bits: int
    ec_curves: tuple[str, ...]
    max_lifetime_days: int | None
    chain_pem: str = ""  # the CAs above the issuing CAs (for the mTLS front)
    issuer_subjects: tuple[str, ...] = ()  # subjects of the issuing CAs as OpenSSL prints them (RFC 2253)
    session_seconds: int | None = None  # grants wait for a smart-card session of this length


@dataclass(frozen=True, slots=True)
class PartnerIR:
    """A partner at the instant of compilation."""

    id: str
    name: str
    stage: str
    agreement_reference: str
    agreement_expires: dt.date
    peers: tuple[PeerIR, ...]
    grants: tuple[GrantIR, ...]
    excluded: tuple[ExcludedGrant, ...]
    certificates: CertRequirementsIR | None
    # in an estate of several gateways: the grants in force that are reached through another gateway
    elsewhere: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[IPNetwork, ...]:
        return tuple(net for peer in self.peers for net in peer.allowed_ips)


@dataclass(frozen=True, slots=True)
class WgInterfaceIR:
    """The gateway's WireGuard interface and all its peers."""

    name: str
    listen_port: int
    addresses: tuple[IPInterface, ...]
    mtu: int
    private_key_file: str
    public_key: str
    endpoint: str
    peers: tuple[PeerIR, ...]


@dataclass(frozen=True, slots=True)
class SetElement:
    """One element of a grant set: src . dst [. proto . ports], with the grants behind it."""

    family: int
    source: IPNetwork
    destination: IPNetwork
    protocol: str
    ports: PortRange | None
    ends_at: dt.datetime | None
    grants: tuple[str, ...]
    gated: bool = False  # open only while the partner's source holds a smart-card session
    # nft's own spelling of the element key (as `nft list` prints it): spelt once, as the element is
    # made, since every stage after the compiler looks elements up by it (30,000 elements at 5,000
    # partners, each looked up five times, cost 0.2 s as a property)
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = [_nft_addr(self.source), _nft_addr(self.destination)]
        if self.ports is not None:
            parts += [self.protocol, str(self.ports)]
        object.__setattr__(self, "key", " . ".join(parts))

    @property
    def exact(self) -> bool:
        """One source host, one destination host, one port: a hash-set element (constant-time lookup)."""
        return (self.source.prefixlen == self.source.max_prefixlen and self.destination.prefixlen == self.destination.max_prefixlen
                and self.ports is not None and self.ports.first == self.ports.last)



@functools.lru_cache(maxsize=1 << 16)
def _nft_addr(network: IPNetwork) -> str:
    # cached: a ruleset spells the same few thousand addresses over and over, and ipaddress's str() is slow
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


@dataclass(frozen=True, slots=True)
class DenyEntry:
    """A partner source address and the chain its denied packets go to."""

    family: int
    source: IPNetwork
    partner: str
    chain: str

    @property
    def key(self) -> str:
        return f"{_nft_addr(self.source)} : goto {self.chain}"


@dataclass(frozen=True, slots=True)
class AuthClient:
    """A source that may reach the session front: an address of a partner whose grants wait for a session."""

    family: int
    source: IPNetwork
    partner: str

    @property
    def key(self) -> str:
        return _nft_addr(self.source)


@dataclass(frozen=True, slots=True)
class PartnerNet:
    """An address range partner traffic comes from (tunnel pool or partner LAN), whatever its interface."""

    family: int
    network: IPNetwork

    @property
    def key(self) -> str:
        return _nft_addr(self.network)


@dataclass(frozen=True, slots=True)
class DenyChain:
    """The chain that counts, logs and drops one partner's denied packets (or everyone's)."""

    name: str
    log_prefix: str | None


@dataclass(frozen=True, slots=True)
class NftTableIR:
    """gatewayctl's one nftables table (family inet)."""

    name: str
    interface: str
    grants4: tuple[SetElement, ...]
    grants6: tuple[SetElement, ...]
    icmp4: tuple[SetElement, ...]
    icmp6: tuple[SetElement, ...]
    deny4: tuple[DenyEntry, ...]
    deny6: tuple[DenyEntry, ...]
    deny_chains: tuple[DenyChain, ...]
    log_rate_per_minute: int
    log_burst: int
    unknown_source_prefix: str | None
    auth_port: int | None = None  # the session front's port, when the gateway has one
    auth_clients: tuple[AuthClient, ...] = ()
    pools: tuple[IPNetwork, ...] = ()  # the tunnel pool(s): every address in them is a partner's or the gateway's

    def by_set(self) -> dict[str, Elements]:
        """The elements of each set and map, by name. Session sets (SESSION_SETS) hold no compiled
        elements: the authorizer fills them at run time."""
        # host . host . proto . port in a hash set (lookup cost independent of its size); networks and
        # port ranges in an interval set
        exact4, ranges4 = _split_exact(self.grants4)
        exact6, ranges6 = _split_exact(self.grants6)
        sets: dict[str, Elements] = {
            "grants4": exact4, "grants6": exact6, "ranges4": ranges4, "ranges6": ranges6,
            "icmp4": tuple(e for e in self.icmp4 if not e.gated),
            "icmp6": tuple(e for e in self.icmp6 if not e.gated),
            "deny4": self.deny4, "deny6": self.deny6,
            "partner_nets4": self.partner_nets(4), "partner_nets6": self.partner_nets(6)}
        if self.auth_port is not None:
            sets.update({
                "gated4": tuple(e for e in self.grants4 if e.gated), "gated6": tuple(e for e in self.grants6 if e.gated),
                "gated_icmp4": tuple(e for e in self.icmp4 if e.gated), "gated_icmp6": tuple(e for e in self.icmp6 if e.gated),
                "auth_clients4": tuple(c for c in self.auth_clients if c.family == 4),
                "auth_clients6": tuple(c for c in self.auth_clients if c.family == 6),
            })
        return sets

    def partner_nets(self, family: int) -> tuple[PartnerNet, ...]:
        """The addresses partner traffic comes from: the tunnel pool and every partner source
        (tunnel addresses and LANs), collapsed so an interval set takes them."""
        nets: list[Any] = [n for n in self.pools if n.version == family]
        nets += [e.source for e in (self.deny4 if family == 4 else self.deny6)]
        return tuple(PartnerNet(family, n) for n in ipaddress.collapse_addresses(nets))

    def without_elements(self) -> NftTableIR:
        """The same declarations and rules, every set empty."""
        return dataclasses.replace(self, grants4=(), grants6=(), icmp4=(), icmp6=(), deny4=(), deny6=(), auth_clients=(),
                                   pools=())


Elements = tuple[SetElement, ...] | tuple[DenyEntry, ...] | tuple[AuthClient, ...] | tuple[PartnerNet, ...]


def _split_exact(elements: tuple[SetElement, ...]) -> tuple[tuple[SetElement, ...], tuple[SetElement, ...]]:
    """The elements that are not gated, as (exact ones, the others)."""
    exact: list[SetElement] = []
    ranges: list[SetElement] = []
    for e in elements:
        if not e.gated:
            (exact if e.exact else ranges).append(e)
    return tuple(exact), tuple(ranges)


SESSION_SETS = ("sessions4", "sessions6")
SEEN_SETS = ("seen4", "seen6")  # filled by the kernel (flows matched in ranges4/6, kept 500 ms): no compiled elements


@dataclass(frozen=True, slots=True)
class AuthIR:
    """The smart-card session front and authorizer of the gateway (gateway.yaml's auth section)."""

    port: int
    session_seconds: int
    server_certificate: str
    server_key: str
    crl_file: str | None
    front_dir: str
    socket: str
    front_user: str
    listen: tuple[str, ...]  # the gateway's tunnel addresses
    partners: tuple[str, ...]  # partners whose grants wait for a session


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """The whole desired state of one gateway at instant `at`."""

    gateway: str
    at: dt.datetime
    interface: WgInterfaceIR
    partners: tuple[PartnerIR, ...]
    table: NftTableIR
    warnings: tuple[str, ...]
    stages: tuple[str, ...] = ()  # trust stages in the order gateway.yaml defines them (lowest first)
    classifications: tuple[str, ...] = ()  # data classifications, least sensitive first
    auth: AuthIR | None = None
    paths: dict[str, str] = dataclasses.field(default_factory=dict)  # gateway.yaml's host paths
    several: bool = False  # one gateway of an estate of several (loader/fleet.py)
    # the part of `warnings` each partner gave rise to, in the order of `partners`; the rest (the
    # gateway's exceptions) come first in `warnings` (a partner-scoped apply prints them the same way)
    partner_warnings: tuple[tuple[str, ...], ...] = ()

    def partner(self, partner_id: str) -> PartnerIR | None:
        return next((p for p in self.partners if p.id == partner_id), None)


def seen_sets(sets: Mapping[str, object]) -> tuple[str, ...]:
    """The flow cache sets (seen4/6) of a table: emptied after narrowing, so no flow of a removed range
    grant passes for the rest of its 500 ms (the flows that still hold meet the interval sets once more)."""
    return tuple(name for name in SEEN_SETS if name in sets)
