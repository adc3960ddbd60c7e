"""`build` of a pair: each node's keepalived, conntrackd and scripts; the shared files the same as a single gateway's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import AT, run_cli
from tests.test_ha_model import HA_BLOCK, with_ha

ROUTES = ("  source_routes:\n    - to: 0.0.0.0/0\n      via: 192.0.2.1\n"
          "  internal_addresses:\n    - {address: 10.255.255.1/24, interface: eth2}\n"
          "    - {address: 'fd00:ffff::1/64', interface: eth2}\n")
NODE_FILES = {"keepalived.conf", "conntrackd.conf", "gatewayctl-ha-check.sh", "gatewayctl-ha-notify.sh", "gatewayctl-ha.nft",
              "gatewayctl-ha.service"}


def build(profiles: Path, out: Path) -> dict[str, str]:
    result = run_cli("--profiles", str(profiles), "build", "-o", str(out), "--at", AT)
    assert result.exit_code == 0, result.output
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def built(estate: Path, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(files of the single gateway, files of the same estate as a pair)."""
    single = build(estate, tmp_path / "single")
    with_ha(estate, HA_BLOCK + ROUTES)
    return single, build(estate, tmp_path / "pair")


def test_each_node_gets_its_files(built: tuple[dict[str, str], dict[str, str]]) -> None:
    _, pair = built
    for node in ("fra-a", "fra-b"):
        assert {p.split("/", 2)[2] for p in pair if p.startswith(f"ha/{node}/")} == NODE_FILES


def test_shared_files_are_one_and_the_same(built: tuple[dict[str, str], dict[str, str]]) -> None:
    """The ruleset and WireGuard configs carry nothing of either node: the partners' endpoint changes, nothing else."""
    single, pair = built
    shared = [p for p in pair if not p.startswith("ha/") and p != ".gatewayctl-build.json"]
    assert {p for p in single if p != ".gatewayctl-build.json"} == set(shared)
    for path in shared:
        text = pair[path]
        for node_value in ("fra-a", "fra-b", "192.0.2.21", "192.0.2.22", "198.51.100.1", "198.51.100.2"):
            assert node_value not in text, f"{path} holds {node_value}"
        expected = single[path].replace("gw-fra-1.example.net:51820", "192.0.2.100:51820")
        assert text == expected, f"{path} differs from the single gateway's beyond the endpoint"


def test_node_files_name_their_node_and_the_other(built: tuple[dict[str, str], dict[str, str]]) -> None:
    _, pair = built
    a, b = pair["ha/fra-a/keepalived.conf"], pair["ha/fra-b/keepalived.conf"]
    assert "priority 150" in a and "unicast_src_ip 192.0.2.21" in a and "\t\t192.0.2.22\n" in a
    assert "priority 100" in b and "unicast_src_ip 192.0.2.22" in b and "\t\t192.0.2.21\n" in b
    for text in (a, b):
        assert "virtual_router_id 51" in text and "advert_int 0.5" in text and "192.0.2.100/24 dev eth0" in text
        assert "src 192.0.2.100 to 0.0.0.0/0 via 192.0.2.1 dev eth0 metric 50" in text
        assert "nopreempt" not in text
        assert "virtual_ipaddress_excluded {\n\t\t10.255.255.1/24 dev eth2\n\t\tfd00:ffff::1/64 dev eth2\n" in text
    sync_a = pair["ha/fra-a/conntrackd.conf"]
    assert "IPv4_address 198.51.100.1\n" in sync_a and "IPv4_Destination_Address 198.51.100.2" in sync_a
    assert "Interface eth1" in sync_a and "/var/lib/gatewayctl/ha/fra-a/conntrackd.ctl" in sync_a
    check = pair["ha/fra-a/gatewayctl-ha-check.sh"]
    assert "wg-partners" in check and "inet gatewayctl forward" in check and "gatewayctl_guard" in check
    assert '= "ZVPBzda+ILGkL+7zE8mMDqcWH3mCGuXsLMJ4P35OdXA=" ]; }' in check and "|| exit 5" in check  # its key
    notify = pair["ha/fra-a/gatewayctl-ha-notify.sh"]
    # the new active node expires stale sessions (a throwaway key, then the gateway's own from its file)
    assert "wg genkey | wg set wg-partners private-key /dev/stdin" in notify
    assert 'wg set wg-partners private-key "/etc/gatewayctl/wg-partners.key"' in notify
    assert 'conntrackd -C "$CONF" -c' in notify and "/etc/gatewayctl/ha/fra-a/conntrackd.conf" in notify
    nft = pair["ha/fra-a/gatewayctl-ha.nft"]
    assert "udp sport 51820 ip saddr != 192.0.2.100 drop" in nft


def test_nopreempt(estate: Path, tmp_path: Path) -> None:
    with_ha(estate, HA_BLOCK + "  preempt: false\n")
    assert "\tnopreempt\n" in build(estate, tmp_path / "out")["ha/fra-b/keepalived.conf"]


@pytest.mark.parametrize("tool", ["keepalived", "nft"])
def test_the_daemons_accept_the_files(built: tuple[dict[str, str], dict[str, str]], tmp_path: Path, tool: str,
                                      netns: str) -> None:
    """keepalived's own config test (in a namespace that has the interfaces it names) and nft's check (-c)
    on every node's file; sh -n on the scripts."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (setup.sh installs it)")
    for pair_names in (("eth0", "eth1"), ("eth2", "eth3")):
        subprocess.run(["ip", "-n", netns, "link", "add", pair_names[0], "type", "veth", "peer", "name", pair_names[1]],
                       check=True)
    _, pair = built
    for node in ("fra-a", "fra-b"):
        folder = tmp_path / node
        folder.mkdir()
        for name in NODE_FILES:
            (folder / name).write_text(pair[f"ha/{node}/{name}"])
        if tool == "keepalived":
            done = subprocess.run(["ip", "netns", "exec", netns, "keepalived", "--config-test", "-f",
                                   str(folder / "keepalived.conf")],
                                  capture_output=True, text=True, timeout=30)
        else:
            done = subprocess.run(["nft", "-c", "-f", str(folder / "gatewayctl-ha.nft")], capture_output=True, text=True,
                                  timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        for script in ("gatewayctl-ha-check.sh", "gatewayctl-ha-notify.sh"):
            assert subprocess.run(["sh", "-n", str(folder / script)], timeout=10).returncode == 0


V6_BLOCK = """
ha:
  interface: eth0
  sync_interface: eth1
  floating_address: fd00:192::100/64
  virtual_router_id: 52
  nodes:
    - {name: fra-a, underlay_address: "fd00:192::21/64", priority: 150, sync_address: "fd00:198::1"}
    - {name: fra-b, underlay_address: "fd00:192::22/64", priority: 100, sync_address: "fd00:198::2"}
"""


def test_an_ipv6_pair(estate: Path, tmp_path: Path) -> None:
    """A floating IPv6 address: the endpoint in brackets, IPv6 sync, and IPv4 from the WireGuard port dropped."""
    with_ha(estate, V6_BLOCK, endpoint="'[fd00:192::100]:51820'")
    files = build(estate, tmp_path / "out")
    nft = files["ha/fra-b/gatewayctl-ha.nft"]
    assert "meta nfproto ipv6 udp sport 51820 ip6 saddr != fd00:192::100 drop" in nft
    assert "meta nfproto ipv4 udp sport 51820 drop" in nft
    sync = files["ha/fra-b/conntrackd.conf"]
    assert "IPv6_address fd00:198::2\n" in sync and "IPv6_Destination_Address fd00:198::1" in sync
    assert "fd00:192::100/64 dev eth0" in files["ha/fra-a/keepalived.conf"]
    assert "Endpoint = [fd00:192::100]:51820" in files["partners/acme/acme-hq.conf"]


def test_the_node_boot_unit_loads_the_send_filter_before_wireguard(built: tuple[dict[str, str], dict[str, str]],
                                                                    tmp_path: Path) -> None:
    """At boot the node's table inet <table>_ha is in force before wireguard-go, restore or wg-quick can
    start, and an enabled WireGuard unit does not start without it; systemd-analyze accepts the unit."""
    _, pair = built
    unit = pair["ha/fra-a/gatewayctl-ha.service"]
    fields: dict[str, list[str]] = {}
    for line in unit.splitlines():
        name, _, value = line.partition("=")
        fields.setdefault(name, []).extend(value.split())
    assert fields["ExecStart"] == ["/usr/sbin/nft", "-f", "/etc/gatewayctl/ha/fra-a/gatewayctl-ha.nft"]
    wireguard = {"gatewayctl-wireguard-go.service", "gatewayctl-restore.service", "wg-quick@wg-partners.service"}
    assert wireguard <= set(fields["Before"]) and wireguard <= set(fields["RequiredBy"])
    (tmp_path / "gatewayctl-ha.service").write_text(unit)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "gatewayctl-ha.service")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "gatewayctl-ha.service" not in verify.stderr, verify.stderr
