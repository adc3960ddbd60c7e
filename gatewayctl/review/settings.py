"""Requirements and settings a reviewer must see, each judged loosened, tightened or changed.

Two families: the effective certificate requirements of a partner (a preset's defaults with the
profile's own fields on top, the session length the gateway will really use, the CAs by content)
and every gateway.yaml setting that bears on access. A loosening is always a risk; "tightened" is
said only when the new value is strictly tighter; anything else is "changed" (a risk where the
change can widen who is accepted without being orderable, such as a different identity field)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from gatewayctl.certs.requirements import effective
from gatewayctl.compile.ir import CertRequirementsIR
from gatewayctl.model.gateway import GatewayFile, Stage
from gatewayctl.model.partner import CertificateRequirements
from gatewayctl.review.change import GATEWAY, Change

How = Literal["more-is-looser", "less-is-looser", "allow-list", "require-list", "present-is-tighter", "neutral", "risky"]
REVOCATION = {"off": 0, "optional": 1, "required": 2}


@dataclass(frozen=True)
class Setting:
    """One compared setting: its name for the reviewer, how to judge a change, how an absent value reads."""

    label: str
    how: How
    none: str = "none"
    key: Callable[[Any], Any] | None = None  # the order of values, when it is not their natural one


def judge(setting: Setting, old: Any, new: Any) -> tuple[str, str, bool] | None:
    """(verdict, detail, risky) for a change of `setting` from `old` to `new`; None when equal.
    An absent value (None) of an allow-list means "anything"; of a limit, "no limit"."""
    if old == new:
        return None
    if setting.how in ("allow-list", "require-list"):
        return _judge_sets(setting, old, new)
    shown = f"{_show(setting, old)} -> {_show(setting, new)}"
    verdict = _verdict(setting, old, new)
    risky = verdict == "loosened" or setting.how == "risky"
    return verdict, f"{shown} ({verdict})", risky


def _verdict(setting: Setting, old: Any, new: Any) -> str:
    if setting.how == "present-is-tighter":
        return "loosened" if new is None else "tightened" if old is None else "changed"
    if setting.how not in ("more-is-looser", "less-is-looser"):
        return "changed"
    key = setting.key or (lambda v: v)
    a, b = (math.inf if v is None else key(v) for v in (old, new))
    looser = b > a if setting.how == "more-is-looser" else b < a
    return "loosened" if looser else "tightened"


def _judge_sets(setting: Setting, old: Iterable[Any] | None, new: Iterable[Any] | None) -> tuple[str, str, bool] | None:
    if old is None or new is None:  # an allow-list that is absent allows anything
        verdict = "tightened" if old is None else "loosened"
        if setting.how == "require-list":
            verdict = "loosened" if new is None else "tightened"
        return verdict, f"{_show(setting, old)} -> {_show(setting, new)} ({verdict})", verdict == "loosened"
    a, b = set(old), set(new)
    if a == b:
        return None
    added, removed = sorted(map(str, b - a)), sorted(map(str, a - b))
    parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
    widened = added if setting.how == "allow-list" else removed
    verdict = "loosened" if widened else "tightened"
    return verdict, f"{'; '.join(parts)} ({verdict})", verdict == "loosened"


def _show(setting: Setting, value: Any) -> str:
    if value is None:
        return setting.none
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(sorted(map(str, value))) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def changes(partner: str, kind: str, settings: Iterable[tuple[Setting, Any, Any]]) -> list[Change]:
    """One Change per setting that differs; a loosening (or a risky change) carries its risk."""
    out = []
    for setting, old, new in settings:
        judged = judge(setting, old, new)
        if judged is None:
            continue
        verdict, detail, risky = judged
        risk = (f"{setting.label} {verdict}" if verdict == "loosened" else f"{setting.label} changed") if risky else ""
        out.append(Change(partner, kind, setting.label, detail, risk))
    return out


# ---- certificates -------------------------------------------------------------------------------

CERTIFICATES = {
    "smart card": Setting("smart card required", "less-is-looser"),
    "session": Setting("session (seconds)", "more-is-looser", none="no session (grants open without one)"),
    "revocation": Setting("revocation checking", "less-is-looser", key=REVOCATION.__getitem__),
    "identity source": Setting("identity field", "risky"),
    "identities": Setting("allowed identities", "allow-list", none="any holder"),
    "cas": Setting("issuing CAs", "allow-list"),
    "chain": Setting("CA chain above the issuing CAs", "neutral"),
    "policy oids": Setting("required policy OIDs", "require-list"),
    "ekus": Setting("required EKUs", "require-list"),
    "rsa": Setting("minimum RSA key size", "less-is-looser"),
    "curves": Setting("accepted EC curves", "allow-list"),
    "lifetime": Setting("longest certificate lifetime (days)", "more-is-looser", none="no limit"),
    "preset": Setting("preset", "neutral"),
}


def certificate_values(reqs: CertificateRequirements, ir: CertRequirementsIR) -> dict[str, Any]:
    """The requirements as the gateway enforces them (preset resolved, session as compiled, CAs by content)."""
    eff = effective(reqs)
    return {
        "smart card": eff.smartcard_required, "session": ir.session_seconds, "revocation": eff.revocation,
        "identity source": eff.identity_source,
        "identities": eff.allowed_identities if reqs.identity is not None else None,
        "cas": _cas(ir), "chain": ir.chain_pem, "policy oids": eff.policy_oids, "ekus": eff.ekus,
        "rsa": eff.min_rsa_bits, "curves": eff.ec_curves, "lifetime": eff.max_lifetime_days, "preset": eff.preset,
    }


class _Ca(str):
    """A CA certificate shown by its subject and compared by its whole PEM (a new key is a new CA)."""

    pem: str

    def __new__(cls, subject: str, pem: str) -> _Ca:
        self = super().__new__(cls, subject)
        self.pem = pem
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ca) and self.pem == other.pem

    def __hash__(self) -> int:
        return hash(self.pem)


def _cas(ir: CertRequirementsIR) -> tuple[_Ca, ...]:
    marker = "-----END CERTIFICATE-----"
    blocks = [b.strip() + "\n" + marker for b in ir.ca_bundle_pem.split(marker) if b.strip()]
    subjects = list(ir.issuer_subjects) + [f"CA {i + 1}" for i in range(len(blocks))]
    return tuple(_Ca(subjects[i], pem) for i, pem in enumerate(blocks))


def certificate_changes(partner: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return changes(partner, "certificates-changed", ((CERTIFICATES[k], old[k], new[k]) for k in CERTIFICATES))


# ---- gateway.yaml -------------------------------------------------------------------------------

def _s(label: str, how: How, none: str = "none") -> Setting:
    return Setting(label, how, none)


def gateway_changes(old: GatewayFile, new: GatewayFile) -> list[Change]:
    """Every gateway.yaml setting that bears on access, judged; gateway-wide changes have partner ""."""
    wg_old, wg_new = old.wireguard, new.wireguard
    pairs: list[tuple[Setting, Any, Any]] = [
        (_s("name", "neutral"), old.name, new.name),
        (_s("wireguard.interface", "neutral"), wg_old.interface, wg_new.interface),
        (_s("wireguard.listen_port", "neutral"), wg_old.listen_port, wg_new.listen_port),
        (_s("wireguard.addresses", "neutral"), [str(a) for a in wg_old.addresses], [str(a) for a in wg_new.addresses]),
        (_s("wireguard.pool", "allow-list"), [str(n) for n in wg_old.pool], [str(n) for n in wg_new.pool]),
        (_s("wireguard.endpoint", "neutral"), wg_old.endpoint, wg_new.endpoint),
        (_s("wireguard.public_key", "neutral"), wg_old.public_key, wg_new.public_key),
        (_s("wireguard.private_key_file", "risky"), wg_old.private_key_file, wg_new.private_key_file),
        (_s("wireguard.mtu", "neutral"), wg_old.mtu, wg_new.mtu),
        (_s("internal_networks", "require-list"), [str(n) for n in old.internal_networks],
         [str(n) for n in new.internal_networks]),
        (_s("classifications (least to most sensitive)", "risky"), " < ".join(old.classifications),
         " < ".join(new.classifications)),
        (_s("stage order (lowest first)", "risky"), " < ".join(old.stages), " < ".join(new.stages)),
        (_s("firewall.table", "neutral"), old.firewall.table, new.firewall.table),
    ]
    pairs += _deny_logging(old, new) + _lint(old, new) + _host(old, new)
    return changes(GATEWAY, "gateway-changed", pairs) + _auth(old, new) + _stages(old, new)


def _deny_logging(old: GatewayFile, new: GatewayFile) -> list[tuple[Setting, Any, Any]]:
    a, b = old.deny_logging, new.deny_logging
    return [(_s("deny_logging.enabled", "less-is-looser"), a.enabled, b.enabled),
            (_s("deny_logging.rate_per_minute", "neutral"), a.rate_per_minute, b.rate_per_minute),
            (_s("deny_logging.burst", "neutral"), a.burst, b.burst),
            (_s("deny_logging.prefix", "neutral"), a.prefix, b.prefix),
            (_s("deny_logging.per_partner", "neutral"), a.per_partner, b.per_partner)]


def _lint(old: GatewayFile, new: GatewayFile) -> list[tuple[Setting, Any, Any]]:
    """lint's thresholds and approvers, and validate's hard limits (exceptions: compare.suppression_changes)."""
    a, b = old.lint, new.lint
    # an empty list lets anyone approve a grant but no one approve an exception: filling it is no tightening
    approvers: How = "risky" if not a.approvers and b.approvers else "allow-list"
    return [(_s("lint.approvers", approvers, none="anyone"), a.approvers or None, b.approvers or None),
            (_s("lint.max_prefix_ipv4", "less-is-looser"), a.max_prefix_ipv4, b.max_prefix_ipv4),
            (_s("lint.max_prefix_ipv6", "less-is-looser"), a.max_prefix_ipv6, b.max_prefix_ipv6),
            (_s("lint.max_port_range", "more-is-looser"), a.max_port_range, b.max_port_range),
            (_s("lint.expiry_warning_days", "neutral"), a.expiry_warning_days, b.expiry_warning_days),
            # a smaller prefix length lets a partner claim a wider network
            (_s("limits.max_partner_network_prefix.ipv4", "less-is-looser"),
             old.limits.max_partner_network_prefix.ipv4, new.limits.max_partner_network_prefix.ipv4),
            (_s("limits.max_partner_network_prefix.ipv6", "less-is-looser"),
             old.limits.max_partner_network_prefix.ipv6, new.limits.max_partner_network_prefix.ipv6)]


def _host(old: GatewayFile, new: GatewayFile) -> list[tuple[Setting, Any, Any]]:
    a, b = old.host.model_dump(), new.host.model_dump()
    # where key files are read from decides which file becomes a peer's preshared key: a reviewer must look
    return [(_s(f"host.{k}", "risky" if k == "preshared_key_dir" else "neutral"), a.get(k), b.get(k))
            for k in sorted(set(a) | set(b))]


def _auth(old: GatewayFile, new: GatewayFile) -> list[Change]:
    a, b = old.auth, new.auth
    if a is None and b is None:
        return []
    if a is None or b is None:
        return [Change(GATEWAY, "gateway-changed", "auth", "session front removed: grants that waited for a session "
                       "no longer do (loosened)", "auth loosened")] if b is None else \
            [Change(GATEWAY, "gateway-changed", "auth", f"session front added on port {b.port}, sessions of at most "
                    f"{b.session} s (changed)")]
    return changes(GATEWAY, "gateway-changed", [
        (_s("auth.session (seconds)", "more-is-looser"), a.session, b.session),
        (_s("auth.crl_file", "present-is-tighter", none="no CRL (revoked certificates are accepted)"), a.crl_file, b.crl_file),
        (_s("auth.port", "neutral"), a.port, b.port),
        (_s("auth.front_user", "risky"), a.front_user, b.front_user),
        (_s("auth.server_certificate", "neutral"), a.server_certificate, b.server_certificate),
        (_s("auth.server_key", "neutral"), a.server_key, b.server_key),
        (_s("auth.front_dir", "neutral"), a.front_dir, b.front_dir),
        (_s("auth.socket", "risky"), a.socket, b.socket),
    ])


def _stages(old: GatewayFile, new: GatewayFile) -> list[Change]:
    out = []
    for name in sorted(set(old.stages) | set(new.stages)):
        a, b = old.stages.get(name), new.stages.get(name)
        if a is None or b is None:
            what = "added" if a is None else "removed"
            out.append(Change(GATEWAY, "gateway-changed", f"stages.{name}", f"stage {what}: {_ceilings(b or a)} (changed)"))
            continue
        out += changes(GATEWAY, "gateway-changed", [
            (_s(f"stages.{name}.max_services", "more-is-looser", none="no limit"), a.max_services, b.max_services),
            (_s(f"stages.{name}.classifications", "allow-list"), a.classifications, b.classifications),
            (_s(f"stages.{name}.max_grant_days", "more-is-looser", none="no limit"), a.max_grant_days, b.max_grant_days),
            (_s(f"stages.{name}.preshared_key_for", "require-list"), a.preshared_key_for, b.preshared_key_for),
            (_s(f"stages.{name}.smartcard_for", "require-list"), a.smartcard_for, b.smartcard_for),
        ])
    return out


def _ceilings(stage: Stage | None) -> str:
    if stage is None:
        return ""
    return (f"classifications {', '.join(stage.classifications)}; at most {stage.max_services or 'any number of'} "
            f"service(s); grants of at most {stage.max_grant_days or 'unlimited'} days")
