"""Golden files for the example estate, and proof that the real tools accept them.

Update after an intended change with:
    GATEWAYCTL_UPDATE_GOLDEN=1 pytest tests/test_golden.py
then review the diff of tests/golden/ like any other change.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import AT, PROFILES, run_cli
from tests.netns import Namespace, sh, unique

GOLDEN = Path(__file__).parent / "golden" / "example"
UPDATE = os.environ.get("GATEWAYCTL_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(out), "--at", AT)
    assert result.exit_code == 0, result.stderr
    return out


def artifact_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_golden_files_match(built: Path) -> None:
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(built, GOLDEN, ignore=shutil.ignore_patterns(".*"))
    assert artifact_files(built) == artifact_files(GOLDEN)
    for rel in artifact_files(GOLDEN):
        assert (built / rel).read_text() == (GOLDEN / rel).read_text(), f"{rel} differs from its golden file"


def test_golden_ruleset_passes_nft_check(needs_root: None) -> None:
    for ruleset in (GOLDEN / "nftables").glob("*.nft"):
        result = sh("nft", "-c", "-f", str(ruleset), check=False)
        assert result.returncode == 0, result.stderr


def test_golden_ruleset_loads_into_a_namespace(netns: str) -> None:
    ruleset = GOLDEN / "nftables" / "gatewayctl.nft"
    sh("ip", "netns", "exec", netns, "nft", "-f", str(ruleset))
    listing = sh("ip", "netns", "exec", netns, "nft", "list", "table", "inet", "gatewayctl").stdout
    assert "10.250.1.1 . 10.1.0.5 . tcp . 443" in listing
    assert 'log prefix "gwctl-deny acme: "' in listing
    # Loading twice is an atomic replace, not an error or a merge.
    sh("ip", "netns", "exec", netns, "nft", "-f", str(ruleset))
    assert sh("ip", "netns", "exec", netns, "nft", "list", "table", "inet", "gatewayctl").stdout.count("set grants4") == 1


def test_golden_gateway_config_accepted_by_wg_setconf(needs_root: None, tmp_path: Path) -> None:
    conf = GOLDEN / "wireguard" / "wg-partners.conf"
    stripped = tmp_path / "stripped.conf"
    stripped.write_text(sh("wg-quick", "strip", str(conf)).stdout)
    with Namespace.create("gwg") as ns:
        ifname = unique("gwg")
        ns.start_wireguard_go(ifname)
        ns.run("wg", "setconf", ifname, str(stripped))
        dump = ns.run("wg", "show", ifname, "dump").stdout.splitlines()
    peers = {line.split("\t")[0]: line.split("\t") for line in dump[1:]}
    assert len(peers) == 5
    assert peers["LY8sGSa93pktIPfwgveL/HHj4pmM43J83aqf8qFqKAs="][3] == "10.250.2.1/32,100.64.20.0/24"
    assert dump[0].split("\t")[2] == "51820"


def test_golden_partner_configs_hold_no_key_and_only_granted_destinations() -> None:
    acme = (GOLDEN / "partners" / "acme" / "acme-hq.conf").read_text()
    assert "PrivateKey = <REPLACE WITH THE PRIVATE KEY OF THIS PEER>" in acme
    assert "AllowedIPs = 10.1.0.1/32, 10.1.0.5/32, 10.1.0.10/32, 10.1.0.20/32" in acme
    initech = (GOLDEN / "partners" / "initech" / "initech-laptop.conf").read_text()
    assert "10.1.0.40" not in initech  # the expired status-page grant is not routed either
