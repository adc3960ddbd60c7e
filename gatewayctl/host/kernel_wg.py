"""WireGuard through the kernel's generic netlink (pyroute2).

Not exercised on the development machine, whose kernel has no WireGuard module (NOTES.md): it is
kept small and shares the parser and the change model with the userspace backend by translating
to and from the UAPI text form. See docs/host-backends.md for what is tested where.
"""

from __future__ import annotations

import base64
from typing import Any

from gatewayctl.host.errors import HostError
from gatewayctl.host.wgtypes import DeviceUpdate


def _wg() -> Any:
    from pyroute2 import WireGuard

    try:
        return WireGuard()
    except Exception as exc:  # pyroute2 raises NetlinkError(2) without the module
        raise HostError(f"the kernel has no WireGuard generic netlink family: {exc}") from None


def get_raw(ifname: str) -> str:
    """The device in UAPI `get` text, so that one parser serves both backends."""
    messages = _wg().info(ifname)
    lines: list[str] = []
    for msg in messages:
        private = msg.get_attr("WGDEVICE_A_PRIVATE_KEY")
        if private:
            lines.append(f"private_key={base64.b64decode(private).hex()}")
        port = msg.get_attr("WGDEVICE_A_LISTEN_PORT")
        if port is not None:
            lines.append(f"listen_port={port}")
        for peer in msg.get_attr("WGDEVICE_A_PEERS") or []:
            lines += _peer_lines(peer)
    return "\n".join(lines)


def _peer_lines(peer: Any) -> list[str]:
    lines = [f"public_key={base64.b64decode(peer.get_attr('WGPEER_A_PUBLIC_KEY')).hex()}"]
    psk = peer.get_attr("WGPEER_A_PRESHARED_KEY")
    lines.append(f"preshared_key={base64.b64decode(psk).hex() if psk else '0' * 64}")
    endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
    if endpoint:
        addr, port = endpoint["addr"], endpoint["port"]
        lines.append(f"endpoint={'[' + addr + ']' if ':' in addr else addr}:{port}")
    lines.append(f"persistent_keepalive_interval={peer.get_attr('WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL') or 0}")
    handshake = peer.get_attr("WGPEER_A_LAST_HANDSHAKE_TIME") or {}
    lines.append(f"last_handshake_time_sec={handshake.get('tv_sec', 0)}")
    lines.append(f"rx_bytes={peer.get_attr('WGPEER_A_RX_BYTES') or 0}")
    lines.append(f"tx_bytes={peer.get_attr('WGPEER_A_TX_BYTES') or 0}")
    for ip in peer.get_attr("WGPEER_A_ALLOWEDIPS") or []:
        lines.append(f"allowed_ip={ip['addr']}")
    return lines


def apply_update(ifname: str, update: DeviceUpdate) -> None:
    """The same targeted changes as the UAPI backend: only named peers are touched."""
    wg = _wg()
    if update.private_key is not None or update.listen_port is not None:
        kwargs: dict[str, Any] = {}
        if update.private_key is not None:
            kwargs["private_key"] = base64.b64encode(update.private_key).decode()
        if update.listen_port is not None:
            kwargs["listen_port"] = update.listen_port
        wg.set(ifname, **kwargs)
    for key in update.remove:
        wg.set(ifname, peer={"public_key": key, "remove": True})
    for peer in update.upsert:
        spec: dict[str, Any] = {"public_key": peer.public_key, "allowed_ips": list(peer.allowed_ips),
                                "persistent_keepalive": peer.keepalive, "replace_allowed_ips": True}
        if peer.endpoint:
            host, _, port = peer.endpoint.rpartition(":")
            spec["endpoint_addr"], spec["endpoint_port"] = host.strip("[]"), int(port)
        if peer.preshared_key:
            spec["preshared_key"] = base64.b64encode(peer.preshared_key).decode()
        wg.set(ifname, peer=spec)
