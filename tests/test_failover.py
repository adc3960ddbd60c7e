"""A pair fails over with real packets: keepalived stopped, underlay link down, wireguard-go killed, failback.

`gatewayctl lab up --ha` builds the pair; this file's estate (tests/ha_pair.py) grants the endpoint
partner umbrella tcp 9000-9003 and 9010 on 10.1.0.10, and 9010 is revoked with `gatewayctl revoke` on
both nodes before anything fails. While a long-lived TCP connection (umbrella -> 9000, data both ways
every 50 ms) and a stream of new connections (-> 9001) run, and the never-granted port 2222 and the
revoked 9010 are probed all along, each failure is made on the active node and then undone:
  - new connections work again within 10 s of the failure (and of the failback),
  - the long-lived connection is never reset and its data resumes both ways,
  - not one probe of 2222 or 9010 passes, on either node, at any moment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from gatewayctl.lab import ha
from tests.conftest import PROFILES
from tests.ha_pair import KINDS, Event, Pair

NEW_CONN_TARGET_S = 10.0
RESUME_TARGET_S = 15.0  # the long-lived flow's data passes both ways again


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    missing = [t for t in ("keepalived", "conntrackd", "wireguard-go", "nft") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        reason = f"the pair's lab needs root and {', '.join(missing) or 'nothing else'}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must provide it")
        pytest.skip(reason)
    running = Pair(tmp_path_factory.mktemp("failover") / "lab")
    try:
        output = running.up(PROFILES)
        assert "active node: node-a" in output, output  # the higher priority wins while both are healthy
        # strict TCP tracking: a mid-stream packet of a flow a node does not track is invalid and dropped,
        # so the long-lived connection can survive a failover only through the state conntrackd copied
        running.tcp_loose(False)
        running.start_traffic()
        assert running.wait_flowing(0.0), "traffic did not pass before any failure"
        yield running
    finally:
        running.down()
        assert not (running.root / "lab.json").exists()


def _check(event: Event, expected_active: str) -> None:
    where = f"{event.kind} on {event.node}: {event.row()}"
    assert event.took_over == expected_active, where
    assert event.new_conn_s is not None and event.new_conn_s <= NEW_CONN_TARGET_S, where
    assert event.long_alive, f"the long-lived connection was reset or closed: {where}"
    assert event.long_resume_s is not None and event.long_resume_s <= RESUME_TARGET_S, where


@pytest.mark.parametrize("kind", KINDS)
def test_failover_and_failback(pair: Pair, kind: str) -> None:
    assert ha.active(pair.lab) == "node-a"
    # the standby holds the long-lived flow's state, in the partner's direction (the partner opened it)
    deadline = time.time() + 10
    while not pair.synced("node-b") and time.time() < deadline:
        time.sleep(0.2)
    assert pair.synced("node-b"), "the standby's conntrackd has no copy of the long-lived flow"
    failed = pair.event(kind, "node-a", lambda: pair.fail(kind, "node-a"), expect_active="node-b")
    _check(failed, "node-b")
    back = pair.event(f"{kind} failback", "node-a", lambda: pair.restore(kind, "node-a"), expect_active="node-a")
    _check(back, "node-a")
    leaks = pair.leaks()
    assert leaks["ungranted"] == 0 and leaks["revoked"] == 0, leaks
    # the forbidden ports were probed all along: never more than 2 s without a probe of each
    assert leaks["rounds"] > 10 and leaks["longest_unprobed_ms"] < 2000, leaks


def test_a_node_whose_device_lost_the_key_gives_up_the_address(pair: Pair) -> None:
    """The track script compares the device's key with gateway.yaml's: a node that cannot answer partners
    goes to FAULT; apply puts the key back and the node takes the address again."""
    assert ha.active(pair.lab) == "node-a"
    wrong = subprocess.run(ha.node_command(pair.lab, "node-a", ["sh", "-c", f"wg genkey | wg set {pair.lab.data['ifname']} "
                                                                 "private-key /dev/stdin"]), capture_output=True, text=True)
    assert wrong.returncode == 0, wrong.stderr
    assert ha.wait_active(pair.lab, 10.0, other_than="node-a") == "node-b"
    fixed = ha.gatewayctl(pair.lab, "node-a", "apply", "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "key" in fixed.stdout  # the plan named the key mismatch
    deadline = time.time() + 15
    while ha.active(pair.lab) != "node-a" and time.time() < deadline:
        time.sleep(0.1)
    assert ha.active(pair.lab) == "node-a"
    assert pair.wait_flowing(time.time(), 20.0)


def test_both_nodes_still_match_the_profiles(pair: Pair) -> None:
    """After every failure and failback: drift on either node finds the host as applied, revocation standing."""
    for name in ha.node_names():
        result = ha.gatewayctl(pair.lab, name, "drift")
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "umbrella/keep-tcp" in result.stdout or "umbrella" in result.stdout, result.stdout


def test_the_revoked_grant_is_out_of_both_tables(pair: Pair) -> None:
    for name in ha.node_names():
        plan = ha.gatewayctl(pair.lab, name, "plan")
        assert plan.returncode == 0, f"{name}: {plan.stdout}{plan.stderr}"
        assert "revoked on this gateway" in plan.stdout and "keep-tcp" in plan.stdout, plan.stdout


def test_ha_table_is_loaded_on_both_nodes(pair: Pair) -> None:
    """The standby sends nothing from the WireGuard port: its table is there (and only drops)."""
    from gatewayctl.lab.core import sh

    for node in pair.lab.data["ha"]["nodes"].values():
        listing = sh("ip", "netns", "exec", node["ns"], "nft", "list", "table", "inet", "gatewayctl_ha").stdout
        assert f"udp sport {pair.lab.data['listen_port']} ip saddr != {pair.lab.data['ha']['floating']} drop" in listing
