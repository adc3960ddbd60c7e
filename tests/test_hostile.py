"""Hostile input: names that are nft keywords, injection attempts in free text, catch-all
networks, empty grant lists, oversized and non-UTF-8 files. Each gives an error or safe output."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gatewayctl.synth import gateway_doc
from tests.conftest import AT, run_cli
from tests.netns import Namespace, sh, unique

KEYWORDS = ["tcp", "fwd", "counter", "drop", "accept", "ip", "table", "chain", "meta", "ct", "log", "jump",
            "goto", "set", "map", "flags", "type", "elements", "udp", "icmp", "input", "forward", "deny_tcp"]
NASTY = 'x"; drop; } table inet evil { chain c { type filter hook input priority -500; policy accept; } #'


def key(index: int) -> str:
    return base64.b64encode(bytes([index + 1]) * 32).decode()


def write(root: Path, rel: str, doc: object) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(json.dumps(doc, indent=1))


def hostile_estate(root: Path) -> Path:
    gateway = gateway_doc()
    gateway["owner"] = NASTY
    write(root, "gateway.yaml", gateway)
    services = {name: {"owner": NASTY, "description": NASTY + "\n{ }", "classification": "internal",
                       "addresses": [f"10.1.{i}.1/32"], "protocol": "tcp", "ports": [443, "8000-8001"]}
                for i, name in enumerate(KEYWORDS)}
    # the widest destinations validate accepts (a service on every address is refused:
    # tests/test_hostile_addresses.py); one family each
    services["everything-v4"] = {"owner": "o", "classification": "internal", "addresses": ["10.0.0.0/9"],
                                 "protocol": "tcp", "ports": [22]}
    services["everything-v6"] = {"owner": "o", "classification": "internal", "addresses": ["fd00:10::/48"],
                                 "protocol": "udp", "ports": [53]}
    write(root, "services.yaml", {"services": services})
    for i, name in enumerate(KEYWORDS):
        write(root, f"partners/{name}.yaml", {
            "id": name, "name": NASTY, "stage": "partner", "description": NASTY,
            "contacts": [{"name": NASTY, "email": "a@b.example", "phone": NASTY}],
            "agreement": {"reference": NASTY, "expires": "2030-01-01"},
            "peers": [{"name": name, "public_key": key(i), "addresses": [f"100.64.{i + 1}.1/32", f"fd00:64::{i + 2}/128"]}],
            "grants": [{"service": KEYWORDS[(i + 1) % len(KEYWORDS)], "justification": NASTY, "approved_by": NASTY},
                       {"service": "everything-v4" if i % 2 else "everything-v6", "justification": NASTY}],
        })
    write(root, "partners/nogrants.yaml", {
        "id": "nogrants", "name": "No grants", "stage": "partner", "contacts": [{"name": "n", "email": "n@n.example"}],
        "agreement": {"reference": "r", "expires": "2030-01-01"}, "grants": [],
        "peers": [{"name": "p", "public_key": key(200), "addresses": ["100.64.200.1/32"]}],
    })
    return root


@pytest.fixture
def hostile_build(tmp_path: Path) -> Path:
    profiles = hostile_estate(tmp_path / "profiles")
    result = run_cli("--profiles", str(profiles), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out"


def test_free_text_never_reaches_the_ruleset(hostile_build: Path) -> None:
    ruleset = (hostile_build / "nftables/gatewayctl.nft").read_text()
    assert "evil" not in ruleset and "x\"" not in ruleset
    assert "chain deny_tcp {" in ruleset and "chain deny_deny_tcp {" in ruleset


def test_free_text_stays_inside_comments_of_wireguard_configs(hostile_build: Path) -> None:
    for conf in [hostile_build / "wireguard/wg-synth.conf", *hostile_build.glob("partners/*/*.conf")]:
        for line in conf.read_text().splitlines():
            if "evil" in line:
                assert line.startswith("#"), f"{conf}: {line}"


def test_catch_all_service_compiles_to_exactly_what_was_written(hostile_build: Path) -> None:
    ruleset = (hostile_build / "nftables/gatewayctl.nft").read_text()
    assert '100.64.2.1 . 10.0.0.0/9 . tcp . 22 timeout 1128d comment "fwd/everything-v4"' in ruleset
    assert 'fd00:64::2 . fd00:10::/48 . udp . 53 timeout 1128d comment "tcp/everything-v6"' in ruleset
    # a grant without expiry still ends with the agreement (2030-01-01), enforced by the kernel;
    # the v4-only catch-all never becomes an IPv6 element (no widening across families)
    assert "fd00:64::3 . " not in ruleset


def test_partner_with_no_grants_reaches_nothing_but_is_logged(hostile_build: Path) -> None:
    ruleset = (hostile_build / "nftables/gatewayctl.nft").read_text()
    assert "100.64.200.1 . " not in ruleset
    assert "100.64.200.1 : goto deny_nogrants" in ruleset
    conf = (hostile_build / "partners/nogrants/p.conf").read_text()
    # no AllowedIPs line at all: wg refuses an empty one (tests/test_hostile_review.py loads it with wg)
    assert "\nAllowedIPs" not in conf and "Nothing is in force for nogrants now" in conf


def test_hostile_ruleset_passes_nft_and_loads(hostile_build: Path, needs_root: None) -> None:
    ruleset = hostile_build / "nftables/gatewayctl.nft"
    check = sh("nft", "-c", "-f", str(ruleset), check=False)
    assert check.returncode == 0, check.stderr
    with Namespace.create("gwh") as ns:
        ns.run("nft", "-f", str(ruleset))
        tables = ns.run("nft", "list", "tables").stdout.split()
        assert tables == ["table", "inet", "gatewayctl"]


def test_hostile_gateway_config_passes_wg_setconf(hostile_build: Path, needs_root: None, tmp_path: Path) -> None:
    stripped = tmp_path / "s.conf"
    stripped.write_text(sh("wg-quick", "strip", str(hostile_build / "wireguard/wg-synth.conf")).stdout)
    with Namespace.create("gwh") as ns:
        ifname = unique("gwh")
        ns.start_wireguard_go(ifname)
        ns.run("wg", "setconf", ifname, str(stripped))
        assert len(ns.run("wg", "show", ifname, "peers").stdout.split()) == len(KEYWORDS) + 1


def test_ten_megabyte_partner_file(tmp_path: Path) -> None:
    profiles = hostile_estate(tmp_path / "profiles")
    (profiles / "partners/huge.yaml").write_text("id: huge\nname: " + "x" * 10_000_000 + "\n")
    result = run_cli("--profiles", str(profiles), "validate")
    assert result.exit_code == 2
    assert "partners/huge.yaml: file is 10000016 bytes; a profile file may be at most 4194304 bytes" in result.stderr


def test_non_utf8_partner_file(tmp_path: Path) -> None:
    profiles = hostile_estate(tmp_path / "profiles")
    (profiles / "partners/latin1.yaml").write_bytes(b"id: latin1\nname: Soci\xe9t\xe9 G\xe9n\xe9rale\n")
    result = run_cli("--profiles", str(profiles), "validate")
    assert result.exit_code == 2
    assert "partners/latin1.yaml:2: file is not valid UTF-8" in result.stderr


@pytest.mark.parametrize("field", ["name", "agreement.reference", "contacts.0.name"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "a\tb", "   "])
def test_control_characters_in_single_line_fields(tmp_path: Path, field: str, bad: str) -> None:
    profiles = hostile_estate(tmp_path / "profiles")
    path = profiles / "partners/tcp.yaml"
    doc = json.loads(path.read_text())
    target = doc
    parts = field.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = bad
    path.write_text(json.dumps(doc))
    result = run_cli("--profiles", str(profiles), "validate")
    assert result.exit_code == 2
    assert "partners/tcp.yaml:1:" in result.stderr
    assert "must be a single line of text without control characters" in result.stderr or "must not be empty" in result.stderr
