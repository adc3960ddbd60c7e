"""The saved plan file (`gatewayctl plan -o plan.json`): its models, from which docs/schemas/plan.schema.json
is generated, and which read a saved plan back. No field holds a secret: preshared keys appear only as
fingerprints, the private key only as "replaced" (a flag)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SAVED_FORMAT: Literal["gatewayctl-saved-plan/1"] = "gatewayctl-saved-plan/1"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="a sha256 digest, 64 lowercase hex digits")]
Instant = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                               description="an instant in UTC, YYYY-MM-DDTHH:MM:SSZ")]
PublicKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$",
                                 description="a WireGuard public key (base64)")]
PskFingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$",
                                      description="the preshared key's fingerprint (never the key)")]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfilesPin(Record):
    """Which profiles the plan was made from."""

    revision: str | None = Field(description="the git commit of the profiles, or null outside git")
    dirty: bool | None = Field(description="whether the profiles folder differed from that commit")
    content_digest: Sha256 = Field(description="sha256 over every file below the profiles folder (.git left out)")


class Pins(Record):
    """What the plan holds for; `apply PLAN` re-plans and refuses unless every pin is the same."""

    desired_digest: Sha256 = Field(description="digest of the desired state (as applied.json records it)")
    host_digest: Sha256 = Field(description="digest of the live host state the plan was made against "
                                            "(counters, handshakes and timers left out)")
    profiles: ProfilesPin


class ChangeRecord(Record):
    """One change in words, as `plan` prints it."""

    sign: Literal["+", "-", "~"]
    area: str
    subject: str
    detail: str
    kind: str


class ElementSide(Record):
    """A set or map element on one side of the change."""

    ends_at: Instant | None = Field(description="when the element leaves the kernel by itself; null: never")


class ElementChange(Record):
    """An element of gatewayctl's table added (before null), removed (after null) or re-timed (both)."""

    set: str
    element: str = Field(description="the element as nft lists it")
    words: str = Field(description="the element in words")
    partner: str = Field(description="the partner whose address the element starts from, or 'unknown source'")
    before: ElementSide | None
    after: ElementSide | None


class SetSide(Record):
    kind: str
    type: list[str]
    flags: list[str]


class SetChange(Record):
    """A set or map declared differently (the table is replaced as a whole)."""

    set: str
    before: SetSide | None
    after: SetSide | None


class ChainSide(Record):
    hook: str | None
    priority: int | None
    policy: str | None
    rules: list[str]


class ChainChange(Record):
    """A chain whose rules, hook, priority or policy change (the table is replaced as a whole)."""

    chain: str
    before: ChainSide | None
    after: ChainSide | None


class FirewallPlan(Record):
    table: str
    replace: bool = Field(description="the table is replaced atomically (else elements change in place)")
    elements: list[ElementChange]
    sets: list[SetChange]
    chains: list[ChainChange]


class PeerSide(Record):
    allowed_ips: list[str]
    endpoint: str | None
    keepalive: int
    preshared_key: PskFingerprint | None


class PeerChange(Record):
    """A WireGuard peer added (before null), removed (after null) or changed."""

    public_key: PublicKey
    label: str = Field(description="partner/peer, or 'not in the profiles'")
    before: PeerSide | None
    after: PeerSide | None


class Operations(Record):
    """What apply carries out, exactly; `apply PLAN` refuses unless a fresh plan has the same."""

    create_interface: bool
    mtu: int | None
    up: bool
    addresses_add: list[str]
    addresses_remove: list[str]
    routes_add: list[str]
    routes_remove: list[str]
    listen_port: int | None
    private_key: bool = Field(description="the interface's private key is set from its key file (never shown)")
    peers_upsert: list[PublicKey]
    peers_remove: list[PublicKey]
    nft_replace: bool
    nft_delete: dict[str, list[str]]
    nft_add: dict[str, list[str]]
    remove_guard: bool


class SavedPlan(Record):
    """A plan saved by `gatewayctl plan -o FILE`, applied by `gatewayctl apply FILE`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="gatewayctl saved plan")

    format: Literal["gatewayctl-saved-plan/1"]
    gatewayctl_version: str
    made_at: Instant
    gateway: str
    interface: str
    table: str
    pins: Pins
    blockers: list[str]
    changes: list[ChangeRecord]
    firewall: FirewallPlan
    peers: list[PeerChange]
    operations: Operations
