"""Make the sample PKI of the README's `cert verify` example, once; run it again to renew it.

    .venv/bin/python docs/examples/make-cert-sample.py

Writes the example estate's issuing CA of Globex (profiles/ca/globex-issuing-ca.pem, same name and
validity as before), a smart-card user certificate that meets globex's requirements
(docs/examples/globex-alice.pem), one that the CA has revoked (docs/examples/globex-bob.pem) and the
CA's CRL (docs/examples/globex-issuing.crl). The private keys exist only in this process: none is
written anywhere. After a run, refresh the golden files that carry the CA (the globex ca-bundle.pem
and certificate-requirements.json under tests/golden/example/partners/globex/).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent.parent
ISSUED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
USER_DAYS = 1094                       # globex's max_lifetime_days is 1095
PIV_AUTH = x509.ObjectIdentifier("2.16.840.1.101.3.2.1.3.13")
SMARTCARD_LOGON = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
UPN = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def issuing_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Globex's self-signed smart-card issuing CA, the trust anchor globex.yaml names."""
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Globex Corporation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Globex Smart Card Issuing CA 1")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).not_valid_after(dt.datetime(2035, 12, 30, tzinfo=dt.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def user(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, upn: str) -> x509.Certificate:
    """A PIV-authentication smart-card certificate (P-256) for `upn`, valid USER_DAYS from ISSUED."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = upn.encode()
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, upn.split("@")[0])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(ISSUED).not_valid_after(ISSUED + dt.timedelta(days=USER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN, bytes([0x0C, len(raw)]) + raw),
                                                        x509.RFC822Name(upn)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(PIV_AUTH, None)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, SMARTCARD_LOGON]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def crl(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, revoked: x509.Certificate) -> bytes:
    """The CA's CRL (PEM) revoking `revoked`, current until the sample certificates expire."""
    entry = x509.RevokedCertificateBuilder().serial_number(revoked.serial_number).revocation_date(ISSUED).build()
    return (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(ISSUED)
            .next_update(ISSUED + dt.timedelta(days=USER_DAYS)).add_revoked_certificate(entry)
            .sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def main() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issuing_ca(ca_key)
    alice, bob = user(ca_key, ca, "alice@globex.example"), user(ca_key, ca, "bob@globex.example")
    pem = serialization.Encoding.PEM
    (REPO / "profiles/ca/globex-issuing-ca.pem").write_bytes(ca.public_bytes(pem))
    examples = REPO / "docs/examples"
    (examples / "globex-alice.pem").write_bytes(alice.public_bytes(pem))
    (examples / "globex-bob.pem").write_bytes(bob.public_bytes(pem))
    (examples / "globex-issuing.crl").write_bytes(crl(ca_key, ca, bob))


if __name__ == "__main__":
    main()
