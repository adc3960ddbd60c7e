"""Effective requirements: a preset's defaults with the profile's own fields on top."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatewayctl.model.partner import CertificateRequirements

EKU_OIDS = {
    "clientAuth": "1.3.6.1.5.5.7.3.2",
    "smartcardLogon": "1.3.6.1.4.1.311.20.2.2",
    "pkinitClientAuth": "1.3.6.1.5.2.3.4",
}

PRESETS: dict[str, dict[str, Any]] = {
    "piv-auth": {
        "title": "PIV authentication (FIPS 201; policy id-fpki-common-authentication)",
        "policy_oids": ["2.16.840.1.101.3.2.1.3.13"], "ekus": [], "smartcard_required": True,
        "min_rsa_bits": 2048, "ec_curves": ["P-256"], "max_lifetime_days": 1095, "identity_source": "san-uuid",
    },
    "piv-i-hardware": {
        "title": "PIV-Interoperable, hardware (policy id-fpki-common-pivi-hardware)",
        "policy_oids": ["2.16.840.1.101.3.2.1.3.18"], "ekus": [], "smartcard_required": True,
        "min_rsa_bits": 2048, "ec_curves": ["P-256"], "max_lifetime_days": 1095, "identity_source": "san-uuid",
    },
    "derived-piv": {
        "title": "Derived PIV authentication (NIST SP 800-157; policy id-fpki-common-derived-pivAuth-hardware)",
        "policy_oids": ["2.16.840.1.101.3.2.1.3.40"], "ekus": [], "smartcard_required": True,
        "min_rsa_bits": 2048, "ec_curves": ["P-256"], "max_lifetime_days": 1095, "identity_source": "san-uuid",
    },
    "company-smartcard": {
        "title": "A company smart card (Windows-style smart-card logon certificate)",
        "policy_oids": [], "ekus": ["clientAuth", "smartcardLogon"], "smartcard_required": True,
        "min_rsa_bits": 2048, "ec_curves": ["P-256", "P-384"], "max_lifetime_days": 1095, "identity_source": "upn",
    },
}


@dataclass(frozen=True)
class Effective:
    """The requirements a certificate is checked against, all fields resolved."""

    preset: str | None
    smartcard_required: bool
    policy_oids: tuple[str, ...]
    ekus: tuple[str, ...]
    min_rsa_bits: int
    ec_curves: tuple[str, ...]
    max_lifetime_days: int | None
    revocation: str
    identity_source: str | None
    allowed_identities: tuple[str, ...]


def effective(reqs: CertificateRequirements) -> Effective:
    base = PRESETS.get(reqs.preset or "", {})
    written = reqs.model_fields_set

    def pick(name: str) -> Any:
        return getattr(reqs, name) if name in written or name not in base else base[name]

    identity = reqs.identity
    return Effective(
        preset=reqs.preset, smartcard_required=bool(pick("smartcard_required")),
        policy_oids=tuple(pick("policy_oids")), ekus=tuple(EKU_OIDS.get(e, e) for e in pick("ekus")),
        min_rsa_bits=int(pick("min_rsa_bits")), ec_curves=tuple(pick("ec_curves")),
        max_lifetime_days=pick("max_lifetime_days"), revocation=reqs.revocation,
        identity_source=identity.source if identity else base.get("identity_source"),
        allowed_identities=tuple(identity.allowed) if identity else (),
    )


def describe(eff: Effective, partner: str, cas: list[str]) -> list[str]:
    """The requirements in words, for the partner's administrators."""
    lines = [f"Users of {partner} must present a certificate"]
    if eff.preset:
        lines.append(f"  profile: {PRESETS[eff.preset]['title']}")
    lines.append(f"  issued under: {', '.join(cas)}")
    if eff.smartcard_required:
        lines.append("  held on a smart card or another hardware token")
    if eff.policy_oids:
        lines.append(f"  with certificate policies: {', '.join(eff.policy_oids)}")
    if eff.ekus:
        names = {v: k for k, v in EKU_OIDS.items()}
        lines.append(f"  with extended key usages: {', '.join(names.get(e, e) for e in eff.ekus)}")
    lines.append(f"  with an RSA key of at least {eff.min_rsa_bits} bits or an EC key on {', '.join(eff.ec_curves)}")
    if eff.max_lifetime_days:
        lines.append(f"  valid for at most {eff.max_lifetime_days} days")
    lines.append({"required": "  not revoked: a current CRL of the issuing CA is required",
                  "optional": "  not revoked, when a CRL is available", "off": "  (revocation is not checked)"}[eff.revocation])
    if eff.identity_source:
        who = f": one of {', '.join(eff.allowed_identities)}" if eff.allowed_identities else ""
        lines.append(f"  naming its holder in {eff.identity_source}{who}")
    return lines
