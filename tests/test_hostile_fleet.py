"""A hostile partner (and a careless engineer) against the estate of several gateways (issue 17, 1-2).

Each attack either is refused (a passing test) or is a defect, marked xfail(strict=True) with what
happens and what should happen, so the suite stays green until the lead fixes it (then the xfail
turns into a failure that says to remove the marker).

Expectations come from a small model of the rules of docs/gateways.md written here (`Oracle`), from
the test's own data: never from gatewayctl's compile or policy code. Observed behaviour comes from
the commands and from `compile_profiles`, which are what is under test.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import click
import pytest

from gatewayctl.cli.common import Context, one_gateway
from gatewayctl.loader.yaml12 import read_document
from gatewayctl.pipeline import compile_profiles
from tests.conftest import AT, AT_DT, PROFILES, run_cli
from tests.fleet_estate import make_fleet

FRA, DAL = "gw-fra-1", "gw-dal-1"
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return make_fleet(PROFILES, tmp_path / "fleet")


def data(path: Path) -> Any:
    return read_document(path, path.name).data


def edit(path: Path, change: Any) -> None:
    doc = data(path)
    change(doc)
    path.write_text(json.dumps(doc, indent=1, default=str))


def validate(root: Path) -> tuple[int, str]:
    result = run_cli("--profiles", str(root), "validate", "--at", AT)
    return result.exit_code, result.stdout + result.stderr


def compiled_grants(root: Path) -> dict[str, dict[str, set[str]]]:
    """gateway -> partner -> services compiled (in force) on it."""
    out = {}
    for gw in data(root / "gateway.yaml")["gateways"]:
        policy = compile_profiles(root, AT_DT, gw).policy
        out[gw] = {p.id: {g.service for g in p.grants} for p in policy.partners}
    return out


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    """1-based line of the first line containing `needle` (after the first line containing `after`)."""
    lines = path.read_text().splitlines()
    start = next(i for i, t in enumerate(lines) if after in t) if after else 0
    return next(i for i, t in enumerate(lines) if i >= start and needle in t) + 1


def public_key() -> str:
    """A WireGuard public key made now (its private key is thrown away)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------- the oracle: docs/gateways.md's rules

class Oracle:
    """The routing rules of docs/gateways.md, modelled from the YAML alone."""

    def __init__(self, root: Path) -> None:
        gateway = data(root / "gateway.yaml")
        self.order = list(gateway["gateways"])
        self.internal = {g: [ipaddress.ip_network(n) for n in s["internal_networks"]] for g, s in gateway["gateways"].items()}
        self.services = {k: [ipaddress.ip_network(a) for a in v["addresses"]]
                         for k, v in data(root / "services.yaml")["services"].items()}
        self.partners = {p.stem: data(p) for p in sorted((root / "partners").glob("*.yaml"))}

    def fronts(self, gw: str, service: str) -> bool:
        return all(any(a.version == n.version and a.subnet_of(n) for n in self.internal[gw])  # type: ignore[arg-type]
                   for a in self.services[service])

    def gateways_of(self, partner: str) -> list[str]:
        g = self.partners[partner].get("gateways")
        return list(self.order) if g == "all" else list(g)

    def route(self, partner: str, service: str) -> str | None:
        return next((g for g in self.gateways_of(partner) if self.fronts(g, service)), None)

    def expected(self, in_force: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
        """gateway -> partner -> services, for the services `in_force` per partner (expiry is not modelled)."""
        out: dict[str, dict[str, set[str]]] = {g: {} for g in self.order}
        for pid, doc in self.partners.items():
            for gw in self.gateways_of(pid):
                if any(gw in (peer.get("gateways") or self.gateways_of(pid)) for peer in doc["peers"]):
                    out[gw][pid] = set()
            for grant in doc.get("grants", []):
                if grant["service"] in in_force.get(pid, set()):
                    via = self.route(pid, grant["service"])
                    assert via is not None
                    out[via][pid].add(grant["service"])
        return out


# The example estate's grants in force on AT (initech's status-page expired on 2026-10-31), read off
# the profiles by hand.
IN_FORCE = {"acme": {"crm-api", "edi-sftp", "intranet-web", "lab-ping"}, "globex": {"erp-db", "crm-api", "file-drop"},
            "initech": {"intranet-web"}, "umbrella": {"intranet-web", "build-cache", "dns"}}


def _initech_dal_first(d: dict[str, Any]) -> None:
    d["gateways"] = [DAL, FRA]  # status-page and 10.1 services through dal; intranet-web (it has an IPv6 address) fra


def _globex_all_peer_narrowed(d: dict[str, Any]) -> None:
    d["gateways"] = "all"
    d["peers"].append({**d["peers"][0], "name": "globex-dc2", "public_key": public_key(), "addresses": ["10.251.2.2/32"],
                       "networks": [], "gateways": [DAL], "preshared_key_file": "/etc/gatewayctl/psk/globex-dc2.psk"})


@pytest.mark.parametrize("variant", ["as-built", "initech-dal-first", "globex-all-peer-narrowed"])
def test_each_gateway_compiles_exactly_the_grants_the_rules_route_to_it(fleet: Path, variant: str) -> None:
    if variant == "initech-dal-first":
        edit(fleet / "partners" / "initech.yaml", _initech_dal_first)
    elif variant == "globex-all-peer-narrowed":
        edit(fleet / "partners" / "globex.yaml", _globex_all_peer_narrowed)
    assert compiled_grants(fleet) == Oracle(fleet).expected(IN_FORCE)


def test_every_partner_config_routes_each_address_to_one_gateway(fleet: Path, tmp_path: Path) -> None:
    """All partners, all gateways, with initech (all four services) reordered to [dal, fra]."""
    edit(fleet / "partners" / "initech.yaml", _initech_dal_first)
    out = tmp_path / "out"
    assert run_cli("--profiles", str(fleet), "build", "-o", str(out), "--at", AT).exit_code == 0
    routed: dict[str, list[tuple[str, Net]]] = {}
    for conf in out.glob("*/partners/*/*.conf"):
        allowed = re.search(r"^AllowedIPs = (.*)$", conf.read_text(), re.M)  # none: nothing granted through it
        routed.setdefault(conf.parent.name, []).extend(
            (conf.parts[-4], ipaddress.ip_network(n.strip())) for n in (allowed.group(1).split(",") if allowed else []))
    assert set(routed) == {"acme", "globex", "initech", "umbrella"}
    for partner, nets in routed.items():
        clashes = [(a, b) for i, a in enumerate(nets) for b in nets[i + 1:]
                   if a[0] != b[0] and a[1].version == b[1].version and a[1].overlaps(b[1])]
        assert not clashes, (partner, clashes)


# ---------------------------------------------------------------- attacks refused (passing)

def _partially_fronted(root: Path) -> None:
    edit(root / "services.yaml", lambda d: d["services"].__setitem__(
        "split", {**d["services"]["erp-db"], "addresses": ["10.2.0.9/32", "fd00:1::9/128"]}))  # dal: v4 only; fra: v6 only
    edit(root / "partners" / "globex.yaml", lambda d: d["grants"].append({**d["grants"][0], "service": "split"}))


def _crossed_v4(root: Path) -> None:  # a /24 through dal (first) and a host inside it only fra fronts (its IPv6)
    edit(root / "services.yaml", lambda d: d["services"].__setitem__(
        "net-10-1-0", {**d["services"]["crm-api"], "addresses": ["10.1.0.0/24"]}))
    def grants(d: dict[str, Any]) -> None:
        d["gateways"] = [DAL, FRA]
        d["grants"] = [{**d["grants"][1], "service": "net-10-1-0"}, {**d["grants"][1], "service": "intranet-web"}]
    edit(root / "partners" / "acme.yaml", grants)


@pytest.mark.parametrize(("attack", "expect"), [
    ("partially-fronted", r"globex\.yaml:(?P<line>\d+): grants\[3\]\.service: 'split' is fronted by no gateway"),
    ("crossed-v4", r"acme\.yaml:(?P<line>\d+): grants\[1\]\.service: 'intranet-web' is reached through gateway 'gw-fra-1' "
                   r"and 'net-10-1-0'"),
    ("peer-narrows-outside", r"umbrella\.yaml:(?P<line>\d+): peers\[1\]\.gateways\[0\]: 'gw-dal-1' is not one of the "
                             r"partner's gateways"),
    ("address-in-foreign-pool", r"acme\.yaml:(?P<line>\d+): peers\[0\]\.addresses\[1\]: 10\.251\.1\.1/32 is in the pool "
                                r"of none of the peer's gateways"),
    ("all-without-address", r"umbrella\.yaml:(?P<line>\d+): peers\[0\]\.addresses: peer 'umbrella-london' connects "
                            r"through gateway 'gw-dal-1' but has no tunnel address in its pool"),
    ("gateway-listed-twice", r"acme\.yaml:(?P<line>\d+): gateways\[1\]: 'gw-fra-1' is listed twice"),
])
def test_attacks_on_routing_are_refused_at_the_right_line(fleet: Path, attack: str, expect: str) -> None:
    partners = fleet / "partners"
    if attack == "partially-fronted":
        _partially_fronted(fleet)
        want = line_of(partners / "globex.yaml", '"split"')
    elif attack == "crossed-v4":
        _crossed_v4(fleet)
        want = line_of(partners / "acme.yaml", '"intranet-web"')
    elif attack == "peer-narrows-outside":
        edit(partners / "umbrella.yaml", lambda d: d["peers"][1].update(gateways=[DAL]))
        want = line_of(partners / "umbrella.yaml", f'"{DAL}"')
    elif attack == "address-in-foreign-pool":  # acme (fra only) takes a dal address
        edit(partners / "acme.yaml", lambda d: d["peers"][0]["addresses"].append("10.251.1.1/32"))
        want = line_of(partners / "acme.yaml", "10.251.1.1/32")
    elif attack == "all-without-address":  # `all` puts umbrella on dal, where it has no address
        edit(partners / "umbrella.yaml", lambda d: d.update(gateways="all"))
        want = line_of(partners / "umbrella.yaml", '"addresses"')
    else:
        edit(partners / "acme.yaml", lambda d: d.update(gateways=[FRA, FRA]))
        want = line_of(partners / "acme.yaml", '"gateways"') + 2
    code, output = validate(fleet)
    found = re.search(expect, output)
    assert code == 2 and found, output
    assert int(found.group("line")) == want, output


def test_a_service_fronted_by_both_is_opened_on_one_gateway_only(fleet: Path, tmp_path: Path) -> None:
    """globex is on both; crm-api (10.1.0.5) is fronted by both: only fra (first) opens it."""
    out = tmp_path / "out"
    assert run_cli("--profiles", str(fleet), "build", "-o", str(out), "--at", AT).exit_code == 0
    fra = (out / FRA / "nftables" / "gatewayctl.nft").read_text()
    dal = (out / DAL / "nftables" / "gatewayctl.nft").read_text()
    assert re.search(r"10\.250\.2\.1 \. 10\.1\.0\.5", fra) and not re.search(r"10\.251\.2\.1 \. 10\.1\.0\.5", dal)
    assert re.search(r"10\.251\.2\.1 \. 10\.2\.0\.5", dal) and "10.2.0.5" not in fra


@pytest.mark.parametrize("name", ["../x", "Drop", "a" * 33, "gw fra"])
def test_a_gateway_name_that_is_a_path_or_too_long_is_refused(fleet: Path, name: str) -> None:
    edit(fleet / "gateway.yaml", lambda d: d["gateways"].__setitem__(name, d["gateways"].pop(DAL)))
    code, output = validate(fleet)
    assert code == 2 and re.search(r"gateway\.yaml:\d+: gateways\.", output), output
    assert name in output


def test_a_gateway_named_like_an_nft_keyword_builds_a_ruleset_of_its_own_folder(fleet: Path, tmp_path: Path) -> None:
    def rename(d: dict[str, Any]) -> None:
        d["gateways"]["drop"] = d["gateways"].pop(DAL)
    edit(fleet / "gateway.yaml", rename)
    for p in ("globex", "initech"):
        edit(fleet / "partners" / f"{p}.yaml", lambda d: d.update(gateways=[FRA, "drop"]))
    out = tmp_path / "out"
    result = run_cli("--profiles", str(fleet), "build", "-o", str(out), "--at", AT)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted([FRA, "drop"])
    assert "10.2.0.5" in (out / "drop" / "nftables" / "gatewayctl.nft").read_text()


def test_build_of_one_gateway_leaves_the_other_gateways_folder_alone(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("--profiles", str(fleet), "build", "-o", str(out), "--at", AT).exit_code == 0
    before = {p: p.read_bytes() for p in (out / FRA).rglob("*") if p.is_file()}
    edit(fleet / "partners" / "globex.yaml", lambda d: d["grants"].pop(0))  # erp-db (dal) goes
    result = run_cli("--profiles", str(fleet), "build", "-o", str(out), "--gateway", DAL, "--at", AT)
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in (out / FRA).rglob("*") if p.is_file()} == before
    assert "10.2.0.5" not in (out / DAL / "nftables" / "gatewayctl.nft").read_text()
    assert list((out / DAL / "wireguard").iterdir()) == [out / DAL / "wireguard" / "wg-dal.conf"]


def test_host_commands_refuse_two_gateways_and_take_one_given_twice(fleet: Path, tmp_path: Path) -> None:
    with pytest.raises(click.UsageError):
        one_gateway(Context(fleet, 0, [FRA, DAL]), tmp_path)
    # refused while loading, before anything is planned (the host is only read: plan is read-only)
    result = run_cli("--profiles", str(fleet), "--gateway", DAL, "plan", "--gateway", FRA, "--state-dir",
                     str(tmp_path / "state"))
    assert result.exit_code == 2 and "give --gateway once" in result.output, result.output
    assert one_gateway(Context(fleet, 0, [DAL]), tmp_path) == DAL  # --gateway dal twice is one gateway (deduplicated)


def test_an_estate_of_one_gateway_in_the_fleet_form_works_like_the_plain_one(tmp_path: Path) -> None:
    plain = run_cli("--profiles", str(PROFILES), "validate", "--at", AT)
    root = tmp_path / "one"
    make_fleet(PROFILES, root)
    def only_fra(d: dict[str, Any]) -> None:
        del d["gateways"][DAL]
        d["gateways"][FRA]["internal_networks"] = ["10.1.0.0/16", "10.2.0.0/16", "fd00:1::/48"]
    edit(root / "gateway.yaml", only_fra)
    for p in root.glob("partners/*.yaml"):
        def no_dal(d: dict[str, Any]) -> None:
            d.pop("gateways")  # no `gateways:` needed with one gateway
            d["peers"][0]["addresses"] = [a for a in d["peers"][0]["addresses"] if not a.startswith("10.251.")]
        edit(p, no_dal)
    result = run_cli("--profiles", str(root), "validate", "--at", AT)
    assert result.exit_code == 0 and result.stdout == plain.stdout, result.output


def test_grant_level_suppressions_and_exceptions_follow_the_grant_not_its_index(fleet: Path) -> None:
    """acme on [dal, fra]: its two restricted grants go to dal (view indexes 0, 1; file indexes 1, 2); the
    owners' exception for the second (erp-web) must lift only that one, on dal; nothing opens on fra."""
    edit(fleet / "services.yaml", lambda d: d["services"].__setitem__(
        "erp-web", {**d["services"]["erp-db"], "addresses": ["10.2.0.6/32"], "ports": [443]}))
    approver = "Maria Lopez (CISO delegate)"
    def exception(d: dict[str, Any]) -> None:
        d["lint"] = {**d.get("lint", {}), "approvers": [approver]}
        d["exceptions"] = [{"rule": "GW102", "partner": "acme", "grant": "erp-web", "reason": "CHG-1 reporting",
                            "approved_by": approver, "expires": "2027-01-31"}]
    edit(fleet / "gateway.yaml", exception)
    def acme(d: dict[str, Any]) -> None:
        d["gateways"] = [DAL, FRA]
        d["peers"][0]["addresses"].append("10.251.1.1/32")
        base = d["grants"][0]
        d["grants"] = [{**base, "service": "intranet-web"}, {**base, "service": "erp-db"}, {**base, "service": "erp-web"}]
    edit(fleet / "partners" / "acme.yaml", acme)
    got = compiled_grants(fleet)
    assert got[DAL]["acme"] == {"erp-web"} and got[FRA]["acme"] == {"intranet-web"}


def test_lint_and_fleet_errors_about_a_later_grant_name_its_line(fleet: Path) -> None:
    """globex's third grant (file-drop) is the second grant fra sees: the finding is at its line."""
    path = fleet / "partners" / "globex.yaml"
    edit(path, lambda d: d["grants"][2].update(expires="2026-11-01"))
    result = run_cli("--profiles", str(fleet), "lint", "--at", AT)
    want = line_of(path, '"expires": "2026-11-01"')
    assert re.search(rf"globex\.yaml:{want}: GW201 grant of 'file-drop'", result.stdout), result.stdout


# ---------------------------------------------------------------- defects (xfail, strict)

def test_a_stage_limit_on_services_holds_across_the_fleet(fleet: Path) -> None:
    def two_services(d: dict[str, Any]) -> None:
        _initech_dal_first(d)
        d["grants"][0]["expires"] = "2027-02-15"  # status-page in force again
    edit(fleet / "partners" / "initech.yaml", two_services)
    limit = data(fleet / "gateway.yaml")["stages"]["pilot"]["max_services"]
    assert Oracle(fleet).route("initech", "status-page") == DAL and Oracle(fleet).route("initech", "intranet-web") == FRA
    got = compiled_grants(fleet)
    reached = got[FRA].get("initech", set()) | got[DAL].get("initech", set())
    assert len(reached) <= limit, reached


def test_a_revocation_is_not_undone_by_moving_the_grant_to_another_gateway(fleet: Path) -> None:
    from gatewayctl.apply import revocations

    revoked = [revocations.Revocation("globex", "crm-api", "INC-1 leaked key", "soc", "2026-12-01T00:00:00Z")]
    edit(fleet / "partners" / "globex.yaml", lambda d: d.update(gateways=[DAL, FRA]))
    assert Oracle(fleet).route("globex", "crm-api") == DAL  # the move, by the rules
    standing, _ = revocations.still_granted(revoked, compile_profiles(fleet, AT_DT, FRA).policy)
    assert standing == revoked


def _lan(root: Path, net: str) -> None:
    edit(root / "partners" / "acme.yaml", lambda d: d["peers"][0].update(networks=[net]))  # acme: fra only


@pytest.mark.parametrize("net", ["10.251.0.0/24", "10.251.0.1/32"])
def test_a_lan_may_not_claim_another_gateways_pool_or_address(fleet: Path, net: str) -> None:
    _lan(fleet, net)
    code, output = validate(fleet)
    want = line_of(fleet / "partners" / "acme.yaml", net)
    assert code == 2 and re.search(rf"acme\.yaml:{want}: peers\[0\]\.networks\[0\]: .*{re.escape(net)}", output), output


def test_two_partners_on_different_gateways_may_not_claim_one_lan(fleet: Path) -> None:
    def umbrella_on_dal(d: dict[str, Any]) -> None:
        d["gateways"] = [DAL]
        d["peers"][0].update(addresses=["10.251.4.1/32"], networks=["100.64.77.0/24"])
        d["peers"][1].update(addresses=["10.251.4.2/32"])
        d["grants"] = [{**d["grants"][2], "service": "status-page"}]
    edit(fleet / "partners" / "umbrella.yaml", umbrella_on_dal)
    _lan(fleet, "100.64.77.0/24")
    code, output = validate(fleet)
    assert code == 2 and re.search(r"(acme|umbrella)\.yaml:\d+: peers\[0\]\.networks\[0\]: .*100\.64\.77\.0/24", output), output


def test_a_gateway_may_not_front_another_gateways_pool(fleet: Path, tmp_path: Path) -> None:
    edit(fleet / "gateway.yaml", lambda d: d["gateways"][DAL]["internal_networks"].append("10.250.1.0/24"))
    edit(fleet / "services.yaml", lambda d: d["services"].__setitem__(
        "acme-peer", {**d["services"]["erp-db"], "addresses": ["10.250.1.1/32"]}))
    edit(fleet / "partners" / "globex.yaml", lambda d: d["grants"].append({**d["grants"][0], "service": "acme-peer"}))
    acme_address = data(fleet / "partners" / "acme.yaml")["peers"][0]["addresses"][0]
    assert ipaddress.ip_network(acme_address).overlaps(ipaddress.ip_network("10.250.1.1/32"))
    code, output = validate(fleet)
    assert code == 2 and "gateway.yaml" in output and "10.250.1.0/24" in output, output


def test_a_validate_error_about_a_later_grant_names_the_files_index(fleet: Path) -> None:
    path = fleet / "partners" / "globex.yaml"
    edit(path, lambda d: d["grants"][2].update(ports=[9000]))
    code, output = validate(fleet)
    want = line_of(path, "9000")
    assert code == 2 and re.search(rf"globex\.yaml:{want}: grants\[2\]\.ports\[0\]: 9000", output), output


def test_a_host_recorded_as_a_gateway_the_estate_no_longer_has_is_refused(fleet: Path, tmp_path: Path) -> None:
    edit(fleet / "gateway.yaml", lambda d: d["gateways"].pop(DAL))
    (tmp_path / "gateway").write_text(f"{DAL}\n")
    with pytest.raises(SystemExit) as refused:
        one_gateway(Context(fleet, 0), tmp_path)
    assert refused.value.code == 2


def test_report_on_a_fleet_host_reports_the_recorded_gateway(fleet: Path, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "gateway").write_text(f"{DAL}\n")
    out = tmp_path / "report.json"
    result = run_cli("--profiles", str(fleet), "report", "--offline", "--state-dir", str(tmp_path / "state"),
                     "--format", "json", "-o", str(out))
    assert "say which with --gateway" not in result.stderr, result.stderr
    assert DAL in out.read_text()


def test_auth_commands_load_the_gateway_given(fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewayctl.cli import auth_cmd
    from gatewayctl.host.fake import FakeHost
    from gatewayctl.state import StateDir

    edit(fleet / "gateway.yaml", lambda d: d["gateways"][FRA].update(
        auth={"server_certificate": "/etc/gatewayctl/front.pem", "server_key": "/etc/gatewayctl/front.key"}))
    state = StateDir(tmp_path / "state")
    state.ensure()
    monkeypatch.setattr(auth_cmd, "open_host", lambda netns, state_dir: (FakeHost(), state))
    result = run_cli("--profiles", str(fleet), "auth", "sessions", "--gateway", FRA)
    assert "say which with --gateway" not in result.stderr, result.stderr


def test_a_gateway_may_not_be_named_all(fleet: Path) -> None:
    edit(fleet / "gateway.yaml", lambda d: d["gateways"].__setitem__("all", d["gateways"].pop(DAL)))
    for p in ("globex", "initech"):
        edit(fleet / "partners" / f"{p}.yaml", lambda d: d.update(gateways=[FRA, "all"]))
    code, output = validate(fleet)
    assert code == 2 and re.search(r"gateway\.yaml:\d+: gateways\.all", output), output


def test_lint_does_not_call_a_service_granted_through_another_gateway_unused(fleet: Path) -> None:
    result = run_cli("--profiles", str(fleet), "lint", "--at", AT)
    assert "GW603 service 'crm-api'" not in result.stdout, result.stdout


def test_a_bad_gateway_name_in_a_partner_reads_as_one_plain_error(fleet: Path) -> None:
    edit(fleet / "partners" / "globex.yaml", lambda d: d.update(gateways=[FRA, "../x"]))
    code, output = validate(fleet)
    assert code == 2 and "../x" in output
    assert "literal[" not in output and "constrained-str" not in output, output


def test_a_gateway_flag_wins_over_the_environment(fleet: Path) -> None:
    from click.testing import CliRunner

    from gatewayctl.cli.main import cli

    result = CliRunner().invoke(cli, ["--profiles", str(fleet), "validate", "--gateway", FRA, "--at", AT],
                                env={"GATEWAYCTL_GATEWAY": DAL}, catch_exceptions=False)
    assert result.exit_code == 0 and [line.split()[0] for line in result.stdout.splitlines()] == [f"[{FRA}]"], result.stdout


def test_lint_warns_about_a_service_no_gateway_fronts(fleet: Path, estate: Path) -> None:
    def stray(d: dict[str, Any]) -> None:
        d["services"]["stray"] = {**d["services"]["erp-db"], "addresses": ["10.9.0.1/32"]}
    for root in (estate, fleet):
        edit(root / "services.yaml", stray)
    single = run_cli("--profiles", str(estate), "lint", "--at", AT).stdout
    assert re.search(r"GW405 .*'stray'", single), single  # the one-gateway baseline
    result = run_cli("--profiles", str(fleet), "lint", "--at", AT)
    assert re.search(r"GW405 .*'stray'", result.stdout), result.stdout


def test_the_oracle_agrees_with_the_rules_written_by_hand(fleet: Path) -> None:
    """Guard for the oracle itself, against tests/fleet_estate.py's description."""
    oracle = Oracle(fleet)
    assert oracle.route("globex", "erp-db") == DAL and oracle.route("globex", "crm-api") == FRA
    assert oracle.route("initech", "intranet-web") == FRA and oracle.route("acme", "erp-db") is None
    assert not oracle.fronts(DAL, "build-cache") and oracle.fronts(FRA, "build-cache")
