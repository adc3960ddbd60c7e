"""A test PKI generated at run time: no key or certificate of the tests is stored in git."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID


def ca_certificate(at: dt.datetime, not_after_days: int = 900, ca: bool = True, rsa_bits: int | None = None,
                   dsa_bits: int | None = None, name: str = "Test Issuing CA") -> bytes:
    """A self-signed CA (or, with ca=False, an end-entity) certificate in PEM."""
    key: Any = (rsa.generate_private_key(65537, rsa_bits) if rsa_bits else dsa.generate_private_key(dsa_bits) if dsa_bits
                else ec.generate_private_key(ec.SECP256R1()))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(at - dt.timedelta(days=30))
               .not_valid_after(at + dt.timedelta(days=not_after_days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def pem_private_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
