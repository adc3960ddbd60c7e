"""Key files on the gateway host. Keys are read into memory only; no key reaches a message."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from gatewayctl.host.errors import HostError
from gatewayctl.host.wgtypes import fingerprint, public_of


def read_key(path: str, what: str) -> bytes:
    """A 32-byte WireGuard key from a file in `wg genkey` form, which must not be readable by others."""
    try:
        st = os.stat(path)
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise HostError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HostError(f"the {what} file {path} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                        f"run: chmod 600 {path}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise HostError(f"the {what} file {path} does not hold a WireGuard key (44 characters of base64, as `wg genkey` writes)")
    return raw


class Secrets:
    """Reads each key file once; hands out keys to the engine and fingerprints to the planner."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    def key(self, path: str, what: str) -> bytes:
        if path not in self._cache:
            self._cache[path] = read_key(path, what)
        return self._cache[path]

    def psk_fingerprint(self, path: str | None) -> str | None:
        return fingerprint(self.key(path, "preshared key")) if path else None

    def public_key_of(self, path: str) -> str:
        return public_of(self.key(path, "private key"))
