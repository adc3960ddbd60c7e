"""A test PKI whose CAs carry distinguished names as long as real PIV CAs' (generated at run time).

Real issuing CAs have names such as "CN=U.S. Department of Veterans Affairs PIV-I Issuing CA G2,
OU=Certification Authorities,OU=Veterans Affairs,O=U.S. Government,C=US": far longer than a bare CN,
and with escaped commas in organisation names. The front's nginx map is keyed by them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from tests.pki import Pki


def piv_name(cn: str, org: str = "Globex Federal Services, Inc.") -> x509.Name:
    """C=US, O=<org>, OU=Certification Authorities, OU=PIV-I, CN=<cn> (RFC 2253 prints it reversed)."""
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Certification Authorities"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "PIV-I Hardware Credentials"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class PivPki(Pki):
    """Pki with PIV-like CA names: "<name> Root CA" and "<name> Smart Card Issuing CA" as the CNs."""

    def _ca(self, cn: str, key: Any, signer: Any, issuer: x509.Certificate | None) -> x509.Certificate:
        subject = piv_name(f"{cn} G2")
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(self.at - dt.timedelta(days=365))
                   .not_valid_after(self.at + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                                            critical=False)
        return builder.sign(signer, hashes.SHA256())
