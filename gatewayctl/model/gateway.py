"""gateway.yaml: the gateway's own settings and the catalogue of trust stages."""

from __future__ import annotations

from pydantic import Field, StrictBool, field_validator, model_validator

from gatewayctl.model.exceptions import MAX_EXCEPTION_DAYS, GatewayException
from gatewayctl.model.ha import HaSettings
from gatewayctl.model.types import (
    AbsolutePath,
    Duration,
    Endpoint,
    Identifier,
    InterfaceAddress,
    InterfaceName,
    LongText,
    Network,
    Port,
    Strict,
    Suppression,
    Text,
    WgPublicKey,
)


class WireGuardSettings(Strict):
    """The gateway's WireGuard interface facing the partners."""

    interface: InterfaceName = Field(description="name of the WireGuard interface on the gateway, e.g. wg-partners")
    listen_port: Port = Field(description="UDP port the gateway listens on")
    addresses: list[InterfaceAddress] = Field(
        min_length=1, description="the gateway's own tunnel address(es) with prefix length, e.g. 10.250.0.1/16"
    )
    pool: list[Network] = Field(min_length=1, description="networks that partner tunnel addresses are taken from")
    endpoint: Endpoint = Field(description="public host:port that partners connect to (written into partner configs)")
    public_key: WgPublicKey = Field(description="the gateway's WireGuard public key (written into partner configs)")
    private_key_file: AbsolutePath = Field(
        description="path of the private key file on the gateway host; the key itself never appears in a profile"
    )
    mtu: int = Field(default=1420, ge=1280, le=9000, strict=True, description="interface MTU (1280-9000)")


class Stage(Strict):
    """A trust stage and its ceilings; partners are placed in exactly one stage."""

    description: LongText = ""
    max_services: int | None = Field(default=None, ge=1, strict=True, description="most services a partner may be granted")
    classifications: list[Identifier] = Field(
        min_length=1, description="data classifications a partner at this stage may reach"
    )
    max_grant_days: int | None = Field(default=None, ge=1, strict=True, description="longest a grant may run, in days")
    preshared_key_for: list[Identifier] = Field(
        default_factory=list, description="classifications whose access needs a WireGuard preshared key on every peer"
    )
    smartcard_for: list[Identifier] = Field(
        default_factory=list, description="classifications whose access needs a smart-card certificate requirement"
    )


class DenyLogging(Strict):
    """How packets dropped by the partner firewall are logged."""

    enabled: StrictBool = True
    rate_per_minute: int = Field(default=10, ge=1, le=10000, strict=True, description="log lines per minute per partner")
    burst: int = Field(default=5, ge=1, le=10000, strict=True, description="burst of log lines above the rate")
    prefix: str = Field(
        default="gwctl-deny",
        pattern=r"^[A-Za-z0-9_.:-]{1,24}$",
        description="log prefix; the partner id is appended (letters, digits and _.:- only)",
    )
    per_partner: StrictBool = Field(
        default=True,
        description=(
            "one log rule per partner so the log prefix names the partner and each partner has its own rate "
            "limit; false keeps the ruleset at a fixed number of rules with one shared prefix"
        ),
    )


class Firewall(Strict):
    """The nftables table gatewayctl owns."""

    table: str = Field(
        default="gatewayctl",
        pattern=r"^gatewayctl(_[a-z0-9]{1,20})?$",
        description="name of the one nftables table (family inet) gatewayctl owns: gatewayctl or gatewayctl_<suffix>",
    )


# Accounts that other software runs as, or root: never the front's user.
SHARED_ACCOUNTS = frozenset({"root", "www-data", "nobody", "nginx", "apache", "http", "daemon"})


class AuthSettings(Strict):
    """The smart-card session front: an mTLS web front (nginx) and the authorizer behind it.

    Partners whose certificate requirements ask for a session reach their grants only while one of
    their users holds a session opened with a certificate that meets those requirements."""

    port: Port = Field(default=8443, description="TCP port of the front on the gateway's tunnel addresses")
    session: Duration = Field(default="8h", validate_default=True,
                              description="how long a session stays open (default 8h); a partner may ask for less")
    server_certificate: AbsolutePath = Field(description="the front's TLS server certificate (PEM) on the gateway host")
    server_key: AbsolutePath = Field(description="the front's TLS server key (PEM, 0600) on the gateway host")
    crl_file: AbsolutePath | None = Field(
        default=None, description="PEM file with the current CRLs of every CA in the session partners' chains; "
        "when set, the front and the authorizer refuse revoked certificates")
    front_dir: AbsolutePath = Field(
        default="/etc/gatewayctl/front", description="where the built front/ folder is installed on the gateway host")
    socket: AbsolutePath = Field(default="/run/gatewayctl/auth.sock", description="the authorizer's Unix socket")
    front_user: str = Field(default="gatewayctl-front", pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
                            description="the user nginx's workers run as, a user of its own (never www-data or "
                            "root); only it may use the authorizer's socket")

    @field_validator("front_user")
    @classmethod
    def _front_user_of_its_own(cls, value: str) -> str:
        # every process of this user may ask the authorizer for sessions: a user shared with other
        # software (every web app on a Debian host runs as www-data) would hand them that power
        if value in SHARED_ACCOUNTS:
            raise ValueError(f"must be a user of the front's own, such as gatewayctl-front (created with useradd "
                             f"--system), not the shared account {value!r}")
        return value


class HostPaths(Strict):
    """Where things live on the gateway host, for the systemd units `build` writes."""

    profiles_dir: AbsolutePath = Field(default="/etc/gatewayctl/profiles", description="the profiles (a git checkout)")
    reports_dir: AbsolutePath = Field(default="/var/lib/gatewayctl/reports", description="where the nightly reports go")
    textfile_dir: AbsolutePath = Field(default="/var/lib/prometheus/node-exporter",
                                       description="node_exporter's textfile collector folder (Prometheus metrics)")
    preshared_key_dir: AbsolutePath = Field(
        default="/etc/gatewayctl/psk", description="the folder of the peers' preshared key files; a peer's "
        "preshared_key_file names a file inside it")


class LintSettings(Strict):
    """Thresholds of the policy linter."""

    expiry_warning_days: int = Field(default=30, ge=1, le=365, strict=True,
                                     description="warn when a grant, agreement or CA ends within this many days")
    max_prefix_ipv4: int = Field(default=24, ge=0, le=32, strict=True,
                                 description="a service network wider than this IPv4 prefix is too broad")
    max_prefix_ipv6: int = Field(default=64, ge=0, le=128, strict=True,
                                 description="a service network wider than this IPv6 prefix is too broad")
    max_port_range: int = Field(default=100, ge=1, le=65535, strict=True, description="a port range of more ports is too wide")
    approvers: list[Text] = Field(default_factory=list,
                                  description="who may approve grants (empty: anyone) and exceptions (empty: no one)")
    max_exception_days: int = Field(default=180, ge=1, le=MAX_EXCEPTION_DAYS, strict=True,
                                    description="the longest an exception may run, in days from the compile instant")


class PrefixLimit(Strict):
    """The widest prefix allowed, per address family."""

    # a partner LAN wider than /8 or /16 is no partner's: the floors keep the limit from being switched off
    ipv4: int = Field(default=16, ge=8, le=32, strict=True, description="widest IPv4 prefix (8-32, default 16)")
    ipv6: int = Field(default=48, ge=16, le=128, strict=True, description="widest IPv6 prefix (16-128, default 48)")


class Limits(Strict):
    """Hard limits that `validate` enforces; unlike lint thresholds, no suppression or exception lifts them."""

    max_partner_network_prefix: PrefixLimit = Field(
        default_factory=PrefixLimit, description="a partner's tunnel addresses and LAN networks may be no wider "
        "than this (default /16 for IPv4, /48 for IPv6)")


class GatewayFile(Strict):
    """gateway.yaml."""

    name: Identifier = Field(description="the gateway's name")
    description: LongText = ""
    wireguard: WireGuardSettings
    internal_networks: list[Network] = Field(min_length=1, description="the internal networks this gateway fronts")
    classifications: list[Identifier] = Field(
        min_length=1, description="data classifications, ordered from least to most sensitive"
    )
    stages: dict[Identifier, Stage] = Field(min_length=1, description="trust stages by name, e.g. pilot, established, strategic")
    deny_logging: DenyLogging = Field(default_factory=DenyLogging)
    firewall: Firewall = Field(default_factory=Firewall)
    lint: LintSettings = Field(default_factory=LintSettings)
    limits: Limits = Field(default_factory=Limits, description="hard limits on what partners may claim")
    auth: AuthSettings | None = Field(default=None, description="the smart-card session front, if any partner needs one")
    host: HostPaths = Field(default_factory=HostPaths, description="paths on the gateway host used by the systemd units")
    ha: HaSettings | None = Field(default=None, description="a high-availability pair of nodes (docs/ha.md); "
                                  "without it the gateway is one host")
    owner: Text | None = None
    suppressions: list[Suppression] = Field(default_factory=list, description="accepted lint exceptions for the gateway")
    exceptions: list[GatewayException] = Field(
        default_factory=list, description="exceptions the gateway owners grant, to any rule on any object; the only "
        "way to except stage, addressing, certificate and secret rules")

    @model_validator(mode="after")
    def _classifications_known(self) -> GatewayFile:
        check_classifications(self.classifications, self.stages)
        return self


def check_classifications(classifications: list[str], stages: dict[str, Stage]) -> None:
    """Raise ValueError unless the classifications are unique and every stage names only known ones."""
    if len(set(classifications)) != len(classifications):
        raise ValueError(f"classifications must be unique, found {classifications}")
    known = set(classifications)
    for name, stage in stages.items():
        for field in ("classifications", "preshared_key_for", "smartcard_for"):
            unknown = sorted(set(getattr(stage, field)) - known)
            if unknown:
                raise ValueError(f"stage {name!r} {field} names unknown classification(s) {unknown}; known: {classifications}")
