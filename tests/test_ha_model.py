"""gateway.yaml's `ha:` block: accepted when sane, refused with file:line, requirement and bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

ENDPOINT_LINE = "  endpoint: gw-fra-1.example.net:51820\n"
HA_BLOCK = """
ha:
  interface: eth0
  sync_interface: eth1
  floating_address: 192.0.2.100/24
  virtual_router_id: 51
  advert_interval_ms: 500
  nodes:
    - name: fra-a
      underlay_address: 192.0.2.21/24
      priority: 150
      sync_address: 198.51.100.1
    - name: fra-b
      underlay_address: 192.0.2.22/24
      priority: 100
      sync_address: 198.51.100.2
"""


def with_ha(estate: Path, block: str = HA_BLOCK, endpoint: str = "192.0.2.100:51820") -> Path:
    path = estate / "gateway.yaml"
    text = path.read_text()
    assert ENDPOINT_LINE in text
    path.write_text(text.replace(ENDPOINT_LINE, f"  endpoint: {endpoint}\n") + block)
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle` (computed from the test's own file)."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def test_a_sane_pair_validates(estate: Path) -> None:
    with_ha(estate)
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 0, result.output


def test_an_estate_without_ha_is_unchanged(estate: Path) -> None:
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("old", "new", "needle", "occurrence", "words"), [
    ("priority: 100", "priority: 150", "priority: 150", 2, ["distinct VRRP priorities", "'150'"]),
    ("name: fra-b", "name: fra-a", "name: fra-a", 2, ["distinct names", "'fra-a'"]),
    ("192.0.2.22/24", "192.0.2.21/24", "underlay_address: 192.0.2.21/24", 2, ["distinct underlay addresses"]),
    ("192.0.2.22/24", "192.0.2.100/24", "underlay_address: 192.0.2.100/24", 1, ["must differ from the floating", "'192.0.2.100/24'"]),
    ("192.0.2.22/24", "203.0.113.22/24", "203.0.113.22/24", 1, ["floating address's network", "'203.0.113.22/24'"]),
    ("sync_address: 198.51.100.2", "sync_address: 192.0.2.21", "sync_address: 192.0.2.21", 1,
     ["not the floating or an underlay address", "'192.0.2.21'"]),
    ("sync_address: 198.51.100.2", "sync_address: fd00::2", "sync_address: fd00::2", 1, ["floating address's family"]),
    ("sync_address: 198.51.100.2", "sync_address: 127.0.0.2", "sync_address: 127.0.0.2", 1, ["not loopback"]),
    ("sync_interface: eth1", "sync_interface: eth0", "sync_interface: eth0", 1, ["a link of its own", "'eth0'"]),
    ("virtual_router_id: 51", "virtual_router_id: 256", "virtual_router_id: 256", 1, ["less than or equal to 255", "256"]),
    ("advert_interval_ms: 500", "advert_interval_ms: 50", "advert_interval_ms: 50", 1, ["greater than or equal to 100"]),
    ("sync_address: 198.51.100.2", "sync_address: 198.51.100.2/32", "sync_address: 198.51.100.2/32", 1,
     ["without a prefix length", "198.51.100.2/32"]),
])
def test_bad_pairs_are_refused_at_their_line(estate: Path, old: str, new: str, needle: str, occurrence: int,
                                             words: list[str]) -> None:
    path = with_ha(estate, HA_BLOCK.replace(old, new, 1))
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2, result.output
    where = f"gateway.yaml:{line_of(path, needle, occurrence)}:"
    lines = [line for line in result.output.splitlines() if where in line]
    assert lines, f"no error at {where}: {result.output}"
    assert all(w in lines[0] for w in words), lines


@pytest.mark.parametrize(("endpoint", "words"), [
    ("gw-fra-1.example.net:51820", ["floating address 192.0.2.100", "a name cannot be checked", "gw-fra-1.example.net"]),
    ("192.0.2.21:51820", ["floating address 192.0.2.100", "'192.0.2.21:51820'"]),
    ("192.0.2.100:51821", ["wireguard.listen_port (51820)", "'192.0.2.100:51821'"]),
])
def test_the_endpoint_must_be_the_floating_address(estate: Path, endpoint: str, words: list[str]) -> None:
    path = with_ha(estate, endpoint=endpoint)
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2, result.output
    where = f"gateway.yaml:{line_of(path, '  endpoint: ')}:"
    lines = [line for line in result.output.splitlines() if where in line]
    assert lines and all(w in lines[0] for w in words), result.output


def test_the_underlay_is_not_the_wireguard_interface(estate: Path) -> None:
    path = with_ha(estate, HA_BLOCK.replace("interface: eth0", "interface: wg-partners"))
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2
    assert f"gateway.yaml:{line_of(path, 'interface: wg-partners', 2)}:" in result.output
    assert "must not be the WireGuard interface" in result.output
