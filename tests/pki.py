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


UPN = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
PIV_AUTH = "2.16.840.1.101.3.2.1.3.13"


def _upn(value: str) -> bytes:
    raw = value.encode()
    return bytes([0x0C, len(raw)]) + raw


_USER_KEYS: dict[int, Any] = {}  # user certificate serial -> private key, across test PKIs


class Pki:
    """A root CA, a partner issuing CA under it, and a way to issue user certificates and CRLs."""

    def __init__(self, at: dt.datetime, name: str = "Globex") -> None:
        self.at = at
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca(f"{name} Root CA", self.root_key, self.root_key, None)
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = self._ca(f"{name} Smart Card Issuing CA", self.issuing_key, self.root_key, self.root)
        self.keys = _USER_KEYS

    def _ca_name(self, cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def _ca(self, cn: str, key: Any, signer: Any, issuer: x509.Certificate | None) -> x509.Certificate:
        subject = self._ca_name(cn)
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

    def user(self, upn: str = "alice@globex.example", days: tuple[int, int] = (-10, 365), policies: tuple[str, ...] = (PIV_AUTH,),
             ekus: tuple[str, ...] = ("1.3.6.1.5.5.7.3.2", "1.3.6.1.4.1.311.20.2.2"), rsa_bits: int | None = None,
             signer: tuple[Any, x509.Certificate] | None = None) -> x509.Certificate:
        key: Any = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else ec.generate_private_key(ec.SECP256R1())
        signer_key, issuer = signer or (self.issuing_key, self.issuing)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, upn.split("@")[0])]))
                   .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(self.at + dt.timedelta(days=days[0])).not_valid_after(self.at + dt.timedelta(days=days[1]))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                   .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN, _upn(upn)), x509.RFC822Name(upn)]),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False))
        if policies:
            builder = builder.add_extension(x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]), critical=False)
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(e) for e in ekus]), critical=False)
        cert = builder.sign(signer_key, hashes.SHA256())
        self.keys[cert.serial_number] = key
        return cert

    def sibling(self, cn: str) -> tuple[Any, x509.Certificate, x509.CertificateRevocationList]:
        """Another issuing CA under the same root (key, certificate, its empty CRL): a path the root
        vouches for, but not one of the partner's issuing CAs."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._ca(cn, key, self.root_key, self.root)
        crl = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
               .last_update(self.at - dt.timedelta(days=1)).next_update(self.at + dt.timedelta(days=7))
               .sign(key, hashes.SHA256()))
        return key, cert, crl

    def key_pem(self, cert: x509.Certificate) -> bytes:
        return self.keys[cert.serial_number].private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def root_crl(self) -> x509.CertificateRevocationList:
        """The root's (empty) CRL: OpenSSL, as nginx uses it, wants a CRL for every CA of the path."""
        return (x509.CertificateRevocationListBuilder().issuer_name(self.root.subject)
                .last_update(self.at - dt.timedelta(days=1)).next_update(self.at + dt.timedelta(days=7))
                .sign(self.root_key, hashes.SHA256()))

    def server(self, address: str) -> tuple[bytes, bytes]:
        """A TLS server certificate (PEM) and key (PEM) for `address`, issued by the root."""
        key = ec.generate_private_key(ec.SECP256R1())
        import ipaddress

        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
                .issuer_name(self.root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(self.at - dt.timedelta(days=1)).not_valid_after(self.at + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.root_key, hashes.SHA256()))
        return pem(cert), key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())

    def crl(self, revoked: list[x509.Certificate]) -> x509.CertificateRevocationList:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.issuing.subject)
                   .last_update(self.at - dt.timedelta(days=1)).next_update(self.at + dt.timedelta(days=7)))
        for cert in revoked:
            builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                                      .revocation_date(self.at - dt.timedelta(hours=2)).build())
        return builder.sign(self.issuing_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
