"""partners/<id>.yaml: one file per partner, the partner's whole trust profile."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema, model_validator

from gatewayctl.model.types import (
    IDENTIFIER_PATTERN,
    RELATIVE_PATTERN,
    Duration,
    Email,
    Endpoint,
    Identifier,
    LongText,
    Network,
    Oid,
    PortSpec,
    RelativePath,
    Strict,
    Suppression,
    Text,
    WgPublicKey,
)

Curve = Literal["P-256", "P-384", "P-521"]


def _key_file(value: str) -> str:
    # where the file may be (inside host.preshared_key_dir, not the gateway's own key) is checked
    # against gateway.yaml in validate; a '..' is refused here, whatever follows it
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'; name a file inside gateway.yaml's host.preshared_key_dir")
    if value.endswith("/"):
        raise ValueError("must name a file, not a folder")
    return value


KeyFile = Annotated[
    str,
    StringConstraints(pattern=RELATIVE_PATTERN, max_length=400),
    AfterValidator(_key_file),
    Field(description="a key file name relative to host.preshared_key_dir (letters, digits and ._/+- only), or an "
          "absolute path inside that folder"),
]


class Contact(Strict):
    """A person at the partner who can be reached about this access."""

    name: Text
    email: Email
    role: Literal["technical", "security", "business", "legal"] = "technical"
    phone: Text | None = None


class Agreement(Strict):
    """The agreement in force with the partner; no grant may outlive it."""

    reference: Text = Field(description="the agreement's reference, e.g. a contract number")
    expires: dt.date = Field(description="last day the agreement is in force (YYYY-MM-DD)")
    signed: dt.date | None = None


def _all_as_list(value: object) -> object:
    """`all` (every gateway) is read as the one-item list ["all"]: one list type, so a bad name in the
    list is one plain error, not one per branch of a union; no gateway may be named `all` (model/fleet.py)."""
    return ["all"] if value == "all" else value


# The partner's gateways in order of preference, or `all`; JSON Schema shows both forms.
GatewayChoice = Annotated[
    list[Identifier] | None, BeforeValidator(_all_as_list),
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string", "pattern": IDENTIFIER_PATTERN}, "minItems": 1},
                              {"const": "all"}, {"type": "null"}]})]


class Peer(Strict):
    """One WireGuard peer of the partner: a site or a device."""

    name: Identifier
    public_key: WgPublicKey
    addresses: list[Network] = Field(min_length=1, description="tunnel addresses, from the gateway's pool")
    networks: list[Network] = Field(
        default_factory=list, description="the partner's LAN networks behind this peer (site-to-site)"
    )
    endpoint: Endpoint | None = Field(default=None, description="the peer's public host:port, if it has a fixed one")
    keepalive: int | None = Field(default=None, ge=1, le=65535, strict=True, description="persistent keepalive, seconds")
    preshared_key_file: KeyFile | None = Field(
        default=None, description="this peer's preshared key file on the gateway host: a file name relative to "
        "gateway.yaml's host.preshared_key_dir (an absolute path must lie inside that folder)"
    )
    gateways: list[Identifier] | None = Field(
        default=None, min_length=1, description="in an estate of several gateways: the ones this peer connects "
        "through (default: the partner's gateways); it needs a tunnel address in each one's pool")
    suppressions: list[Suppression] = Field(default_factory=list, description="accepted lint exceptions for this peer")


class Grant(Strict):
    """Access to one catalogue service, with who approved it, why and until when."""

    service: Identifier = Field(description="name of a service in services.yaml")
    ports: list[PortSpec] | None = Field(
        default=None, description="narrow the grant to some of the service's ports; never wider than the service"
    )
    justification: Text | None = Field(default=None, description="why the partner needs this access")
    approved_by: Text | None = Field(default=None, description="who approved the grant")
    expires: dt.date | None = Field(default=None, description="last day of access (YYYY-MM-DD, inclusive, UTC)")
    suppressions: list[Suppression] = Field(default_factory=list, description="accepted lint exceptions for this grant")

    @model_validator(mode="after")
    def _narrowing_not_empty(self) -> Grant:
        if self.ports is not None and not self.ports:
            raise ValueError("ports: [] would grant nothing; remove 'ports' to grant all of the service's ports")
        return self


class Identity(Strict):
    """How a certificate names its holder, and who may hold one."""

    source: Literal["san-uuid", "upn", "email", "subject-cn"] = Field(
        description="where the identity is read: SAN URI urn:uuid, SAN UPN (otherName), SAN e-mail, or subject CN")
    allowed: list[Text] = Field(min_length=1, description="the partner's users allowed to authenticate")


class SessionPolicy(Strict):
    """Keep the partner's grants closed until one of its users authenticates at the gateway's front."""

    duration: Duration | None = Field(
        default=None, description="how long a session stays open; at most, and by default, gateway.yaml's auth.session")


class CertificateRequirements(Strict):
    """What the partner's users must present: smart-card or other certificates.

    A `preset` supplies recognised defaults (see docs/certificates.md); fields written here
    override it."""

    preset: Literal["piv-auth", "piv-i-hardware", "derived-piv", "company-smartcard"] | None = Field(
        default=None, description="named requirement set: piv-auth, piv-i-hardware, derived-piv, company-smartcard")
    revocation: Literal["required", "optional", "off"] = Field(
        default="optional", description="CRL checking: required (no CRL, no access), optional, or off")
    identity: Identity | None = None
    smartcard_required: bool = Field(default=True, strict=True, description="a smart card (hardware key) is required")
    issuing_cas: list[RelativePath] = Field(min_length=1, description="PEM files of the partner's issuing CAs, beside the profiles")
    ca_chain: list[RelativePath] = Field(
        default_factory=list, description="PEM files of the CAs above the issuing CAs, up to a root; the mTLS front "
        "needs the whole path (certificates are still accepted only when issued by an issuing CA)")
    session: SessionPolicy | None = Field(
        default=None, description="grants open only during a smart-card session (needs gateway.yaml's auth section)")
    policy_oids: list[Oid] = Field(default_factory=list, description="certificate policy OIDs, all of which must be present")
    ekus: list[Oid | Literal["clientAuth", "smartcardLogon", "pkinitClientAuth"]] = Field(
        default_factory=list, description="extended key usages, all of which must be present"
    )
    min_rsa_bits: int = Field(default=2048, ge=2048, le=16384, strict=True)
    ec_curves: list[Curve] = Field(default_factory=lambda: list[Curve](["P-256", "P-384"]))
    max_lifetime_days: int | None = Field(default=None, ge=1, le=3650, strict=True)


class PartnerFile(Strict):
    """partners/<id>.yaml."""

    id: Identifier = Field(description="the partner's id; must equal the file name without .yaml")
    name: Text = Field(description="the partner's display name")
    description: LongText = ""
    stage: Identifier = Field(description="trust stage, one of the stages in gateway.yaml")
    contacts: list[Contact] = Field(min_length=1)
    agreement: Agreement
    review_by: dt.date | None = Field(default=None, description="date by which this profile must be reviewed")
    gateways: GatewayChoice = Field(
        default=None, description="the gateways this partner connects through, in order of preference: a service "
        "that several of them front is reached through the first (docs/fleet.md); `all` for every gateway in "
        "gateway.yaml's order. Required when the estate has several gateways")
    peers: list[Peer] = Field(min_length=1)
    grants: list[Grant] = Field(default_factory=list)
    certificates: CertificateRequirements | None = None
    suppressions: list[Suppression] = Field(default_factory=list, description="accepted lint exceptions for this partner")
