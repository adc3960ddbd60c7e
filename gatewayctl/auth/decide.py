"""The authorizer's decision: pure, from the request the front passes and the compiled policy.

The front (nginx) has checked the TLS handshake, the path to a CA it trusts and (when configured)
the CRLs. The authorizer trusts none of that blindly: it finds the partner from the source address
(which WireGuard authenticates), checks that the access in force (what the last apply installed)
still lets that address reach the front and still holds a grant waiting for a session from it,
then checks the certificate against every requirement of that partner again, with cryptography's
verifier and gatewayctl's own checks (policy OIDs, EKUs, key strength, lifetime, revocation,
identity mapping)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gatewayctl.auth.inforce import InForce
from gatewayctl.certs.requirements import Effective, effective
from gatewayctl.certs.verify import verify
from gatewayctl.compile.ir import AuthClient
from gatewayctl.pipeline import Compiled


@dataclass(frozen=True)
class Decision:
    """One decision, as logged: never a key, never the whole certificate."""

    outcome: str  # accepted | rejected
    source: str
    partner: str | None
    identity: str | None = None
    serial: str | None = None
    subject: str | None = None
    issuer: str | None = None
    reasons: tuple[str, ...] = ()
    session_seconds: int | None = None
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    tls_session: str | None = None  # the TLS session nginx verified the certificate in, for the record

    def to_json(self) -> dict[str, Any]:
        until = self.time + dt.timedelta(seconds=self.session_seconds) if self.session_seconds else None
        return {"time": _stamp(self.time), "outcome": self.outcome, "source": self.source, "partner": self.partner,
                "identity": self.identity, "serial": self.serial, "subject": self.subject, "issuer": self.issuer,
                "reasons": list(self.reasons), "session_until": _stamp(until) if until else None,
                "tls_session": self.tls_session}

    def line(self) -> str:
        """One log line for the service's journal."""
        who = f"partner={self.partner or '-'} source={self.source} identity={self.identity or '-'} serial={self.serial or '-'}"
        if self.outcome == "accepted":
            return f"auth accepted {who} session={self.session_seconds}s"
        return f"auth {self.outcome} {who}: " + "; ".join(self.reasons)


def _tls_session(headers: dict[str, str]) -> str | None:
    """nginx's $ssl_session_id (hex), kept only in that form: it goes into the log."""
    value = headers.get("x-gatewayctl-tls-session", "")
    return value if 0 < len(value) <= 128 and all(c in "0123456789abcdefABCDEF" for c in value) else None


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SessionPartner:
    id: str
    requirements: Effective
    cas: list[x509.Certificate]
    session_seconds: int


class Authorizer:
    """Decides on requests for one compiled estate."""

    def __init__(self, compiled: Compiled, crl_file: Path | None) -> None:
        policy = compiled.policy
        if policy.auth is None:
            raise ValueError("gateway.yaml has no auth section: there is no session to authorize")
        self.table = policy.table.name
        self.crl_file = crl_file
        models = {p.model.id: p.model for p in compiled.estate.partners}
        self.partners: dict[str, SessionPartner] = {}
        for partner in policy.partners:
            reqs = partner.certificates
            model = models[partner.id].certificates
            if reqs is None or reqs.session_seconds is None or model is None:
                continue
            cas = x509.load_pem_x509_certificates(reqs.ca_bundle_pem.encode())
            self.partners[partner.id] = SessionPartner(partner.id, effective(model), cas, reqs.session_seconds)
        self.clients: list[AuthClient] = sorted(policy.table.auth_clients, key=lambda c: -c.source.prefixlen)

    def partner_of(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return next((c.partner for c in self.clients if address in c.source), None)

    def decide(self, headers: dict[str, str], now: dt.datetime, in_force: InForce | str) -> Decision:
        """The decision on one request the front passed on; `in_force`: the access the last apply
        installed, or why there is none (then nothing opens)."""
        source = headers.get("x-gatewayctl-address", "")
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return Decision("rejected", source or "-", None, reasons=("source address: not an IP address",), time=now)
        source = str(address)
        partner_id = self.partner_of(address)
        if partner_id is None:
            return Decision("rejected", source, None, reasons=(
                f"source address {source}: not an address of a partner whose grants wait for a session",), time=now)
        refusal = in_force if isinstance(in_force, str) else in_force.refusal(address, now)
        if refusal is not None:
            return Decision("rejected", source, partner_id, reasons=(refusal,), time=now)
        front_says = headers.get("x-gatewayctl-partner", "")
        if front_says != partner_id:
            return Decision("rejected", source, partner_id, reasons=(
                f"front and authorizer disagree on the partner ({front_says or 'none'} / {partner_id}): "
                "rebuild and reload the front",), time=now)
        status = headers.get("x-gatewayctl-verify", "")
        if status != "SUCCESS":
            return Decision("rejected", source, partner_id, reasons=(f"front: client certificate {status or 'missing'}",),
                            time=now)
        try:
            leaf = x509.load_pem_x509_certificate(urllib.parse.unquote(headers.get("x-gatewayctl-certificate", "")).encode())
        except ValueError:
            return Decision("rejected", source, partner_id, reasons=("certificate: not a PEM certificate",), time=now)
        if headers.get("x-gatewayctl-fingerprint", "").lower() != hashlib.sha1(leaf.public_bytes(Encoding.DER)).hexdigest():
            return Decision("rejected", source, partner_id, reasons=(
                "front: the certificate is not the one the TLS connection verified (fingerprint missing or different)",),
                time=now)
        partner = self.partners[partner_id]
        result = verify(leaf, [], partner.cas, partner.requirements, now, self._crl_for(leaf))
        common: dict[str, Any] = dict(identity=result.identity, serial=result.serial, subject=leaf.subject.rfc4514_string(),
                                      issuer=leaf.issuer.rfc4514_string(), time=now,
                                      tls_session=_tls_session(headers))
        if not result.accepted:
            return Decision("rejected", source, partner_id, reasons=tuple(str(u) for u in result.unmet), **common)
        return Decision("accepted", source, partner_id, session_seconds=partner.session_seconds, **common)

    def _crl_for(self, leaf: x509.Certificate) -> x509.CertificateRevocationList | None:
        """The CRL of the leaf's issuer from auth.crl_file, read on every decision (CRLs are replaced daily)."""
        if self.crl_file is None:
            return None
        try:
            data = self.crl_file.read_bytes()
        except OSError:
            return None
        marker = b"-----BEGIN X509 CRL-----"
        for block in data.split(marker)[1:]:
            try:
                crl = x509.load_pem_x509_crl(marker + block)
            except ValueError:
                continue
            if crl.issuer == leaf.issuer:
                return crl
        return None
