"""Checks across files that one schema alone cannot make; all errors are collected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gatewayctl.errors import ProfileError, ProfileErrors, display_path, shown
from gatewayctl.keyfiles import key_file_problem, preshared_key_path
from gatewayctl.loader.profiles import Estate, Loaded, PartialEstate
from gatewayctl.loader.safefs import read_regular
from gatewayctl.model import GatewayFile, PartnerFile
from gatewayctl.model.ha import ha_problems
from gatewayctl.model.types import parse_port_spec
from gatewayctl.partner_files import config_file
from gatewayctl.ports import contained
from gatewayctl.suggest import did_you_mean
from gatewayctl.validate_addresses import check_grant_unions, check_partner_claims, check_services

if TYPE_CHECKING:
    from cryptography import x509


def validate_estate(partial: PartialEstate) -> tuple[Estate, dict[str, list[x509.Certificate]]]:
    """Run every cross-file check whose inputs passed the schema; raise ProfileErrors with all
    problems, schema ones included. Return the estate and the CA certificates by relative path."""
    estate, cas, errors = check_estate(partial)
    if errors or estate is None:
        raise ProfileErrors(errors)
    return estate, cas


def check_estate(partial: PartialEstate) -> tuple[Estate | None, dict[str, list[x509.Certificate]], list[ProfileError]]:
    """Every check; returns the estate (None when gateway.yaml or services.yaml failed the schema),
    the CA certificates and every problem found."""
    errors = list(partial.errors)
    estate = None
    gateway, services = partial.gateway, partial.services
    _check_partner_ids(partial.partners, errors)
    _check_keys(gateway, partial.partners, errors)
    site = gateway.model.name if gateway is not None and len(partial.gateways) > 1 else None
    _check_config_files(partial.partners, errors, site)
    cas = _load_cas(partial.root, partial.partners, errors)
    if gateway is not None:
        check_partner_claims(gateway, services, partial.partners, errors)
        _check_key_files(gateway.model, partial.partners, errors)
        errors.extend(ha_problems(gateway))  # the pair's own block (gatewayctl/model/ha.py)
        for partner in partial.partners:
            _check_stage(gateway.model, partner, errors)
            _check_session(gateway.model, partner, errors)
    if gateway is not None and services is not None:
        estate = Estate(partial.root, gateway, services, partial.partners, partial.gateways, partial.fleet_internal)
        _check_services(estate, errors)
        check_services(gateway, services, errors)
        check_grant_unions(services, partial.partners, errors)
        families = {name: {n.version for n in service.addresses} for name, service in services.model.services.items()}
        for partner in partial.partners:
            sources = {n.version for peer in partner.model.peers for n in [*peer.addresses, *peer.networks]}
            for index in range(len(partner.model.grants)):
                errors.extend(_grant_errors(estate, partner, index, sources, families))
    return estate, cas, errors


def _check_services(estate: Estate, errors: list[ProfileError]) -> None:
    known = estate.gateway.model.classifications
    doc = estate.services.doc
    for name, service in estate.services.model.services.items():
        if service.classification not in known:
            errors.append(doc.error(("services", name, "classification"),
                          f"services.{name}.classification: unknown classification {service.classification!r}; "
                          f"gateway.yaml defines {known}"))


def _check_partner_ids(partners: tuple[Loaded[PartnerFile], ...], errors: list[ProfileError]) -> None:
    seen: dict[str, str] = {}
    for partner in partners:
        model, doc = partner.model, partner.doc
        if doc.path.stem != model.id:
            errors.append(doc.error(("id",), f"id: {model.id!r} must equal the file name {doc.path.name!r} without .yaml"))
        if model.id in seen:
            errors.append(doc.error(("id",), f"id: partner id {model.id!r} is already used by {seen[model.id]}"))
        seen.setdefault(model.id, doc.shown_path)


def _check_stage(gateway: GatewayFile, partner: Loaded[PartnerFile], errors: list[ProfileError]) -> None:
    model, doc = partner.model, partner.doc
    if model.stage not in gateway.stages:
        errors.append(doc.error(("stage",), f"stage: unknown stage {model.stage!r}; gateway.yaml defines "
                                f"{sorted(gateway.stages)}"))


def _grant_errors(estate: Estate, partner: Loaded[PartnerFile], index: int, sources: set[Literal[4, 6]],
                  families: dict[str, set[Literal[4, 6]]]) -> Iterator[ProfileError]:
    """The problems of one grant; `sources` are the partner's address families, `families` the services'."""
    model, doc = partner.model, partner.doc
    grant = model.grants[index]
    where = f"grants[{index}]"
    service = estate.services.model.services.get(grant.service)
    if service is None:
        hint = did_you_mean(grant.service, estate.services.model.services)
        yield doc.error(("grants", index, "service"), f"{where}.service: unknown service {grant.service!r}{hint}; "
                        "it must be defined in services.yaml")
        return
    if grant.expires and grant.expires > model.agreement.expires:
        yield doc.error(("grants", index, "expires"), f"{where}.expires: {grant.expires} is after the agreement's "
                        f"expiry {model.agreement.expires}; a grant may not outlive the agreement")
    if grant.ports is not None:
        offered = [parse_port_spec(p) for p in service.ports]
        for pindex, spec in enumerate(grant.ports):
            if not contained(parse_port_spec(spec), offered):
                yield doc.error(("grants", index, "ports", pindex), f"{where}.ports[{pindex}]: {spec!r} is not among "
                                f"the ports of service {grant.service!r} ({port_summary(service.ports)}); a grant may "
                                "only narrow")
    targets = families[grant.service]
    if not sources & targets:
        yield doc.error(("grants", index, "service"), f"{where}: service {grant.service!r} has only "
                        f"{_families(targets)} addresses and partner {model.id!r} only {_families(sources)} ones; "
                        "the grant would match nothing")


def port_summary(specs: list[int | str], limit: int = 5) -> str:
    """The first few ports or ranges and how many more: a message never lists thousands of ports."""
    head = ", ".join(str(spec) for spec in specs[:limit])
    return head + (f" and {len(specs) - limit} more" if len(specs) > limit else "")


def _families(versions: set[Literal[4, 6]]) -> str:
    return " and ".join(f"IPv{v}" for v in sorted(versions)) or "no"


def _check_keys(gateway: Loaded[GatewayFile] | None, partners: tuple[Loaded[PartnerFile], ...],
                errors: list[ProfileError]) -> None:
    seen: dict[str, str] = {}
    if gateway is not None:
        seen[gateway.model.wireguard.public_key] = "the gateway itself (gateway.yaml)"
    for partner in partners:
        names: set[str] = set()
        for index, peer in enumerate(partner.model.peers):
            if peer.name in names:
                errors.append(partner.doc.error(("peers", index, "name"),
                                                f"peers[{index}].name: peer name {peer.name!r} is used twice"))
            names.add(peer.name)
            label = f"peer {peer.name!r} of partner {partner.model.id!r}"
            if peer.public_key in seen:
                errors.append(partner.doc.error(("peers", index, "public_key"),
                              f"peers[{index}].public_key: {peer.public_key} is already used by {seen[peer.public_key]}; "
                              "every peer needs its own key", "GW503"))
            seen.setdefault(peer.public_key, label)


def _check_config_files(partners: tuple[Loaded[PartnerFile], ...], errors: list[ProfileError],
                        site: str | None = None) -> None:
    """Two peers of one partner must not get the same partner config file (a long peer name is shortened
    to 15 characters for wg-quick, see gatewayctl/partner_files.py; `site`: the gateway of several the
    file is for, part of its name); partner folders keep partners apart."""
    for partner in partners:
        taken: dict[str, int] = {}
        for index, peer in enumerate(partner.model.peers):
            name = config_file(peer.name, site)
            first = taken.setdefault(name, index)
            other = partner.model.peers[first].name
            if first != index and other != peer.name:  # the same name twice is reported by _check_keys
                line = partner.doc.line_of(("peers", first, "name"))
                errors.append(partner.doc.error(("peers", index, "name"), (
                    f"peers[{index}].name: peer {peer.name!r} would get the partner config file {name!r}, the same as "
                    f"peer {other!r} (line {line}); the file name is the interface name wg-quick uses, so a peer name "
                    "longer than 15 characters is shortened to its first 10 characters, '-' and 4 hex digits of its "
                    "SHA-256: rename one of the two peers")))


def _check_key_files(gateway: GatewayFile, partners: tuple[Loaded[PartnerFile], ...],
                     errors: list[ProfileError]) -> None:
    """Every preshared key file inside the configured folder, not a gateway secret, and used by one
    peer only (each peer sharing one is told, with the others' names)."""
    users: dict[str, list[tuple[Loaded[PartnerFile], int]]] = {}
    for partner in partners:
        for index, peer in enumerate(partner.model.peers):
            value = peer.preshared_key_file
            if value is None:
                continue
            problem = key_file_problem(gateway, value)
            if problem is not None:
                errors.append(_key_file_error(partner, index, problem))
            else:
                users.setdefault(preshared_key_path(gateway.host.preshared_key_dir, value), []).append((partner, index))
    for shared in (group for group in users.values() if len(group) > 1):
        for partner, index in shared:
            others = [f"peer {p.model.peers[i].name!r} of partner {p.model.id!r} ({p.doc.shown_path})"
                      for p, i in shared if (p, i) != (partner, index)]
            errors.append(_key_file_error(partner, index, f"is also the preshared key file of {', '.join(others[:3])}"
                                          f"{f' and {len(others) - 3} more' if len(others) > 3 else ''}; every peer's "
                                          "preshared key is a file of its own"))


def _key_file_error(partner: Loaded[PartnerFile], index: int, problem: str) -> ProfileError:
    value = partner.model.peers[index].preshared_key_file
    return partner.doc.error(("peers", index, "preshared_key_file"),
                             f"peers[{index}].preshared_key_file: {problem}; found {shown(value)}")


def _check_session(gateway: GatewayFile, partner: Loaded[PartnerFile], errors: list[ProfileError]) -> None:
    reqs = partner.model.certificates
    session = reqs.session if reqs else None
    if session is None:
        return
    loc = ("certificates", "session")
    if gateway.auth is None:
        errors.append(partner.doc.error(loc, "certificates.session: the partner's grants wait for a smart-card session, "
                                        "but gateway.yaml has no auth section (the front that opens sessions)"))
    elif session.duration is not None and session.duration > gateway.auth.session:
        errors.append(partner.doc.error(
            (*loc, "duration"), f"certificates.session.duration: must not exceed gateway.yaml's auth.session "
            f"({gateway.auth.session} s), found {session.duration} s"))


def _load_cas(root: Path, partners: tuple[Loaded[PartnerFile], ...],
              errors: list[ProfileError]) -> dict[str, list[x509.Certificate]]:
    cas: dict[str, list[x509.Certificate]] = {}
    for partner in partners:
        reqs = partner.model.certificates
        if reqs is None:
            continue
        for field in ("issuing_cas", "ca_chain"):
            for index, rel in enumerate(getattr(reqs, field)):
                try:
                    cas[rel] = _read_pem(root / rel, root)
                except ValueError as exc:
                    errors.append(partner.doc.error(("certificates", field, index), f"certificates.{field}[{index}]: {rel}: {exc}"))
    return cas


def _read_pem(path: Path, root: Path) -> list[x509.Certificate]:
    """The certificates in the CA file `path`, a regular file below `root` reached without a link;
    raises ValueError saying why not (never quoting the file: a link could have pointed at a secret)."""
    from cryptography import x509  # only estates with CA files pay for the import

    try:
        data = read_regular(path, root=root)  # UnsafeFile is an OSError whose strerror is the reason
    except OSError as exc:
        raise ValueError(f"cannot read {display_path(path)}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        raise ValueError("the file contains a private key; only CA certificates belong beside the profiles")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("is not a PEM file of X.509 certificates") from None
    return certs
