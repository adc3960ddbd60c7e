"""Private cache folders under $XDG_CACHE_HOME (or ~/.cache)/gatewayctl, used only when nobody else
could have put a file there.

A cache's files are trusted as the program's own (compiled templates are loaded as code, parsed
profiles as the profiles' data), so a folder is used only when every folder from / down to it is
reached without following a link, belongs to root or to this user and is writable by nobody else (a
root-owned sticky folder such as /tmp may be on the way above the cache base), and the last three
belong to this user. Tested in tests/test_build.py and tests/test_hostile_fs.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def private_folder(name: str) -> int | None:
    """A descriptor of the cache folder gatewayctl/NAME (created 0700), or None when it is unsafe or
    cannot be made (no home, a read-only file system)."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return _trusted_folder(Path(os.path.abspath(base)), ("gatewayctl", name))
    except (OSError, RuntimeError):
        return None


def read_entry(folder_fd: int, name: str, limit: int) -> bytes | None:
    """The bytes of entry `name` of a cache folder, or None when it is missing, is not a regular file
    of this user's that nobody else may read or write (never followed through a link), or is larger
    than `limit`."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077 or st.st_size > limit:
            return None
        try:
            return handle.read(limit + 1)
        except OSError:
            return None


def write_entry(folder_fd: int, name: str, write: Callable[[BinaryIO], object]) -> None:
    """Write entry `name` of a cache folder (0600) through a new temporary file renamed over it; a
    cache that cannot be written costs time, not correctness, so failures are silent."""
    tmp = f".{name}.{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.rename(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder_fd)


def _trusted_folder(base: Path, private: tuple[str, ...]) -> int | None:
    """A descriptor of base/private..., checked component by component from /; None if any is unsafe."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        if not _trusted(os.fstat(fd), sticky_ok=False):
            os.close(fd)
            return None
        # the cache base (~/.cache) is made if missing, as are the private folders; never its parents
        above = base.parts[1:]
        steps = [(part, False) for part in above[:-1]] + [(part, True) for part in (*above[-1:], *private)]
        for index, (part, create) in enumerate(steps):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)  # a link raises ELOOP or ENOTDIR
            os.close(fd)
            fd = child
            st = os.fstat(fd)
            mine = index >= len(steps) - len(private) - 1  # the cache base and the folders made in it
            if not _trusted(st, sticky_ok=not mine) or (mine and st.st_uid != os.geteuid()):
                os.close(fd)
                return None
        return fd
    except BaseException:
        os.close(fd)
        raise


def _trusted(st: os.stat_result, sticky_ok: bool) -> bool:
    """Owned by root or this user, and nobody else may add, rename or remove entries in it."""
    if st.st_uid not in (0, os.geteuid()):
        return False
    if not st.st_mode & 0o022:
        return True
    return sticky_ok and st.st_uid == 0 and bool(st.st_mode & stat.S_ISVTX)
