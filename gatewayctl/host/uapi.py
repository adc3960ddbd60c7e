"""WireGuard's cross-platform userspace API (wireguard-go and other userspace implementations).

Protocol facts (NOTES.md): keys are 64 lower-case hex characters; replies end with `errno=N` and a
blank line; a request without its terminating blank line waits forever, so every call has a
timeout; a `set` is not atomic, so requests are validated completely before they are sent.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket

from gatewayctl.host.errors import HostError
from gatewayctl.host.wgtypes import DeviceState, DeviceUpdate, PeerConfig, PeerState, fingerprint, public_of

SOCKET_DIR = "/var/run/wireguard"
TIMEOUT_S = 5.0
ZERO_KEY = "0" * 64


def socket_path(ifname: str) -> str:
    return os.path.join(SOCKET_DIR, f"{ifname}.sock")


def exchange(ifname: str, request: str) -> str:
    """Send one request, return the reply without its `errno=0` line; raise HostError on errno or timeout."""
    path = socket_path(ifname)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT_S)
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise HostError(f"no WireGuard userspace socket for {ifname} ({path}): is wireguard-go running for it?") from None
        except ConnectionRefusedError:
            raise HostError(f"wireguard-go for {ifname} is not running: {path} refuses connections; "
                            f"start it (wireguard-go {ifname}) or remove the stale socket") from None
        sock.sendall(request.encode())
        reply = _read_reply(sock, ifname)
    lines = reply.rstrip("\n").split("\n")
    errno = lines[-1]
    if not errno.startswith("errno="):
        raise HostError(f"unexpected reply from wireguard-go for {ifname}: no errno line")
    if errno != "errno=0":
        raise HostError(f"wireguard-go for {ifname} refused the request ({errno}: {os.strerror(-int(errno[6:]) or 0)})")
    return "\n".join(lines[:-1])


def _read_reply(sock: socket.socket, ifname: str) -> str:
    data = b""
    while not (data.endswith(b"\n\n") and b"errno=" in data):
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise HostError(f"wireguard-go for {ifname} did not answer within {TIMEOUT_S:.0f} s") from None
        if not chunk:
            raise HostError(f"wireguard-go for {ifname} closed the connection mid-reply")
        data += chunk
    return data.decode()


def get_raw(ifname: str) -> str:
    """The raw `get` reply: the snapshot the parser reads."""
    return exchange(ifname, "get=1\n\n")


def parse_get(text: str) -> DeviceState:
    """Parse a `get` reply into typed state; private keys are reduced to a public key or a fingerprint."""
    public_key: str | None = None
    listen_port = 0
    peers: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    for line in text.splitlines():
        if not line:
            continue
        key, _, value = line.partition("=")
        if key == "private_key":
            public_key = public_of(bytes.fromhex(value)) if value != ZERO_KEY else None
        elif key == "listen_port":
            listen_port = int(value)
        elif key == "public_key":
            current = {"public_key": _b64(value), "allowed_ips": set()}
            peers[str(current["public_key"])] = current
        elif current is not None:
            _peer_field(current, key, value)
    return DeviceState(public_key, listen_port, {k: _peer(v) for k, v in peers.items()})


def _peer_field(peer: dict[str, object], key: str, value: str) -> None:
    if key == "preshared_key":
        peer["psk"] = None if value == ZERO_KEY else fingerprint(bytes.fromhex(value))
    elif key == "endpoint":
        peer["endpoint"] = value
    elif key == "persistent_keepalive_interval":
        peer["keepalive"] = int(value)
    elif key == "allowed_ip":
        peer["allowed_ips"].add(str(ipaddress.ip_network(value, strict=False)))  # type: ignore[attr-defined]
    elif key in ("last_handshake_time_sec", "rx_bytes", "tx_bytes"):
        peer[key] = int(value)


def _peer(raw: dict[str, object]) -> PeerState:
    return PeerState(
        public_key=str(raw["public_key"]), psk_fingerprint=raw.get("psk"),  # type: ignore[arg-type]
        endpoint=raw.get("endpoint"), keepalive=int(raw.get("keepalive", 0)),  # type: ignore[arg-type, call-overload]
        allowed_ips=frozenset(raw["allowed_ips"]),  # type: ignore[arg-type]
        last_handshake=int(raw.get("last_handshake_time_sec", 0)),  # type: ignore[call-overload]
        rx_bytes=int(raw.get("rx_bytes", 0)), tx_bytes=int(raw.get("tx_bytes", 0)),  # type: ignore[call-overload]
    )


def _b64(hex_key: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_key)).decode()


def _hex(b64_key: str) -> str:
    try:
        raw = base64.b64decode(b64_key, validate=True)
    except binascii.Error:
        raise HostError("a public key is not valid base64") from None
    if len(raw) != 32:
        raise HostError("a public key is not 32 bytes")
    return raw.hex()


def serialize_set(update: DeviceUpdate) -> str:
    """The `set` request for an update: complete and validated before anything is sent."""
    lines = ["set=1"]
    if update.private_key is not None:
        lines.append(f"private_key={_secret_hex(update.private_key)}")
    if update.listen_port is not None:
        lines.append(f"listen_port={update.listen_port}")
    for key in update.remove:
        lines += [f"public_key={_hex(key)}", "remove=true"]
    for peer in update.upsert:
        lines += _peer_lines(peer)
    return "\n".join(lines) + "\n\n"


def _peer_lines(peer: PeerConfig) -> list[str]:
    lines = [f"public_key={_hex(peer.public_key)}"]
    lines.append(f"preshared_key={_secret_hex(peer.preshared_key) if peer.preshared_key else ZERO_KEY}")
    if peer.endpoint:
        lines.append(f"endpoint={peer.endpoint}")
    lines.append(f"persistent_keepalive_interval={peer.keepalive}")
    lines.append("replace_allowed_ips=true")
    lines += [f"allowed_ip={ip}" for ip in peer.allowed_ips]
    return lines


def _secret_hex(secret: bytes) -> str:
    if len(secret) != 32:
        raise HostError("a WireGuard key file does not hold a 32-byte key")
    return secret.hex()


def apply_update(ifname: str, update: DeviceUpdate) -> None:
    if not update.empty:
        exchange(ifname, serialize_set(update))
