"""A test PKI whose CAs carry distinguished names as long as real PIV CAs' (generated at run time).

Real issuing CAs have names such as "CN=U.S. Department of Veterans Affairs PIV-I Issuing CA G2,
OU=Certification Authorities,OU=Veterans Affairs,O=U.S. Government,C=US": far longer than a bare CN,
and with escaped commas in organisation names. The front's nginx map is keyed by them."""

from __future__ import annotations

from cryptography import x509
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

    def _ca_name(self, cn: str) -> x509.Name:
        return piv_name(f"{cn} G2")
