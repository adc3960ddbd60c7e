"""Every generated file, as (relative path, content, secret?) records."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2

from gatewayctl import __version__
from gatewayctl.compile.compiler import collapse
from gatewayctl.compile.ir import AuthIR, CompiledPolicy, PartnerIR, PeerIR
from gatewayctl.model.ha import HaSettings
from gatewayctl.model.types import IPNetwork
from gatewayctl.partner_files import config_file, config_path
from gatewayctl.render.environment import exact_timeouts, rounded_timeouts
from gatewayctl.render.ha import ha_files

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

PRIVATE_KEY_PLACEHOLDER = "<REPLACE WITH THE PRIVATE KEY OF THIS PEER>"
PRESHARED_KEY_PLACEHOLDER = "<REPLACE WITH THE PRESHARED KEY AGREED WITH THE GATEWAY TEAM>"


@dataclass(frozen=True)
class Artifact:
    """One file to write. `secret` files (configs that will hold keys) are written 0600."""

    path: str
    content: str
    secret: bool
    kind: str


def render_all(policy: CompiledPolicy, env: jinja2.Environment, ha: HaSettings | None = None) -> list[Artifact]:
    """Render every artifact of the policy, in a stable order (with `ha`, each node's pair files too)."""
    common = {"gateway": policy.gateway, "version": __version__, "at": policy.at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    artifacts = [
        Artifact(f"wireguard/{policy.interface.name}.conf",
                 env.get_template("wireguard/gateway.conf.j2").render(interface=policy.interface, **common),
                 True, "gateway WireGuard config"),
        Artifact(f"nftables/{policy.table.name}.nft", render_ruleset(policy, env), False, "nftables ruleset"),
    ]
    for partner in policy.partners:
        artifacts.extend(_partner_artifacts(policy, partner, env, common))
    if policy.auth is not None:
        artifacts.extend(_front_artifacts(policy, env, common))
    if ha is not None:  # a pair: each node's keepalived and conntrackd files (render/ha.py)
        artifacts.extend(Artifact(path, text, False, kind) for path, text, kind in ha_files(policy, ha, env, common))
    for name, kind in (("gatewayctl-report.service", "systemd unit (nightly report)"),
                       ("gatewayctl-report.timer", "systemd timer (nightly report)")):
        artifacts.append(Artifact(f"systemd/{name}", env.get_template(f"systemd/{name}.j2").render(paths=policy.paths, **common),
                                  False, kind))
    # boot and crash: the guard before the network, wireguard-go (hosts without the module), restore
    boot = dict(ifname=policy.interface.name, table=policy.table.name, **common)
    for name in ("gatewayctl-guard.service", "gatewayctl-wireguard-go.service", "gatewayctl-restore.service"):
        artifacts.append(Artifact(f"systemd/{name}", env.get_template(f"systemd/{name}.j2").render(**boot), False,
                                  "systemd unit (boot: guard, wireguard-go, restore)"))
    return artifacts


def _front_artifacts(policy: CompiledPolicy, env: jinja2.Environment, common: dict[str, str]) -> list[Artifact]:
    """The mTLS front (nginx), the CAs it trusts, and the systemd units of the front and the authorizer."""
    auth = policy.auth
    assert auth is not None
    gated = [p for p in policy.partners if p.id in auth.partners and p.certificates is not None]
    issuers = [(p.id, subject) for p in gated for subject in p.certificates.issuer_subjects]  # type: ignore[union-attr]
    from cryptography import x509

    depth = 1 + max((len(x509.load_pem_x509_certificates(p.certificates.chain_pem.encode()))  # type: ignore[union-attr]
                     for p in gated if p.certificates.chain_pem), default=0)  # type: ignore[union-attr]
    runtime_dir = auth.socket.rsplit("/", 1)[0] or "/"
    context = dict(auth=auth, paths=policy.paths, **common)
    from gatewayctl.auth.front import map_hash_sizes

    map_hash = map_hash_sizes((f"{partner}|{subject}" for partner, subject in issuers), len(issuers))
    return [
        Artifact("front/nginx.conf", env.get_template("front/nginx.conf.j2").render(
            clients=policy.table.auth_clients, issuers=issuers, depth=depth, runtime_dir=runtime_dir, map_hash=map_hash,
            **context),
            False, "mTLS front (nginx)"),
        Artifact("front/client-cas.pem", env.get_template("front/client-cas.pem.j2").render(partners=gated, **context),
                 False, "CAs the front trusts"),
        Artifact("systemd/gatewayctl-auth.service", env.get_template("systemd/gatewayctl-auth.service.j2").render(**context),
                 False, "systemd unit (authorizer)"),
        Artifact("systemd/gatewayctl-front.service", env.get_template("systemd/gatewayctl-front.service.j2").render(**context),
                 False, "systemd unit (front)"),
    ]


# How long a flow matched in an interval set (ranges4/6) is taken from the hash set seen4/6 before the
# interval set is asked again: the longest an open connection outlives the end of a network or port-range
# grant (bench/README.md measures what the cache buys; tests/test_access_ends.py, the end).
SEEN_TIMEOUT = "500ms"


def render_ruleset(policy: CompiledPolicy, env: jinja2.Environment, loaded_at: dt.datetime | None = None) -> str:
    """The nftables ruleset file: an atomic replace of gatewayctl's table.

    Without `loaded_at` (a file built ahead): timeouts rounded down from `policy.at`. With it (apply):
    exact timeouts from that instant."""
    at = policy.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if loaded_at is None:
        timeouts = rounded_timeouts(policy.at)
        note = ("Element timeouts count from loading and are rounded down: load this file on the day it was "
                "compiled for (gatewayctl apply computes exact ones).")
    else:
        timeouts = exact_timeouts(loaded_at)
        note = f"Element timeouts are exact for loading at {loaded_at.strftime('%Y-%m-%dT%H:%M:%SZ')}."
    return env.get_template("nftables/ruleset.nft.j2").render(
        table=policy.table, gateway=policy.gateway, version=__version__, at=at, timeouts=timeouts, timeout_note=note,
        seen_timeout=SEEN_TIMEOUT)


def partner_allowed_ips(partner: PartnerIR, peer: PeerIR, front: AuthIR | None = None) -> tuple[str, ...]:
    """What the partner side routes into the tunnel: only the granted destinations of its families
    (and the gateway's session front, for a partner whose grants wait for a session)."""
    families = {net.version for net in peer.allowed_ips}
    granted = [d for g in partner.grants for d in g.destinations if d.version in families]
    if front is not None and partner.id in front.partners:  # the session front, on the gateway's tunnel addresses
        granted += [ipaddress.ip_network(a) for a in front.listen if ipaddress.ip_address(a).version in families]
    return tuple(_cidr(n) for n in collapse(granted))


@functools.lru_cache(maxsize=1 << 16)
def _cidr(network: IPNetwork) -> str:
    return str(network)  # cached: the same catalogue networks appear in every partner's config


def _partner_artifacts(policy: CompiledPolicy, partner: PartnerIR, env: jinja2.Environment,
                       common: dict[str, str]) -> list[Artifact]:
    result = []
    template = env.get_template("wireguard/partner.conf.j2")
    site = policy.gateway if policy.several else None  # one config per gateway: named after both
    for peer in partner.peers:
        text = template.render(partner=partner, peer=peer, interface=policy.interface,
                               allowed_ips=partner_allowed_ips(partner, peer, policy.auth),
                               config_file=config_file(peer.name, site), private_key_placeholder=PRIVATE_KEY_PLACEHOLDER,
                               preshared_key_placeholder=PRESHARED_KEY_PLACEHOLDER, **common)
        result.append(Artifact(config_path(partner.id, peer.name, site), text, True, "partner WireGuard config"))
    req = partner.certificates
    if req is not None:
        from cryptography import x509  # only partners with certificate requirements pay for the import

        cas = [_ca_summary(cert) for cert in x509.load_pem_x509_certificates(req.ca_bundle_pem.encode())]
        result.append(Artifact(f"partners/{partner.id}/certificate-requirements.json",
                               env.get_template("certificates/requirements.json.j2").render(
                                   partner=partner, req=req, cas=cas, **common),
                               False, "certificate requirements"))
        result.append(Artifact(f"partners/{partner.id}/ca-bundle.pem",
                               env.get_template("certificates/ca-bundle.pem.j2").render(req=req, **common),
                               False, "CA bundle"))
    return result


def _sha256() -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _ca_summary(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sha256": cert.fingerprint(_sha256()).hex(),
    }


def render_guard(name: str, interface: str, nets: list[str], env: jinja2.Environment) -> str:
    """apply's guard table: drops all partner traffic while the interface or peers change unfiltered."""
    return env.get_template("nftables/guard.nft.j2").render(
        name=name, interface=interface, nets4=sorted(n for n in nets if ":" not in n),
        nets6=sorted(n for n in nets if ":" in n))
