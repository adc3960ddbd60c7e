"""Verify a user certificate against a partner's requirements.

cryptography's client verifier builds and checks the path to one of the partner's issuing CAs
(signatures, validity, basic constraints). Everything it does not check is checked here, each as
its own named requirement: validity with dates, revocation (CRL), policy OIDs, EKUs, key strength,
lifetime and identity mapping."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gatewayctl.certs.requirements import Effective

UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclass(frozen=True)
class Unmet:
    requirement: str
    found: str

    def __str__(self) -> str:
        return f"{self.requirement}: {self.found}"


@dataclass(frozen=True)
class Result:
    accepted: bool
    unmet: tuple[Unmet, ...]
    identity: str | None
    serial: str


def verify(leaf: x509.Certificate, intermediates: list[x509.Certificate], cas: list[x509.Certificate],
           reqs: Effective, at: dt.datetime, crl: x509.CertificateRevocationList | None = None) -> Result:
    unmet: list[Unmet] = []
    unmet += _validity(leaf, at)
    issuer = _chain(leaf, intermediates, cas, at, unmet)
    unmet += _revocation(leaf, issuer, crl, reqs, at)
    unmet += _policies(leaf, reqs)
    unmet += _ekus(leaf, reqs)
    unmet += _key(leaf, reqs)
    unmet += _lifetime(leaf, reqs)
    identity = identity_of(leaf, reqs.identity_source)
    if reqs.identity_source and reqs.allowed_identities and identity not in reqs.allowed_identities:
        unmet.append(Unmet(f"identity ({reqs.identity_source}) among the partner's allowed users",
                           f"{identity or 'none found'}"))
    return Result(not unmet, tuple(unmet), identity, format(leaf.serial_number, "x"))


def _validity(leaf: x509.Certificate, at: dt.datetime) -> list[Unmet]:
    if at < leaf.not_valid_before_utc:
        return [Unmet("validity: not yet valid", f"valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}Z")]
    if at > leaf.not_valid_after_utc:
        return [Unmet("validity: expired", f"valid until {leaf.not_valid_after_utc:%Y-%m-%d %H:%M}Z")]
    return []


def _chain(leaf: x509.Certificate, intermediates: list[x509.Certificate], cas: list[x509.Certificate], at: dt.datetime,
           unmet: list[Unmet]) -> x509.Certificate | None:
    """The certificate that issued the leaf, when a path to one of the partner's CAs exists."""
    # The verifier checks dates too; asking at a moment inside the leaf's validity keeps a date problem
    # reported once, by _validity, and the path problem (if any) by itself.
    when = min(max(at, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    try:
        verifier = PolicyBuilder().store(Store(cas)).time(when).build_client_verifier()
        chain = verifier.verify(leaf, intermediates).chain
    except VerificationError as exc:
        unmet.append(Unmet("path to one of the partner's issuing CAs", str(exc)))
        return None
    return chain[1] if len(chain) > 1 else None


def _revocation(leaf: x509.Certificate, issuer: x509.Certificate | None, crl: x509.CertificateRevocationList | None,
                reqs: Effective, at: dt.datetime) -> list[Unmet]:
    if reqs.revocation == "off":
        return []
    if crl is None:
        return [Unmet("revocation: a CRL of the issuing CA", "none given")] if reqs.revocation == "required" else []
    if issuer is None or crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        return [Unmet("revocation: a CRL signed by the issuing CA", f"CRL issued by {crl.issuer.rfc4514_string()}")]
    if crl.next_update_utc is not None and crl.next_update_utc < at:
        return [Unmet("revocation: a current CRL", f"next update was due {crl.next_update_utc:%Y-%m-%d %H:%M}Z")]
    revoked = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if revoked is not None:
        return [Unmet("revocation: not revoked", f"serial {leaf.serial_number:x} revoked on "
                      f"{revoked.revocation_date_utc:%Y-%m-%d %H:%M}Z")]
    return []


def _policies(leaf: x509.Certificate, reqs: Effective) -> list[Unmet]:
    if not reqs.policy_oids:
        return []
    try:
        policies = leaf.extensions.get_extension_for_class(x509.CertificatePolicies).value
        found = {p.policy_identifier.dotted_string for p in policies}
    except x509.ExtensionNotFound:
        found = set()
    missing = [o for o in reqs.policy_oids if o not in found]
    return [Unmet(f"certificate policy {o}", f"policies {', '.join(sorted(found)) or 'none'}") for o in missing]


def _ekus(leaf: x509.Certificate, reqs: Effective) -> list[Unmet]:
    if not reqs.ekus:
        return []
    try:
        found = {u.dotted_string for u in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value}
    except x509.ExtensionNotFound:
        found = set()
    return [Unmet(f"extended key usage {e}", f"EKUs {', '.join(sorted(found)) or 'none'}") for e in reqs.ekus if e not in found]


def _key(leaf: x509.Certificate, reqs: Effective) -> list[Unmet]:
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return [] if key.key_size >= reqs.min_rsa_bits else [Unmet(f"key strength: RSA >= {reqs.min_rsa_bits}",
                                                                   f"RSA {key.key_size}")]
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = CURVES.get(key.curve.name, key.curve.name)
        return [] if curve in reqs.ec_curves else [Unmet(f"key strength: EC on {', '.join(reqs.ec_curves)}", f"EC {curve}")]
    return [Unmet("key type: RSA or EC", type(key).__name__)]


def _lifetime(leaf: x509.Certificate, reqs: Effective) -> list[Unmet]:
    days = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    if reqs.max_lifetime_days and days > reqs.max_lifetime_days:
        return [Unmet(f"lifetime: at most {reqs.max_lifetime_days} days", f"{days} days")]
    return []


def identity_of(leaf: x509.Certificate, source: str | None) -> str | None:
    """The holder's identity as the requirements name it."""
    if source is None:
        return None
    if source == "subject-cn":
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    if source == "email":
        emails = san.get_values_for_type(x509.RFC822Name)
        return emails[0] if emails else None
    if source == "san-uuid":
        uuids = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.lower().startswith("urn:uuid:")]
        return uuids[0][9:].lower() if uuids else None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == UPN_OID:
            return _utf8_string(other.value)
    return None


def _utf8_string(der: bytes) -> str | None:
    """Decode a DER UTF8String (tag 12), the encoding of a UPN."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(der[2:2 + count], "big"), 2 + count
    return der[offset:offset + length].decode("utf-8", errors="replace")
