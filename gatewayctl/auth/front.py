"""What binds the front (nginx) to the authorizer: the front's secret, and the sizes nginx's map needs.

The secret proves a request comes from nginx itself. nginx's master process reads its configuration
as root, so the secret's file is 0600 root and its workers (the front's user) never read it: they
hold the value in memory only, and the kernel keeps other processes of that user out of that
memory (a worker that changed user is not dumpable, so it cannot be traced or read through /proc).
Together with SO_PEERCRED on the socket, a request with the secret was made by nginx, and nginx
fills every header from the TLS connection it verified."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from gatewayctl.atomicfile import atomic_write

SECRET_FILE = "front-secret.conf"  # beside the authorizer's socket; nginx.conf includes it
SECRET_HEADER = "x-gatewayctl-front-secret"
_LINE = re.compile(r'^proxy_set_header X-Gatewayctl-Front-Secret "([0-9a-f]{64})";\n$')


def secret_path(socket_path: Path) -> Path:
    """Where the front's secret lives for an authorizer serving on `socket_path`."""
    return socket_path.parent / SECRET_FILE


def ensure_secret(path: Path) -> str:
    """The front's secret: the one in `path` if it is sound (a regular file of root's, 0600, one
    well-formed line), else a new one written there. Kept across restarts of the authorizer so a
    running nginx stays in step; a reboot (the folder is in /run) makes a new one."""
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & 0o077 == 0:
            match = _LINE.match(path.read_text())
            if match:
                return match.group(1)
    except (OSError, UnicodeDecodeError):
        pass
    value = secrets.token_hex(32)
    path.unlink(missing_ok=True)  # a link or a file of someone else's is replaced, never written through
    atomic_write(path, f'proxy_set_header X-Gatewayctl-Front-Secret "{value}";\n'.encode(), 0o600)
    return value


def from_the_front(headers: dict[str, str], secret: str) -> bool:
    """Whether the request carries the front's secret (compared in constant time)."""
    return hmac.compare_digest(headers.get(SECRET_HEADER, "").encode(), secret.encode())


def map_hash_sizes(keys: Iterable[str], count: int) -> tuple[int, int]:
    """(map_hash_bucket_size, map_hash_max_size) for an nginx map with these keys.

    nginx stores a key in a bucket as a pointer, the key rounded up to 8 bytes with 2 bytes of
    length, and ends the bucket with a pointer: a bucket must hold the longest key's element with
    room to spare (nginx's default of 64 is too small for real issuer DNs such as a PIV CA's). The
    bucket is the next power of two above that, at least 64; the table may grow to the next power
    of two above four times the keys, at least nginx's default 2048."""
    longest = max((len(k.encode()) for k in keys), default=0)
    element = 8 + (longest + 2 + 7) // 8 * 8
    bucket = _power_of_two(max(64, element + 8 + 32))
    return bucket, _power_of_two(max(2048, 4 * count))


def _power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()
