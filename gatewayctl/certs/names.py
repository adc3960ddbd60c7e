"""Distinguished names as OpenSSL prints them (RFC 2253 flags), the form nginx's $ssl_client_i_dn has."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

OPENSSL_NAMES = {NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.SERIAL_NUMBER: "serialNumber",
                 NameOID.GIVEN_NAME: "GN", NameOID.SURNAME: "SN", NameOID.TITLE: "title"}


def openssl_rfc2253(name: x509.Name) -> str:
    """`name` in RFC 2253 order and escaping, with bytes above 127 escaped as \\XX, as OpenSSL's
    XN_FLAG_RFC2253 prints them."""
    text = name.rfc4514_string(OPENSSL_NAMES)
    return "".join(c if ord(c) < 128 else "".join(f"\\{b:02X}" for b in c.encode()) for c in text)
