"""Where a peer's partner WireGuard config is written, under a file name wg-quick accepts.

`wg-quick up FILE` takes the interface name from the file name: at most 15 characters of
[a-zA-Z0-9_=+.-], then `.conf` (anything else fails with "The config file must be a valid interface
name, followed by .conf"). Peer names are identifiers of up to 32 characters, all of them in that set,
so a name that fits is kept as it is and a longer one is shortened with a hash of the whole name.
"""

from __future__ import annotations

import hashlib
import re

MAX_INTERFACE = 15  # IFNAMSIZ - 1: the longest interface name Linux (and so wg-quick) takes
KEPT = 10  # characters of a long name kept at the front: a '-' and 4 hex digits fill the 15
HASH_DIGITS = 4
WG_QUICK_NAME = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}")  # wg-quick's own test of the interface name


def interface_name(peer_name: str) -> str:
    """The interface name the partner's config gives wg-quick: the peer name when it has at most 15
    characters; otherwise its first 10 characters, '-' and the first 4 hex digits of the SHA-256 of the
    whole peer name (`umbrella-raccoon` -> `umbrella-r-` + 4 digits)."""
    if len(peer_name) <= MAX_INTERFACE:
        return peer_name
    digest = hashlib.sha256(peer_name.encode()).hexdigest()[:HASH_DIGITS]
    return f"{peer_name[:KEPT]}-{digest}"


def config_file(peer_name: str, gateway: str | None = None) -> str:
    """The file name of the peer's partner config: its interface name followed by `.conf`. In an
    estate of several gateways a peer has one config per gateway, each a WireGuard interface of its
    own on the partner's side: the name is made from `<peer>-<gateway>` by the same rule."""
    return f"{interface_name(f'{peer_name}-{gateway}' if gateway else peer_name)}.conf"


def config_path(partner_id: str, peer_name: str, gateway: str | None = None) -> str:
    """The config's path in a build folder: `partners/<partner id>/<interface name>.conf`."""
    return f"partners/{partner_id}/{config_file(peer_name, gateway)}"
