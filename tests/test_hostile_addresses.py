"""A partner cannot claim addresses that are not its own; a service cannot be everything, the
gateway, the pool or a partner; a preshared key file cannot be another secret. `validate` itself
refuses each (exit 2), no suppression in the partner's own file lifts it, and `gatewayctl diff`
refuses a pull request that tries (issue 15 point 2, issue 14 point 4)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import AT, PROFILES, run_cli

INITECH_PEER = "addresses: [10.250.3.1/32]"
# the attack from the issue: a pilot partner claims the internal services subnet and half of IPv4,
# and suppresses the addressing rule in its own file (peer and partner level)
ATTACK = (INITECH_PEER + "\n    networks: [10.1.0.0/24, 128.0.0.0/1]\n    suppressions:\n"
          "      - {rule: GW502, reason: pilot LAN, expires: 2027-01-31}\n"
          "      - {rule: GW507, reason: pilot LAN, expires: 2027-01-31}\n"
          "      - {rule: GW506, reason: pilot LAN, expires: 2027-01-31}")
PARTNER_SUPPRESSION = "\nsuppressions:\n  - {rule: GW502, reason: pilot, expires: 2027-01-31}\n"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))


def validate(root: Path) -> tuple[int, list[str]]:
    """Exit code and the error lines of `gatewayctl validate`, paths shown relative to the estate."""
    result = run_cli("--profiles", str(root), "validate", "--at", AT)
    lines = [line.replace(str(root) + "/", "profiles/") for line in result.stderr.splitlines() if line.startswith("error:")]
    return result.exit_code, lines


def errors_about(lines: list[str], *parts: str) -> list[str]:
    return [line for line in lines if all(part in line for part in parts)]


def claim_lan(root: Path, networks: str) -> None:
    """Give initech's only peer the LAN networks `networks` (YAML flow list text)."""
    edit(root, "partners/initech.yaml", INITECH_PEER, f"{INITECH_PEER}\n    networks: {networks}")


def set_service_addresses(root: Path, addresses: str) -> None:
    """Put the service lab-ping (granted to acme) on `addresses` (YAML flow list text)."""
    edit(root, "services.yaml", "addresses: [10.1.0.1/32]", f"addresses: {addresses}")


# --- the attack from the issue ------------------------------------------------------------------


def attacked(root: Path) -> None:
    edit(root, "partners/initech.yaml", INITECH_PEER, ATTACK)
    (root / "partners/initech.yaml").write_text((root / "partners/initech.yaml").read_text() + PARTNER_SUPPRESSION)


def test_the_attack_is_refused_by_validate_whatever_the_partner_suppresses(estate: Path) -> None:
    attacked(estate)
    code, lines = validate(estate)
    assert code == 2
    internal = errors_about(lines, "profiles/partners/initech.yaml:20:", "'10.1.0.0/24'", "internal network '10.1.0.0/16'",
                            "profiles/gateway.yaml:17")
    half = errors_about(lines, "profiles/partners/initech.yaml:20:", "'128.0.0.0/1' is a /1", "/16")
    services = errors_about(lines, "'10.1.0.0/24' contains service 'lab-ping' address '10.1.0.1/32'")
    assert internal and half and services, "\n".join(lines)


def test_the_attack_is_not_lifted_in_lint(estate: Path) -> None:
    attacked(estate)
    result = run_cli("--profiles", str(estate), "lint", "--format", "json", "--at", AT)
    assert result.exit_code == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    active = {f["code"] for f in findings if not f["suppressed"]}
    assert {"GW502", "GW505", "GW507"} <= active
    assert not [f for f in findings if f["suppressed"] and f["code"] in ("GW502", "GW505", "GW506", "GW507")]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def test_the_attack_is_refused_by_diff(tmp_path: Path) -> None:
    repo = tmp_path / "estate"
    shutil.copytree(PROFILES, repo / "profiles")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    attacked(repo / "profiles")
    git(repo, "commit", "-qam", "pilot LAN")
    for extra in ([], ["--head", "HEAD"]):
        result = run_cli("--profiles", str(repo / "profiles"), "diff", "--base", "HEAD~1", *extra, "--at", AT)
        assert result.exit_code == 2, result.stdout + result.stderr
        assert "partners/initech.yaml:20" in result.stderr and "'128.0.0.0/1' is a /1" in result.stderr
        assert "0 need a security reviewer" not in result.stdout


# --- what a partner may claim ---------------------------------------------------------------------


@pytest.mark.parametrize(("network", "what"), [
    ('"::ffff:10.1.0.0/120"', "IPv4-mapped IPv6"),
    ('"::ffff:0:0/96"', "IPv4-mapped IPv6"),
    ('"0:0:0:0:0:ffff:c633:6400/120"', "IPv4-mapped IPv6"),
    ('"64:ff9b::a01:0/120"', "NAT64"),
    ("127.0.0.0/8", "loopback"),
    ('"::1/128"', "loopback"),
    ("169.254.10.0/24", "link-local"),
    ('"fe80::/64"', "link-local"),
    ("224.0.0.0/24", "multicast"),
    ('"ff02::/16"', "multicast"),
    ("0.0.0.0/32", "unspecified"),
    ('"::/128"', "unspecified"),
    ("255.255.255.255/32", "broadcast"),
])
def test_special_purpose_networks_are_refused_and_printed_as_written(estate: Path, network: str, what: str) -> None:
    claim_lan(estate, f"[{network}]")
    code, lines = validate(estate)
    assert code == 2
    as_written = repr(network.strip('"'))
    assert errors_about(lines, "profiles/partners/initech.yaml:20: peers[0].networks[0]: partner network "
                        f"{as_written}", what), "\n".join(lines)


def test_special_purpose_tunnel_address_is_refused(estate: Path) -> None:
    edit(estate, "partners/initech.yaml", INITECH_PEER, 'addresses: [10.250.3.1/32, "::ffff:10.250.3.1/128"]')
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "tunnel address '::ffff:10.250.3.1/128'", "IPv4-mapped IPv6"), lines


@pytest.mark.parametrize(("gateway_limits", "network", "refused"), [
    ("", "172.20.0.0/16", False),  # the default IPv4 limit is /16
    ("", "172.20.0.0/15", True),
    ("", '"fd00:99::/48"', False),  # the default IPv6 limit is /48
    ("", '"fd00:98::/47"', True),
    ("limits: {max_partner_network_prefix: {ipv4: 24}}\n", "172.20.0.0/23", True),
    ("limits: {max_partner_network_prefix: {ipv4: 24}}\n", "172.20.0.0/24", False),
    ("limits: {max_partner_network_prefix: {ipv6: 64}}\n", '"fd00:99::/60"', True),
])
def test_width_limit_from_gateway_yaml(estate: Path, gateway_limits: str, network: str, refused: bool) -> None:
    (estate / "gateway.yaml").write_text((estate / "gateway.yaml").read_text() + gateway_limits)
    claim_lan(estate, f"[{network}]")
    code, lines = validate(estate)
    width = errors_about(lines, "peers[0].networks[0]", "the widest a partner may claim is")
    assert bool(width) == refused and code == (2 if refused else 0), "\n".join(lines)
    if refused and gateway_limits:
        assert "profiles/gateway.yaml:" in width[0], width


def test_the_width_limit_cannot_be_switched_off(estate: Path) -> None:
    (estate / "gateway.yaml").write_text((estate / "gateway.yaml").read_text()
                                         + "limits: {max_partner_network_prefix: {ipv4: 1}}\n")
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "limits.max_partner_network_prefix.ipv4", "greater than or equal to 8"), lines


@pytest.mark.parametrize(("network", "owner"), [
    ("10.2.7.0/24", "internal network '10.2.0.0/16'"),
    ("10.250.0.0/30", "the gateway's own tunnel address 10.250.0.1"),
    ("10.250.200.0/24", "the tunnel pool '10.250.0.0/16'"),
    ("100.64.20.128/25", "partner network '100.64.20.0/24' of peer 'globex-dc1' of partner 'globex'"),
])
def test_a_lan_may_not_overlap_what_is_not_the_partners(estate: Path, network: str, owner: str) -> None:
    claim_lan(estate, f"[{network}]")
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "profiles/partners/initech.yaml:20:", f"'{network}'", owner), "\n".join(lines)


def test_a_lan_may_not_overlap_a_service_outside_the_internal_networks(estate: Path) -> None:
    set_service_addresses(estate, "[172.16.5.5/32]")
    claim_lan(estate, "[172.16.5.0/24]")
    code, lines = validate(estate)
    assert code == 2
    assert errors_about(lines, "'172.16.5.0/24' contains service 'lab-ping' address '172.16.5.5/32' "
                        "(profiles/services.yaml:64)"), "\n".join(lines)


def test_a_lan_may_not_contain_the_gateways_endpoint_address(estate: Path) -> None:
    edit(estate, "gateway.yaml", "endpoint: gw-fra-1.example.net:51820", "endpoint: 198.51.100.7:51820")
    claim_lan(estate, "[198.51.100.0/24]")
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "'198.51.100.0/24'", "the gateway's endpoint address 198.51.100.7"), lines


def test_an_overlap_between_partners_names_both_files(estate: Path) -> None:
    """The new entry is initech's; the error is at both entries and each names the other's file:line."""
    claim_lan(estate, "[100.64.20.0/26]")
    _, lines = validate(estate)
    assert errors_about(lines, "profiles/partners/initech.yaml:20:", "(profiles/partners/globex.yaml:20)"), lines
    assert errors_about(lines, "profiles/partners/globex.yaml:20:", "(profiles/partners/initech.yaml:20)"), lines


# --- where a service may be -----------------------------------------------------------------------


def halves(prefix: int, version: int) -> list[str]:
    """The whole address space of `version` split into networks of `prefix`, computed here."""
    whole = ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    return [f'"{net}"' for net in whole.subnets(new_prefix=prefix)]


@pytest.mark.parametrize("split", [
    ['"0.0.0.0/0"'], ['"::/0"'], halves(1, 4), halves(2, 4), halves(3, 4), halves(1, 6), halves(2, 6),
    ['"0.0.0.0/1"', '"128.0.0.0/2"', '"192.0.0.0/2"'],  # uneven split
    ['"128.0.0.0/1"', '"0.0.0.0/2"', '"64.0.0.0/2"', '"10.0.0.0/8"'],  # out of order, with an overlap
], ids=lambda split: "+".join(s.strip('"') for s in split))
def test_a_service_on_every_address_in_any_split_is_refused(estate: Path, split: list[str]) -> None:
    set_service_addresses(estate, f"[{', '.join(split)}]")
    code, lines = validate(estate)
    assert code == 2
    version = ipaddress.ip_network(split[0].strip('"')).version
    assert errors_about(lines, "profiles/services.yaml:64: services.lab-ping.addresses:",
                        f"every IPv{version} address"), "\n".join(lines)


def test_a_split_that_leaves_a_gap_is_not_called_every_address(estate: Path) -> None:
    """0.0.0.0/1 + 128.0.0.0/2 + 224.0.0.0/3 leaves 192.0.0.0/3 out: not the whole space (other
    errors still refuse so wide a service)."""
    set_service_addresses(estate, '["0.0.0.0/1", "128.0.0.0/2", "224.0.0.0/3"]')
    _, lines = validate(estate)
    assert not errors_about(lines, "every IPv4 address"), "\n".join(lines)


def test_a_partners_grants_on_every_address_together_are_refused(estate: Path) -> None:
    """Two services, each half of IPv4 in a file of its own, granted to one partner."""
    edit(estate, "services.yaml", "addresses: [10.1.0.1/32]", 'addresses: ["0.0.0.0/1"]')
    edit(estate, "services.yaml", "addresses: [10.1.0.40/32]", 'addresses: ["128.0.0.0/1"]')
    edit(estate, "partners/acme.yaml", "  - service: lab-ping", "  - service: status-page\n    justification: status\n"
         "    approved_by: Tom Becker (service owner)\n    expires: 2027-06-30\n  - service: lab-ping")
    code, lines = validate(estate)
    assert code == 2
    assert errors_about(lines, "profiles/partners/acme.yaml:", "grants of partner 'acme' reach every IPv4 address",
                        "lab-ping", "status-page"), "\n".join(lines)


@pytest.mark.parametrize(("addresses", "expected"), [
    ("[10.250.0.1/32]", "the gateway's own tunnel address 10.250.0.1"),
    ('["fd00:250::1/128"]', "the gateway's own tunnel address fd00:250::1"),
    ("[10.250.4.0/24]", "the tunnel pool '10.250.0.0/16'"),
    ("[127.0.0.1/32]", "loopback"),
    ('["::ffff:10.1.0.1/128"]', "IPv4-mapped IPv6"),
    ("[224.0.0.251/32]", "multicast"),
    ("[169.254.169.254/32]", "link-local"),
])
def test_a_service_may_not_be_the_gateway_the_pool_or_special(estate: Path, addresses: str, expected: str) -> None:
    set_service_addresses(estate, addresses)
    code, lines = validate(estate)
    assert code == 2
    assert errors_about(lines, "profiles/services.yaml:64: services.lab-ping.addresses[0]:", expected), "\n".join(lines)


def test_a_service_suppression_does_not_lift_it(estate: Path) -> None:
    edit(estate, "services.yaml", "addresses: [10.1.0.1/32]", "addresses: [10.250.0.1/32]\n    suppressions:\n"
         "      - {rule: GW406, reason: health endpoint, expires: 2027-01-31}")
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "the gateway's own tunnel address 10.250.0.1"), lines


# --- preshared key files --------------------------------------------------------------------------


ACME_PSK = "preshared_key_file: /etc/gatewayctl/psk/acme-hq.psk"


@pytest.mark.parametrize(("value", "expected"), [
    ("../wg-partners.key", "must not contain '..'"),
    ("/etc/gatewayctl/psk/../wg-partners.key", "must not contain '..'"),
    ("/etc/gatewayctl/wg-partners.key", "must name a file inside gateway.yaml's host.preshared_key_dir"),
    ("/etc/shadow", "must name a file inside gateway.yaml's host.preshared_key_dir"),
    ("/etc/gatewayctl/psk", "must name a file inside gateway.yaml's host.preshared_key_dir"),
    ("/etc/gatewayctl/psk/", "must name a file, not a folder"),
    ("globex-dc1.psk", "is also the preshared key file of peer 'globex-dc1' of partner 'globex'"),
])
def test_key_file_outside_its_folder_or_shared_is_refused(estate: Path, value: str, expected: str) -> None:
    edit(estate, "partners/acme.yaml", ACME_PSK, f"preshared_key_file: {value}")
    code, lines = validate(estate)
    assert code == 2
    assert errors_about(lines, "profiles/partners/acme.yaml:20: peers[0].preshared_key_file:", expected), "\n".join(lines)


def test_key_file_may_not_be_the_gateways_private_key(estate: Path) -> None:
    """With the gateway's key kept in the preshared key folder, naming it is still refused, however written."""
    edit(estate, "gateway.yaml", "private_key_file: /etc/gatewayctl/wg-partners.key",
         "private_key_file: /etc/gatewayctl/psk/wg-partners.key")
    for value in ("wg-partners.key", "./wg-partners.key", "/etc/gatewayctl/psk//wg-partners.key"):
        shutil.copy(PROFILES / "partners/acme.yaml", estate / "partners/acme.yaml")
        edit(estate, "partners/acme.yaml", ACME_PSK, f"preshared_key_file: {value}")
        code, lines = validate(estate)
        assert code == 2
        assert errors_about(lines, "profiles/partners/acme.yaml:20:", "the gateway's WireGuard private key file",
                            repr(value)), "\n".join(lines)


def test_relative_key_file_is_taken_inside_the_folder(estate: Path, tmp_path: Path) -> None:
    edit(estate, "partners/acme.yaml", ACME_PSK, "preshared_key_file: acme-hq.psk")
    code, lines = validate(estate)
    assert code == 0, lines
    out = tmp_path / "out"
    assert run_cli("--profiles", str(estate), "build", "-o", str(out), "--at", AT).exit_code == 0
    conf = (out / "wireguard/wg-partners.conf").read_text()
    assert "preshared-key /etc/gatewayctl/psk/acme-hq.psk" in conf


def test_a_shared_key_file_is_reported_at_every_peer_that_uses_it(estate: Path) -> None:
    edit(estate, "partners/acme.yaml", ACME_PSK, "preshared_key_file: globex-dc1.psk")
    code, lines = validate(estate)
    assert code == 2
    assert errors_about(lines, "profiles/partners/acme.yaml:20:", "peer 'globex-dc1' of partner 'globex'"), lines
    assert errors_about(lines, "profiles/partners/globex.yaml:23:", "peer 'acme-hq' of partner 'acme'"), lines


# --- found by the adversarial review --------------------------------------------------------------


@pytest.mark.parametrize("network", ['"fd00:9::%x/48"', '"fd00:9::%x\\n[Interface]\\nPreUp = touch /tmp/pwned/48"',
                                     '"fd00:9::%\\u202eevil/48"', '"10.9.0.0/24 "'])
def test_address_text_carries_nothing_but_an_address(estate: Path, tmp_path: Path, network: str) -> None:
    """Python's ipaddress takes an IPv6 zone of any text and prints it back: refused, nothing is built."""
    claim_lan(estate, f"[{network}]")
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "profiles/partners/initech.yaml:", "no IPv6 zone"), "\n".join(lines)
    result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.exit_code == 2 and not (tmp_path / "out" / "wireguard").exists()
    assert "[Interface]" not in result.stdout + result.stderr.replace("\\n[Interface]", "")


def test_a_partner_cannot_claim_another_peers_endpoint(estate: Path) -> None:
    claim_lan(estate, "[203.0.113.20/32]")  # globex-dc1's underlay endpoint
    code, lines = validate(estate)
    assert code == 2 and errors_about(lines, "profiles/partners/initech.yaml:", "'203.0.113.20/32'",
                                      "underlay endpoint of peer 'globex-dc1'"), "\n".join(lines)
