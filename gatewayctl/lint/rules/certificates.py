"""Certificates: the issuing CA files kept beside the profiles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule
from gatewayctl.loader.profiles import Loaded
from gatewayctl.model import PartnerFile


def _each_ca(ctx: LintContext) -> Iterator[tuple[Loaded[PartnerFile], int, str, x509.Certificate]]:
    for partner in ctx.partners():
        reqs = partner.model.certificates
        for index, rel in enumerate(reqs.issuing_cas if reqs else []):
            for cert in ctx.cas.get(rel, []):
                yield partner, index, rel, cert


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


class CaExpired(Rule):
    """What it does: reports issuing CA certificates past their notAfter date.

    Why it matters: no certificate issued by an expired CA verifies; the partner's users are locked
    out, or a verifier that ignores dates lets anything in.

    Example: a CA file whose certificate ended last month.

    Fix: get the partner's current CA certificate and replace the file."""

    code, name, severity = "GW701", "ca-expired", "error"
    summary = "An issuing CA certificate has expired."
    hint = "replace the file with the partner's current CA certificate"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner, index, rel, cert in _each_ca(ctx):
            if cert.not_valid_after_utc < ctx.at:
                yield self.at(partner.doc, ("certificates", "issuing_cas", index),
                              f"CA {_subject(cert)} in {rel} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                              ("partner", partner.model.id))


class CaExpiringSoon(Rule):
    """What it does: reports issuing CA certificates ending within `lint.expiry_warning_days`.

    Why it matters: the partner's users stop verifying on that day.

    Example: a CA ending in 10 days.

    Fix: ask the partner for the successor CA and add it beside the current one."""

    code, name, severity = "GW702", "ca-expiring-soon", "warning"
    summary = "An issuing CA certificate ends soon."
    hint = "add the partner's successor CA next to the current one"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        window = dt.timedelta(days=ctx.settings.expiry_warning_days)
        for partner, index, rel, cert in _each_ca(ctx):
            if ctx.at <= cert.not_valid_after_utc < ctx.at + window:
                yield self.at(partner.doc, ("certificates", "issuing_cas", index),
                              f"CA {_subject(cert)} in {rel} ends on {cert.not_valid_after_utc:%Y-%m-%d}",
                              ("partner", partner.model.id))


class CaNotACa(Rule):
    """What it does: reports "CA" files whose certificate is not a CA: basicConstraints missing or
    cA false, or keyUsage without keyCertSign.

    Why it matters: a user or server certificate in the CA list means trust was configured for the
    wrong thing; chain building may then accept certificates it should not.

    Example: a partner's user certificate saved as ca/partner.pem.

    Fix: get the issuing CA certificate itself."""

    code, name, severity = "GW703", "ca-not-a-ca", "error"
    summary = "A file listed as issuing CA holds a certificate that is not a CA."
    hint = "use the partner's issuing CA certificate"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner, index, rel, cert in _each_ca(ctx):
            problem = _not_ca(cert)
            if problem:
                yield self.at(partner.doc, ("certificates", "issuing_cas", index),
                              f"{_subject(cert)} in {rel} is not a CA: {problem}", ("partner", partner.model.id))


def _not_ca(cert: x509.Certificate) -> str | None:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "no basicConstraints extension"
    if not basic.ca:
        return "basicConstraints cA is false"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.key_cert_sign else "keyUsage lacks keyCertSign"


class CaWeakKey(Rule):
    """What it does: reports CA keys weaker than RSA 2048 or an EC curve below 256 bits.

    Why it matters: whoever can factor or solve the CA's key can issue any user certificate.

    Example: a CA with an RSA-1024 key.

    Fix: the partner must re-issue from a stronger CA."""

    code, name, severity = "GW704", "ca-weak-key", "error"
    summary = "An issuing CA has a weak key."
    hint = "the partner must move to a CA with RSA >= 2048 or EC >= P-256"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner, index, rel, cert in _each_ca(ctx):
            key = cert.public_key()
            weak = (isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048) or (
                isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256)
            if weak:
                size = key.key_size if isinstance(key, rsa.RSAPublicKey) else key.curve.name  # type: ignore[union-attr]
                yield self.at(partner.doc, ("certificates", "issuing_cas", index),
                              f"CA {_subject(cert)} in {rel} has a weak key ({type(key).__name__.replace('PublicKey', '')} "
                              f"{size})", ("partner", partner.model.id))


class CaUnsupportedAlgorithm(Rule):
    """What it does: reports CAs with DSA keys, or signed with MD5 or SHA-1.

    Why it matters: these are broken or retired; verifiers refuse them, or should.

    Example: a CA certificate signed with sha1WithRSAEncryption.

    Fix: the partner must re-issue its CA with SHA-256 or better."""

    code, name, severity = "GW705", "ca-unsupported-algorithm", "error"
    summary = "An issuing CA uses a retired algorithm."
    hint = "the partner must re-issue its CA with SHA-256 or better"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner, index, rel, cert in _each_ca(ctx):
            algorithm = _algorithm_problem(cert)
            if algorithm:
                yield self.at(partner.doc, ("certificates", "issuing_cas", index),
                              f"CA {_subject(cert)} in {rel} uses {algorithm}", ("partner", partner.model.id))


def _algorithm_problem(cert: x509.Certificate) -> str | None:
    if isinstance(cert.public_key(), dsa.DSAPublicKey):
        return "a DSA key"
    if isinstance(cert.public_key(), (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return None
    digest = cert.signature_hash_algorithm
    if digest is not None and digest.name in ("md5", "sha1"):
        return f"a {digest.name.upper()} signature"
    return None


class SessionOpenToAnyHolder(Rule):
    """What it does: reports partners whose grants wait for a smart-card session but whose
    certificate requirements list no allowed users (`certificates.identity.allowed`).

    Why it matters: without the list, any certificate the partner's CA issues opens the partner's
    grants, including those of people who left or never needed access; the gateway cannot say who
    may open a session.

    Example: `session: {duration: 1h}` with no `identity` section.

    Fix: add `identity: {source: upn, allowed: [...]}` naming the users who need access."""

    code, name, severity = "GW706", "session-open-to-any-holder", "warning"
    summary = "Any holder of a partner certificate can open a session."
    hint = "list the users who may open a session in certificates.identity.allowed"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        for partner in ctx.partners():
            reqs = partner.model.certificates
            if reqs is not None and reqs.session is not None and reqs.identity is None:
                yield self.at(partner.doc, ("certificates", "session"),
                              f"partner {partner.model.id!r} opens sessions for any certificate its CA issues: no "
                              "certificates.identity.allowed list", ("partner", partner.model.id))


RULES = [CaExpired, CaExpiringSoon, CaNotACa, CaWeakKey, CaUnsupportedAlgorithm, SessionOpenToAnyHolder]
