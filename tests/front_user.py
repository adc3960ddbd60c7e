"""A front user of its own for tests that run nginx or talk to the authorizer as nginx would (root only)."""

from __future__ import annotations

import contextlib
import pwd
import secrets
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def front_user(name: str | None = None) -> Iterator[str]:
    """A system user for the front (created with useradd if missing, removed afterwards if created here).
    Without `name`, a fresh one per use, so tests running at once never share or remove each other's."""
    name = name or f"gwctl-front-{secrets.token_hex(3)}"
    created = False
    try:
        pwd.getpwnam(name)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                               "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        created = True
    try:
        yield name
    finally:
        if created:
            subprocess.run(["userdel", name], capture_output=True, timeout=60, check=False)
