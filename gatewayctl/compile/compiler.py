"""Profiles -> CompiledPolicy. Pure: no I/O beyond what the estate already holds."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatewayctl.compile.ceilings import judge_partner
from gatewayctl.compile.ir import (
    AuthIR,
    CertRequirementsIR,
    CompiledPolicy,
    ExcludedGrant,
    GrantIR,
    PartnerIR,
    PeerIR,
    PortRange,
    WgInterfaceIR,
)
from gatewayctl.compile.nft import build_table
from gatewayctl.exceptions import ObjectKey, Standing, judge, standing
from gatewayctl.keyfiles import preshared_key_path
from gatewayctl.loader.profiles import Estate, Loaded
from gatewayctl.model import PartnerFile
from gatewayctl.model.gateway import AuthSettings
from gatewayctl.model.partner import Peer
from gatewayctl.model.services import Service
from gatewayctl.model.types import IPNetwork, parse_port_spec
from gatewayctl.ports import merge

if TYPE_CHECKING:
    from cryptography import x509

UTC = dt.UTC


@functools.lru_cache(maxsize=4096)  # an estate has few distinct dates, each asked for by many grants
def day_end(day: dt.date) -> dt.datetime:
    """The instant a date-bounded permission ends: 00:00 UTC on the following day."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=UTC)


def compile_estate(estate: Estate, cas: dict[str, list[x509.Certificate]], at: dt.datetime) -> CompiledPolicy:
    """Return the desired state of the gateway at instant `at` (timezone-aware)."""
    warnings: list[str] = []
    catalogue = {name: _ServiceFacts.of(service) for name, service in estate.services.model.services.items()}
    exceptions = _exceptions(estate, at, warnings)
    levels = {name: facts.service.classification for name, facts in catalogue.items()}
    gateway_warnings = len(warnings)
    partner_warnings: list[tuple[str, ...]] = []
    compiled: list[PartnerIR] = []
    for loaded in estate.partners:
        first = len(warnings)
        compiled.append(_partner(estate, catalogue, loaded, cas, at, warnings, (exceptions, levels)))
        partner_warnings.append(tuple(warnings[first:]))
    assert len(warnings) == gateway_warnings + sum(len(w) for w in partner_warnings)
    partners = tuple(compiled)
    gw = estate.gateway.model
    wg = gw.wireguard
    interface = WgInterfaceIR(
        name=wg.interface,
        listen_port=wg.listen_port,
        addresses=tuple(wg.addresses),
        mtu=wg.mtu,
        private_key_file=wg.private_key_file,
        public_key=wg.public_key,
        endpoint=wg.endpoint,
        peers=tuple(peer for partner in partners for peer in partner.peers),
    )
    table = build_table(gw, partners)
    auth = None
    if gw.auth is not None:
        a = gw.auth
        auth = AuthIR(a.port, a.session, a.server_certificate, a.server_key, a.crl_file, a.front_dir, a.socket,
                      a.front_user, tuple(str(addr.ip) for addr in wg.addresses),
                      tuple(p.id for p in partners if p.certificates and p.certificates.session_seconds is not None))
    return CompiledPolicy(gw.name, at, interface, partners, table, tuple(warnings), tuple(gw.stages),
                          tuple(gw.classifications), auth, gw.host.model_dump(), estate.several, tuple(partner_warnings))


@dataclass(frozen=True, slots=True)
class _ServiceFacts:
    """What every grant of a service needs, worked out once per service rather than once per grant."""

    service: Service
    families: frozenset[int]
    destinations: tuple[IPNetwork, ...]
    ports: tuple[PortRange, ...]

    @classmethod
    def of(cls, service: Service) -> _ServiceFacts:
        return cls(service, frozenset(d.version for d in service.addresses), tuple(service.addresses), _ports(service, None))


def _exceptions(estate: Estate, at: dt.datetime, warnings: list[str]) -> dict[tuple[str, ObjectKey], Standing]:
    """The gateway-owned exceptions standing at `at`; refused ones are named in a warning (and lint errors)."""
    doc = estate.gateway.doc
    judged = judge(estate, at)
    for s in judged:
        for code, problem in s.problems:
            warnings.append(f"{doc.shown_path}:{doc.line_of(('exceptions', s.index))}: {problem}; the exception is "
                            f"refused ({code}) and lifts nothing")
    return standing(judged, at)


def _partner(estate: Estate, catalogue: dict[str, _ServiceFacts], loaded: Loaded[PartnerFile],
             cas: dict[str, list[x509.Certificate]], at: dt.datetime, warnings: list[str],
             ceilings: tuple[dict[tuple[str, ObjectKey], Standing], dict[str, str]]) -> PartnerIR:
    """One partner's IR; `ceilings` holds the standing exceptions and each service's classification."""
    model = loaded.model
    peers = tuple(_peer(model.id, peer, estate.gateway.model.host.preshared_key_dir) for peer in model.peers)
    sources = tuple(net for peer in peers for net in peer.allowed_ips)
    grants: list[GrantIR] = []
    excluded: list[ExcludedGrant] = []
    agreement_end = day_end(model.agreement.expires)
    ids = _grant_ids(model)
    ended = {i: r for i, g in enumerate(model.grants) if (r := _exclusion(g.expires, model.agreement.expires, at))}
    exceptions, levels = ceilings
    verdict = judge_partner(estate.gateway.model, levels, model, ended, at, exceptions)
    elsewhere = []
    for index, grant in enumerate(model.grants):
        facts = catalogue[grant.service]
        service = facts.service
        reason = ended.get(index) or verdict.excluded.get(index)
        if index in loaded.elsewhere:  # another gateway's (several gateways): that gateway's build says the rest
            via = loaded.elsewhere[index] or "none: no gateway of the partner fronts it"
            excluded.append(ExcludedGrant(model.id, index, grant.service, f"reached through gateway {via}",
                                          facts.destinations, service.protocol))
            if not reason:
                elsewhere.append(ids[index])
            continue
        if reason or index in verdict.excepted:  # line_of walks the YAML nodes: only for the few grants that need it
            where = f"{loaded.doc.shown_path}:{loaded.doc.line_of(('grants', index))}"
        if index in verdict.excepted:
            warnings.append(f"{where}: grant of {grant.service!r} to partner {model.id!r} compiled beyond its stage "
                            f"under gateway exception: {verdict.excepted[index]}")
        if reason:
            excluded.append(ExcludedGrant(model.id, index, grant.service, reason, facts.destinations, service.protocol))
            if index in verdict.excluded:
                warnings.append(f"{where}: grant of {grant.service!r} to partner {model.id!r} NOT COMPILED, {reason}; "
                                "only a gateway.yaml exception approved by one of lint.approvers can allow it")
            else:
                warnings.append(f"{where}: grant of {grant.service!r} to partner {model.id!r} left out: {reason}")
            continue
        ends = min(day_end(grant.expires), agreement_end) if grant.expires else agreement_end
        if index in verdict.until:  # beyond its stage: open only while the exception holds
            ends = min(ends, day_end(verdict.until[index]))
        grants.append(GrantIR(
            id=ids[index], partner=model.id, index=index, service=grant.service,
            classification=service.classification, protocol=service.protocol,
            ports=facts.ports if grant.ports is None else _ports(service, grant.ports), destinations=facts.destinations,
            sources=tuple(s for s in sources if s.version in facts.families),
            expires=grant.expires, ends_at=ends, justification=grant.justification, approved_by=grant.approved_by,
        ))
    if model.grants and not grants and not elsewhere:
        warnings.append(f"{loaded.doc.shown_path}:1: partner {model.id!r} has no grant in force; its tunnel reaches nothing")
    return PartnerIR(model.id, model.name, model.stage, model.agreement.reference, model.agreement.expires,
                     peers, tuple(grants), tuple(excluded), _certificates(model, cas, estate.gateway.model.auth),
                     tuple(elsewhere))


def _exclusion(expires: dt.date | None, agreement_expires: dt.date, at: dt.datetime) -> str | None:
    if day_end(agreement_expires) <= at:
        return f"the agreement expired on {agreement_expires}"
    if expires is not None and day_end(expires) <= at:
        return f"it expired on {expires}"
    return None


def _grant_ids(model: PartnerFile) -> list[str]:
    counts: dict[str, int] = {}
    ids = []
    for grant in model.grants:
        counts[grant.service] = counts.get(grant.service, 0) + 1
        suffix = f"#{counts[grant.service]}" if counts[grant.service] > 1 else ""
        ids.append(f"{model.id}/{grant.service}{suffix}")
    return ids


def _ports(service: Service, narrowed: list[int | str] | None) -> tuple[PortRange, ...]:
    specs = narrowed if narrowed is not None else service.ports
    return tuple(PortRange(first, last) for first, last in merge([parse_port_spec(s) for s in specs]))


def _peer(partner: str, peer: Peer, key_dir: str) -> PeerIR:
    psk = None if peer.preshared_key_file is None else preshared_key_path(key_dir, peer.preshared_key_file)
    return PeerIR(partner, peer.name, peer.public_key, tuple(peer.addresses), tuple(peer.networks),
                  peer.endpoint, peer.keepalive, psk)


def _certificates(model: PartnerFile, cas: dict[str, list[x509.Certificate]],
                  auth: AuthSettings | None) -> CertRequirementsIR | None:
    reqs = model.certificates
    if reqs is None:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding  # only estates with CA files pay for it

    from gatewayctl.certs.names import openssl_rfc2253

    bundle = "".join(cert.public_bytes(Encoding.PEM).decode() for rel in reqs.issuing_cas for cert in cas[rel])
    chain = "".join(cert.public_bytes(Encoding.PEM).decode() for rel in reqs.ca_chain for cert in cas[rel])
    subjects = tuple(openssl_rfc2253(cert.subject) for rel in reqs.issuing_cas for cert in cas[rel])
    session = None
    if reqs.session is not None and auth is not None:
        session = reqs.session.duration or auth.session
    return CertRequirementsIR(model.id, reqs.smartcard_required, tuple(reqs.issuing_cas), bundle,
                              tuple(reqs.policy_oids), tuple(reqs.ekus), reqs.min_rsa_bits, tuple(reqs.ec_curves),
                              reqs.max_lifetime_days, chain, subjects, session)


def collapse(networks: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """Return `networks` sorted (IPv4 first), without duplicates or networks inside another one."""
    ordered = sorted(set(networks), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    result: list[IPNetwork] = []
    last_end = -1
    last_version = 0
    for net in ordered:
        _start, end = int(net.network_address), int(net.broadcast_address)
        if net.version == last_version and end <= last_end:
            continue
        result.append(net)
        last_version, last_end = net.version, end
    return tuple(result)
