"""The benchmark's equivalence check (bench/policy_pair.py): both parsers read the flows a ruleset
allows, and a ruleset that allows one flow more or less is told apart."""

from __future__ import annotations

from pathlib import Path

from bench.policy_pair import aerleon_flows, gatewayctl_flows, write_pair
from tests.conftest import AT, run_cli

AERLEON_SAMPLE = """table ip filtering_policies {
    chain p00000-svc-001 {
        ip saddr 100.64.1.0/32 ip daddr 10.1.0.11/32 tcp dport 443 ct state new accept
    }
    chain p00001-svc-002 {
        ip saddr 100.64.1.1/32 ip daddr 10.1.0.12/32 tcp dport { 22, 8000-8001 } ct state new accept
    }
    chain root0 {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        jump p00000-svc-001
        jump p00001-svc-002
    }
}
"""


def test_gatewayctl_flows_are_the_generated_policy(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, 20, seed=3)
    assert len(pair["flows"]) == 100 and (tmp_path / "aerleon" / "pol" / "partners.yaml").exists()
    result = run_cli("--profiles", str(pair["profiles"]), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "out" / "nftables" / "gatewayctl.nft").read_text()
    assert gatewayctl_flows(text) == pair["flows"]
    first = text.split("elements = {\n", 1)[1].split("\n", 1)[0]
    assert gatewayctl_flows(text.replace(first + "\n", "", 1)) != pair["flows"]  # one element fewer is seen


def test_aerleon_flows_expand_sets_and_ranges() -> None:
    assert aerleon_flows(AERLEON_SAMPLE) == {
        ("100.64.1.0", "10.1.0.11", "tcp", 443), ("100.64.1.1", "10.1.0.12", "tcp", 22),
        ("100.64.1.1", "10.1.0.12", "tcp", 8000), ("100.64.1.1", "10.1.0.12", "tcp", 8001)}
