"""WireGuard state and changes, shared by the userspace (UAPI) and kernel (netlink) backends."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def public_of(private: bytes) -> str:
    """The base64 public key of a 32-byte private key (clamping does not change it)."""
    key = X25519PrivateKey.from_private_bytes(private)
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def fingerprint(secret: bytes) -> str:
    """A short digest to compare secrets without showing them."""
    return hashlib.sha256(b"gatewayctl-psk" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class PeerState:
    """A peer as read from the device."""

    public_key: str
    psk_fingerprint: str | None
    endpoint: str | None
    keepalive: int
    allowed_ips: frozenset[str]
    last_handshake: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class DeviceState:
    """A WireGuard device as read: its public key (derived, never the private key), port and peers."""

    public_key: str | None
    listen_port: int
    peers: dict[str, PeerState]


@dataclass(frozen=True)
class PeerConfig:
    """A peer to create or update. `preshared_key` is secret: never printed."""

    public_key: str
    endpoint: str | None
    keepalive: int
    allowed_ips: tuple[str, ...]
    preshared_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DeviceUpdate:
    """Targeted changes: peers not named keep their sessions. `private_key` is secret."""

    listen_port: int | None = None
    private_key: bytes | None = field(default=None, repr=False)
    upsert: tuple[PeerConfig, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.listen_port is None and self.private_key is None and not self.upsert and not self.remove
