"""Pure parsers on captured snapshots (tests/cases/snapshots, captured from a real namespace)."""

from __future__ import annotations

import json
from pathlib import Path

from gatewayctl.host import uapi
from gatewayctl.host.base import parse_snapshot
from gatewayctl.host.nftstate import value_text
from gatewayctl.host.wgtypes import DeviceUpdate, PeerConfig, fingerprint

SNAPSHOTS = Path(__file__).parent / "cases" / "snapshots"


def test_captured_snapshot_parses_into_typed_state() -> None:
    live = parse_snapshot(json.loads((SNAPSHOTS / "example-applied.json").read_text()))
    assert live.link is not None and live.link.up and live.link.mtu == 1420 and live.link.kind == "tun"
    assert live.link.routes == {"100.64.20.0/24"}
    assert live.wg_backend == "userspace" and live.wg is not None and live.wg.public_key is None
    globex = live.wg.peers["LY8sGSa93pktIPfwgveL/HHj4pmM43J83aqf8qFqKAs="]
    assert globex.allowed_ips == {"10.250.2.1/32", "100.64.20.0/24"} and globex.endpoint == "203.0.113.20:51820"
    assert globex.keepalive == 25 and globex.psk_fingerprint is None
    assert live.nft is not None and "10.250.1.1 : goto deny_acme" in live.nft.sets["deny4"].elements
    assert live.nft.sets["grants4"].counters["10.250.1.1 . 10.1.0.5 . tcp . 443"] == (0, 0)
    assert live.nft.chains["forward"].hook == "forward" and live.nft.chains["forward"].policy == "accept"
    assert [str(c) for c in live.foreign_chains] == ["ip other c_fwd (hook forward, priority -10, policy accept)"]


def test_uapi_reply_with_secrets_keeps_only_fingerprints() -> None:
    private, psk = bytes(range(32)), bytes([7]) * 32
    text = "\n".join([f"private_key={private.hex()}", "listen_port=51820", f"public_key={'ab' * 32}",
                      f"preshared_key={psk.hex()}", "endpoint=[2001:db8::1]:51820", "allowed_ip=10.250.1.1/32",
                      "allowed_ip=fd00:250::1/128", "persistent_keepalive_interval=0", "rx_bytes=10", "tx_bytes=20",
                      "last_handshake_time_sec=1700000000"])
    device = uapi.parse_get(text)
    peer = next(iter(device.peers.values()))
    assert peer.psk_fingerprint == fingerprint(psk) and psk.hex() not in repr(device)
    assert private.hex() not in repr(device)
    assert peer.endpoint == "[2001:db8::1]:51820" and peer.rx_bytes == 10 and peer.last_handshake == 1700000000
    restored = uapi.restorable(text)
    assert restored.private_key == private and restored.upsert[0].preshared_key == psk
    assert psk.hex() not in repr(restored) and private.hex() not in repr(restored)


def test_set_request_is_complete_and_targeted() -> None:
    update = DeviceUpdate(listen_port=51820, upsert=(PeerConfig("q" * 43 + "=", None, 25, ("10.250.1.1/32",)),),
                          remove=("r" * 43 + "=",))
    request = uapi.serialize_set(update)
    lines = request.splitlines()
    assert request.endswith("\n\n") and lines[0] == "set=1"
    assert "replace_peers=true" not in request  # never recreate every peer
    assert lines.index("remove=true") < lines.index("replace_allowed_ips=true")


def test_value_text_spells_elements_like_nft() -> None:
    assert value_text({"concat": [{"prefix": {"addr": "100.64.20.0", "len": 24}}, "10.1.0.5", "tcp",
                                  {"range": [8000, 8003]}]}) == "100.64.20.0/24 . 10.1.0.5 . tcp . 8000-8003"
    assert value_text({"goto": {"target": "deny_acme"}}) == "goto deny_acme"
