"""Several gateways in one profiles folder (issue 17, points 1-2): what each gateway sees, the partner
configs, the fleet's own errors, and the commands over one gateway or all.

Expected values are written from tests/fleet_estate.py's description, not computed by gatewayctl.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.cli.common import Context, one_gateway
from gatewayctl.loader.yaml12 import read_document
from gatewayctl.pipeline import compile_profiles
from tests.conftest import AT, AT_DT, PROFILES, run_cli
from tests.fleet_estate import make_fleet

FRA, DAL = "gw-fra-1", "gw-dal-1"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return make_fleet(PROFILES, tmp_path / "fleet")


def edit(path: Path, change: Any) -> None:
    doc = read_document(path, path.name).data
    change(doc)
    path.write_text(json.dumps(doc, indent=1, default=str))


def grants_of(root: Path, gateway: str) -> dict[str, set[str]]:
    policy = compile_profiles(root, AT_DT, gateway).policy
    return {p.id: {g.service for g in p.grants} for p in policy.partners}


def test_each_gateway_sees_its_partners_peers_and_grants(fleet: Path) -> None:
    assert grants_of(fleet, DAL) == {"globex": {"erp-db"}, "initech": set()}
    fra = grants_of(fleet, FRA)
    assert fra["globex"] == {"crm-api", "file-drop"} and set(fra) == {"acme", "globex", "initech", "umbrella"}
    dal = compile_profiles(fleet, AT_DT, DAL)
    peer = next(p for p in dal.policy.interface.peers if p.partner == "globex")
    assert {str(a) for a in peer.allowed_ips} == {"10.251.2.1/32", "100.64.20.0/24"}  # its dal address and its LAN
    assert dal.estate.gateway.model.wireguard.interface == "wg-dal"


def test_an_estate_of_one_gateway_loads_as_before() -> None:
    result = run_cli("--profiles", str(PROFILES), "validate", "--at", AT)
    assert result.exit_code == 0 and result.stdout.startswith("ok: 4 partners"), result.output


def test_build_writes_a_folder_per_gateway_and_partner_configs_that_route_each_address_once(fleet: Path,
                                                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("--profiles", str(fleet), "build", "-o", str(out), "--at", AT)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([FRA, DAL])
    assert "10.2.0.5" in (out / DAL / "nftables" / "gatewayctl.nft").read_text()
    assert "10.2.0.5" not in (out / FRA / "nftables" / "gatewayctl.nft").read_text()
    configs = sorted(out.glob("*/partners/globex/*.conf"))
    assert len(configs) == 2 and len({c.name for c in configs}) == 2  # two interfaces on globex's side
    routed = [ipaddress.ip_network(n.strip()) for c in configs
              for n in re.search(r"AllowedIPs = (.*)", c.read_text()).group(1).split(",")]  # type: ignore[union-attr]
    assert {"10.1.0.5/32", "10.1.0.21/32", "10.2.0.5/32"} <= {str(n) for n in routed}
    assert not any(a.overlaps(b) for i, a in enumerate(routed) for b in routed[i + 1:] if a.version == b.version)
    if shutil.which("wg-quick"):
        for config in out.glob("*/partners/*/*.conf"):
            strip = subprocess.run(["wg-quick", "strip", str(config)], capture_output=True, text=True)
            assert strip.returncode == 0, (config, strip.stderr)


def _errors(root: Path) -> str:
    result = run_cli("--profiles", str(root), "validate", "--at", AT)
    assert result.exit_code == 2, result.output
    return result.stderr


@pytest.mark.parametrize("case", ["no-gateways", "unknown", "pool-overlap", "peer-without-address", "unroutable",
                                  "crossed", "lan-claims-internal"])
def test_the_fleet_refuses_what_cannot_work_with_file_and_line(fleet: Path, case: str) -> None:
    partners = fleet / "partners"
    if case == "no-gateways":
        edit(partners / "acme.yaml", lambda d: d.pop("gateways"))
        expect = r"acme\.yaml:\d+: gateways: required when the estate has several gateways"
    elif case == "unknown":
        edit(partners / "acme.yaml", lambda d: d.update(gateways=["gw-fra-2"]))
        expect = r"acme\.yaml:\d+: gateways\[0\]: no gateway named 'gw-fra-2'.*did you mean 'gw-fra-1'"
    elif case == "pool-overlap":
        edit(fleet / "gateway.yaml", lambda d: d["gateways"][DAL]["wireguard"].update(pool=["10.250.128.0/17"]))
        expect = r"gateway\.yaml:\d+: gateways\.gw-dal-1\.wireguard\.pool: 10\.250\.128\.0/17 overlaps the pool 10\.250\.0\.0/16"
    elif case == "peer-without-address":
        edit(partners / "acme.yaml", lambda d: d.update(gateways=[FRA, DAL]))
        expect = r"acme\.yaml:\d+: peers\[0\]\.addresses: peer 'acme-hq' connects through gateway 'gw-dal-1' but has no"
    elif case == "unroutable":
        edit(partners / "acme.yaml", lambda d: d["grants"].__setitem__(0, {**d["grants"][0], "service": "erp-db"}))
        expect = r"acme\.yaml:\d+: grants\[0\]\.service: 'erp-db' is fronted by gateway\(s\) gw-dal-1, none of which"
    elif case == "crossed":
        def wide(d: dict[str, Any]) -> None:  # a service on 10.1.0.0/24 that only dal fronts... and crm-api via fra
            d["services"]["dc-net"] = {**d["services"]["erp-db"], "addresses": ["10.2.0.0/24", "10.1.0.5/32"]}
        edit(fleet / "services.yaml", wide)
        edit(partners / "globex.yaml", lambda d: d["grants"].append({**d["grants"][0], "service": "dc-net"}))
        expect = r"globex\.yaml:\d+: grants\[\d\]\.service: 'dc-net' is reached through gateway 'gw-dal-1' and 'crm-api'"
    else:
        edit(partners / "acme.yaml", lambda d: d["peers"][0].update(networks=["10.2.7.0/24"]))
        expect = (r"acme\.yaml:\d+: peers\[0\]\.networks\[0\]: 10\.2\.7\.0/24 overlaps 10\.2\.0\.0/16, an internal "
                  r"network of gateway 'gw-dal-1'")
    assert re.search(expect, _errors(fleet)), _errors(fleet)


def test_a_one_gateway_estate_refuses_a_partner_naming_another_gateway(estate: Path) -> None:
    edit(estate / "partners" / "acme.yaml", lambda d: d.update(gateways=["gw-dal-1"]))
    assert re.search(r"acme\.yaml:\d+: gateways\[0\]: no gateway named 'gw-dal-1'; this estate has gw-fra-1", _errors(estate))


def test_commands_name_the_gateway_and_refuse_an_unknown_one(fleet: Path) -> None:
    result = run_cli("--profiles", str(fleet), "validate", "--at", AT)
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [f"[{FRA}]", f"[{DAL}]"]
    result = run_cli("--profiles", str(fleet), "validate", "--gateway", "gw-dl-1", "--at", AT)
    assert result.exit_code == 2 and "no such gateway" in result.stderr and "did you mean 'gw-dal-1'" in result.stderr
    query = run_cli("--profiles", str(fleet), "query", "--from", "10.251.2.1", "--to", "10.2.0.5:5432/tcp", "--at", AT)
    assert query.exit_code == 0 and f"[{DAL}] ALLOWED" in query.stdout and f"[{FRA}] DENIED" in query.stdout
    only_fra = run_cli("--profiles", str(fleet), "query", "--gateway", FRA, "--from", "10.251.2.1", "--to",
                       "10.2.0.5:5432/tcp", "--at", AT)
    assert only_fra.exit_code == 1, only_fra.output


def test_policy_tests_hold_for_the_fleet_or_for_the_gateway_they_name(fleet: Path) -> None:
    tests = fleet / "tests" / "fleet.yaml"
    tests.write_text(json.dumps({"tests": [
        {"name": "globex reaches the ERP replica (through dal)", "partner": "globex", "can_reach": {"service": "erp-db"}},
        {"name": "but not through fra", "partner": "globex", "gateway": FRA, "cannot_reach": {"service": "erp-db"}},
    ]}))
    assert run_cli("--profiles", str(fleet), "test", "--at", AT).exit_code == 0
    tests.write_text(json.dumps({"tests": [
        {"name": "globex never reaches the ERP replica", "partner": "globex", "cannot_reach": {"service": "erp-db"}}]}))
    result = run_cli("--profiles", str(fleet), "test", "--at", AT)
    assert result.exit_code == 1 and f"[{DAL}] allowed by globex/erp-db" in result.stdout, result.output


def test_lint_names_the_gateway_of_a_finding_only_some_gateways_have() -> None:
    from gatewayctl.lint.engine import LintResult, merge
    from gatewayctl.lint.finding import Finding

    both = Finding("p.yaml", 3, "GW201", "grant-expired", "warning", "grant expired", "")
    one = Finding("p.yaml", 9, "GW605", "no-security-contact", "info", "no security contact", "")
    merged = merge({FRA: LintResult((both, one), ()), DAL: LintResult((both,), ())})
    assert {f.message for f in merged.findings} == {"grant expired", f"no security contact (gateway {FRA})"}
    assert {f.message: f.gateways for f in merged.findings} == {"grant expired": (FRA, DAL),
                                                               f"no security contact (gateway {FRA})": (FRA,)}
    from gatewayctl.lint.formats import as_json, sarif

    results = {r["message"]["text"].split(" (")[0]: r.get("properties") for r in sarif(merged)["runs"][0]["results"]}
    assert results == {"grant expired": {"gateways": [FRA, DAL]}, "no security contact": {"gateways": [FRA]}}
    assert [f["gateways"] for f in as_json(merged, dt.datetime(2026, 12, 1, tzinfo=dt.UTC))["findings"]] in (
        [[FRA, DAL], [FRA]], [[FRA], [FRA, DAL]])
    assert merge({FRA: LintResult((both,), ())}).findings[0].gateways == ()  # one gateway: nothing to name


def test_a_host_keeps_the_gateway_it_was_applied_as(fleet: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "gateway").write_text(f"{DAL}\n")
    assert one_gateway(Context(fleet, 0), state) == DAL
    assert one_gateway(Context(fleet, 0, [DAL]), state) == DAL
    with pytest.raises(SystemExit) as refused:
        one_gateway(Context(fleet, 0, [FRA]), state)
    assert refused.value.code == 2
    with pytest.raises(SystemExit):  # the host was gw-dal-1: an estate without it would make it another gateway
        one_gateway(Context(PROFILES, 0), state)
    (state / "gateway").write_text("gw-fra-1\n")
    assert one_gateway(Context(PROFILES, 0), state) is None  # the estate's only gateway, as recorded


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True)


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", message)


def _diff(fleet: Path) -> dict[str, Any]:
    result = run_cli("--profiles", str(fleet), "diff", "--base", "HEAD", "--format", "json", "--at", AT)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_diff_names_the_gateways_whose_access_changes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    fleet = make_fleet(PROFILES, root / "profiles")
    _git(root, "init", "-q")
    _commit(root, "base")
    edit(fleet / "partners" / "globex.yaml", lambda d: d.update(grants=[g for g in d["grants"] if g["service"] != "erp-db"]))
    data = _diff(fleet)
    assert data["summary"]["gateways"] == [DAL]  # erp-db is reached through dal only
    assert {(c["gateway"], c["partner"], c["kind"]) for c in data["changes"]} == {(DAL, "globex", "flow-removed")}
    _commit(root, "globex loses erp-db")
    edit(fleet / "partners" / "acme.yaml", lambda d: d.update(grants=d["grants"][1:]))  # crm-api, through fra
    assert _diff(fleet)["summary"]["gateways"] == [FRA]
    text = run_cli("--profiles", str(fleet), "diff", "--base", "HEAD", "--at", AT).stdout
    assert f"on gateway(s) {FRA}" in text.splitlines()[0] and f"[{FRA}] acme:" in text, text


def test_report_without_a_gateway_writes_one_report_per_gateway(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("--profiles", str(fleet), "report", "--offline", "--format", "json", "-o", str(out))
    assert result.exit_code in (0, 1), result.output
    written = sorted(p.name for p in tmp_path.glob("report-*.json"))
    assert written == [f"report-{DAL}.json", f"report-{FRA}.json"] and not out.exists()
    dal = json.loads((tmp_path / f"report-{DAL}.json").read_text())
    assert DAL in json.dumps(dal) and "erp-db" in json.dumps(dal)
