"""drift on a real gateway (the lab: real nftables, real wireguard-go in namespaces): a netdev
ingress chain that forwards partner packets past the policy, and a renamed WireGuard interface.

Needs root; one lab for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("bypass") / "lab", PROFILES) as handle:
        yield handle


def drift_findings(lab: LabHandle) -> tuple[int, list[dict[str, Any]]]:
    result = lab.ctl("drift", "--format", "json")
    findings: list[dict[str, Any]] = json.loads(result.stdout)["findings"] if result.stdout else []
    return result.returncode, findings


def test_netdev_fwd_on_the_partner_interface_is_drift_on_a_real_gateway(lab: LabHandle) -> None:
    assert lab.ctl("drift").returncode == 0
    chain = f'{{ type filter hook ingress device "{lab.ifname}" priority -500; policy accept; }}'
    lab.gw_run("nft", "add", "table", "netdev", "gwtest_steal")
    try:
        lab.gw_run("nft", "add", "chain", "netdev", "gwtest_steal", "steal", chain)
        lab.gw_run("nft", "add", "rule", "netdev", "gwtest_steal", "steal", "ip", "daddr", "10.2.0.5", "fwd", "ip", "to",
                   "10.2.0.5", "device", lab.ifname)
        status, findings = drift_findings(lab)
        assert status == 1, findings
        (hit,) = [f for f in findings if f["kind"] == "foreign-base-chain" and "gwtest_steal steal" in f["subject"]]
        assert f"device {lab.ifname}" in hit["subject"] and "the partner interface" in hit["detail"]
        assert f"fwd to device {lab.ifname} (ip 10.2.0.5)" in hit["detail"]
    finally:
        lab.gw_run("nft", "delete", "table", "netdev", "gwtest_steal")
    assert lab.ctl("drift").returncode == 0


def test_renamed_interface_is_drift_naming_both_names(lab: LabHandle) -> None:
    other = f"gwr{lab.ifname[-6:]}"
    lab.gw_run("ip", "link", "set", lab.ifname, "down")
    lab.gw_run("ip", "link", "set", lab.ifname, "name", other)
    try:
        status, findings = drift_findings(lab)
        assert status == 1, findings
        renamed = [f for f in findings if f["kind"] == "interface-renamed"]
        assert renamed and f"'{other}'" in renamed[0]["detail"] and lab.ifname in renamed[0]["subject"], findings
        assert "the gateway's public key" in renamed[0]["detail"]
    finally:
        lab.gw_run("ip", "link", "set", other, "name", lab.ifname)
    repaired = lab.ctl("apply", "--yes")  # the link came back down and without its routes
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert lab.ctl("drift").returncode == 0
