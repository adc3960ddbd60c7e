"""Partner configs are written under names wg-quick accepts, and validate refuses two peers sharing one.

wg-quick takes the interface name from the config's file name (at most 15 characters of
[a-zA-Z0-9_=+.-], then .conf); peer names may have 32 characters. Every config written, for the
example estate and for an estate of 32-character peer names, goes through `wg-quick strip` under
the very path build wrote it to.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gatewayctl.partner_files import config_file, interface_name
from tests.conftest import AT, PROFILES, run_cli

# wg-quick's own test (wg-quick.bash, parse_options): the interface name, then .conf
WG_QUICK_FILE = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}\.conf")
LONG_PEERS = [  # 32 characters each; the first two share their first 10 characters
    "umbrella-research-site-london-01",
    "umbrella-research-site-london-02",
    "u" * 32,
]


def public_key() -> str:
    raw = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def expected_file(peer: str) -> str:
    """The documented rule, computed here from the name alone."""
    if len(peer) <= 15:
        return f"{peer}.conf"
    return f"{peer[:10]}-{hashlib.sha256(peer.encode()).hexdigest()[:4]}.conf"


def add_peers(estate: Path, names: list[str], first_host: int) -> None:
    """Give umbrella more peers (after its existing ones), each with its own key and tunnel address."""
    path = estate / "partners" / "umbrella.yaml"
    block = "".join(f"  - name: {name}\n    public_key: {public_key()}\n    addresses: [10.250.4.{first_host + i}/32]\n"
                    for i, name in enumerate(names))
    text = path.read_text()
    path.write_text(text.replace("grants:\n", block + "grants:\n", 1))


def build(profiles: Path, out: Path) -> list[Path]:
    result = run_cli("--profiles", str(profiles), "build", "-o", str(out), "--at", AT)
    assert result.exit_code == 0, result.stderr
    return sorted((out / "partners").rglob("*.conf"))


def wg_quick_strip(conf: Path) -> str:
    result = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"wg-quick strip {conf.name}: {result.stderr}"
    return result.stdout


def test_names_that_fit_are_kept_and_long_ones_fit_wg_quick() -> None:
    for peer in ["a", "acme-hq", "umbrella-london", "x" * 15]:
        assert interface_name(peer) == peer
    for peer in ["umbrella-raccoon", *LONG_PEERS]:
        assert config_file(peer) == expected_file(peer)
        assert WG_QUICK_FILE.fullmatch(config_file(peer)), config_file(peer)
    assert len({config_file(peer) for peer in LONG_PEERS}) == len(LONG_PEERS)


def test_every_example_partner_config_passes_wg_quick_strip(needs_root: None, tmp_path: Path) -> None:
    written = build(PROFILES, tmp_path / "out")
    peers = {(p.parent.name, p.name) for p in written}
    assert ("umbrella", expected_file("umbrella-raccoon")) in peers  # 16 characters: shortened
    assert ("acme", "acme-hq.conf") in peers
    for conf in written:
        assert WG_QUICK_FILE.fullmatch(conf.name), conf
        assert "[Peer]" in wg_quick_strip(conf)


def test_32_character_peer_names_give_configs_wg_quick_accepts(needs_root: None, estate: Path, tmp_path: Path) -> None:
    add_peers(estate, LONG_PEERS, first_host=10)
    written = build(estate, tmp_path / "out")
    umbrella = sorted(p.name for p in written if p.parent.name == "umbrella")
    assert umbrella == sorted(expected_file(n) for n in ["umbrella-london", "umbrella-raccoon", *LONG_PEERS])
    for conf in written:
        stripped = wg_quick_strip(conf)
        assert "PublicKey = " in stripped and "Address" not in stripped  # wg-quick's own lines are gone


def test_validate_refuses_two_peers_with_one_config_file(estate: Path) -> None:
    taken = expected_file("umbrella-raccoon").removesuffix(".conf")  # a 15-character name spelt as the short form
    add_peers(estate, [taken], first_host=10)
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    lines = (estate / "partners" / "umbrella.yaml").read_text().splitlines()
    line = next(i for i, text_line in enumerate(lines, 1) if text_line == f"  - name: {taken}")
    raccoon = lines.index("  - name: umbrella-raccoon") + 1
    assert f"partners/umbrella.yaml:{line}:" in text, text
    assert f"'{taken}.conf'" in text and "'umbrella-raccoon'" in text and f"(line {raccoon})" in text, text


def test_peers_of_different_partners_may_share_a_name(estate: Path, tmp_path: Path) -> None:
    # Each partner has its own folder, so the same file name in two folders is no collision.
    add_peers(estate, ["acme-hq"], first_host=10)
    written = build(estate, tmp_path / "out")
    assert {p.parent.name for p in written if p.name == "acme-hq.conf"} == {"acme", "umbrella"}


@pytest.fixture(autouse=True)
def _wg_quick_present() -> None:
    assert shutil.which("wg-quick"), "wireguard-tools (wg-quick) must be installed for these tests"
