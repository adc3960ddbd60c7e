"""Where a peer's preshared key file may be: inside the configured folder, never another secret.

A partner's profile names the file that apply installs as the peer's preshared key. Left free,
that name could point at the gateway's own private key (apply would hand it to the peer's
session) or, through '..', anywhere on the host. Paths are compared after normalisation, as
text: the gateway host's links are not visible where the profiles are validated.
"""

from __future__ import annotations

import posixpath

from gatewayctl.model.gateway import GatewayFile


def preshared_key_path(folder: str, value: str) -> str:
    """The absolute, normalised path of a preshared key file: a relative name is taken inside `folder`."""
    return posixpath.normpath(posixpath.join(folder, value))


def key_file_problem(gateway: GatewayFile, value: str) -> str | None:
    """The requirement `value` breaks, as a sentence, or None when the file may be used."""
    folder = posixpath.normpath(gateway.host.preshared_key_dir)
    if ".." in value.split("/"):
        return "must not contain '..'"
    path = preshared_key_path(folder, value)
    if not path.startswith(folder.rstrip("/") + "/"):
        return f"must name a file inside gateway.yaml's host.preshared_key_dir ({folder})"
    for what, other in _secrets(gateway):
        if path == posixpath.normpath(other):
            return f"is {what} ({other}); every peer's preshared key is a file of its own"
    return None


def _secrets(gateway: GatewayFile) -> list[tuple[str, str]]:
    """The gateway's own secret files, which no peer may use as its preshared key."""
    found = [("the gateway's WireGuard private key file (wireguard.private_key_file)", gateway.wireguard.private_key_file)]
    if gateway.auth is not None:
        found.append(("the front's TLS server key (auth.server_key)", gateway.auth.server_key))
    return found
