"""A node of a pair: how it learns its name, what it refuses, and that both nodes close a grant at one instant."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gatewayctl.hanode import NODE_ENV, NodeError, node_name, resolve
from gatewayctl.model.ha import HaSettings
from gatewayctl.pipeline import compile_profiles
from gatewayctl.render.artifacts import render_ruleset
from gatewayctl.render.environment import element_text, exact_timeouts, make_environment
from tests.conftest import PROFILES
from tests.test_ha_model import HA_BLOCK, with_ha

HA = HaSettings.model_validate({
    "interface": "eth0", "sync_interface": "eth1", "floating_address": "192.0.2.100/24", "virtual_router_id": 51,
    "nodes": [{"name": "fra-a", "underlay_address": "192.0.2.21/24", "priority": 150, "sync_address": "198.51.100.1"},
              {"name": "fra-b", "underlay_address": "192.0.2.22/24", "priority": 100, "sync_address": "198.51.100.2"}]})


def test_the_option_comes_first_then_the_environment_then_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NODE_ENV, raising=False)
    assert node_name(None, tmp_path) is None
    (tmp_path / "node").write_text("fra-b\n")
    assert node_name(None, tmp_path) == ("fra-b", str(tmp_path / "node"))
    monkeypatch.setenv(NODE_ENV, "fra-a")
    assert node_name(None, tmp_path) == ("fra-a", NODE_ENV)
    assert node_name("fra-b", tmp_path) == ("fra-b", "--node")


def test_roles() -> None:
    standby = resolve(HA, ("fra-b", "--node"), frozenset({"192.0.2.22", "127.0.0.1"}))
    assert (standby.node.name, standby.active) == ("fra-b", False)
    active = resolve(HA, ("fra-a", "--node"), frozenset({"192.0.2.21", "192.0.2.100"}))
    assert active.active and "apply the standby first" in active.describe()


@pytest.mark.parametrize(("named", "addresses", "words"), [
    (None, {"192.0.2.21"}, ["--node NAME", NODE_ENV, "fra-a, fra-b"]),
    (("fra-c", "--node"), {"192.0.2.21"}, ["'fra-c'", "not a node of this pair"]),
    (("fra-a", NODE_ENV), {"192.0.2.22", "192.0.2.100"}, ["192.0.2.21 is not on this host", NODE_ENV]),
])
def test_unknown_or_wrong_nodes_are_refused(named: tuple[str, str] | None, addresses: set[str], words: list[str]) -> None:
    with pytest.raises(NodeError) as caught:
        resolve(HA, named, frozenset(addresses))
    assert all(w in str(caught.value) for w in words), str(caught.value)


def _ends(text: str, loaded_at: dt.datetime) -> dict[str, dt.datetime]:
    """Each timed element of a ruleset text: the instant its kernel timer runs out, loaded at `loaded_at`."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    found = {}
    for key, timeout in re.findall(r"^\t+(\S.*?) timeout (\S+) comment", text, re.M):
        seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", timeout))
        found[key] = loaded_at + dt.timedelta(seconds=seconds)
    return found


def test_two_nodes_applying_at_different_moments_close_a_grant_at_the_same_instant() -> None:
    """apply computes each kernel timeout as (absolute end - the instant of loading): a node applying
    later gets a shorter timer, and the timer runs out at the same instant on both nodes."""
    first = dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC)
    later = first + dt.timedelta(minutes=7, seconds=13)  # the second node of the pair, applied 7 min 13 s later
    policy = compile_profiles(PROFILES, first).policy
    env = make_environment()
    a, b = _ends(render_ruleset(policy, env, first), first), _ends(render_ruleset(policy, env, later), later)
    assert a and a.keys() == b.keys()
    assert a == b
    # and the instants are the grants' own ends (the end of their expiry day), not a clock's reading
    ends = {e.key: e.ends_at for e in (*policy.table.grants4, *policy.table.grants6) if e.ends_at is not None}
    assert ends and all(a[key] == end for key, end in ends.items())
    # elements added in place (apply without replacing the table) are timed the same way
    element = next(e for e in policy.table.grants4 if e.ends_at is not None)
    for moment in (first, later):
        assert _ends("\t" + element_text(element, exact_timeouts(moment)), moment)[element.key] == element.ends_at


def test_plan_on_a_pair_needs_the_right_node(estate: Path, netns: str) -> None:
    """Real namespace with node fra-b's underlay address: --node fra-a is refused (exit 2), fra-b is the standby."""
    with_ha(estate, HA_BLOCK)
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "ip", "addr", "add", "192.0.2.22/32", "dev", "lo"], check=True)
    base = [sys.executable, "-m", "gatewayctl", "--profiles", str(estate), "plan", "--netns", netns,
            "--state-dir", str(estate.parent / "state")]
    wrong = subprocess.run([*base, "--node", "fra-a"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "node fra-a's underlay address 192.0.2.21 is not on this host" in wrong.stderr
    unnamed = subprocess.run(base, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert unnamed.returncode == 2 and "say which node this host is" in unnamed.stderr
    right = subprocess.run([*base, "--node", "fra-b"], capture_output=True, text=True, timeout=120)
    # past the node check (the example's key files are not on this machine, so the plan stops after it)
    assert "node fra-b (from --node): standby (the floating address 192.0.2.100 is on the other node)" in right.stderr
    assert "not on this host" not in right.stderr and "say which node" not in right.stderr
