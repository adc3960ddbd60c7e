"""Open profile input without following a link out of the profiles folder.

Profiles come from pull requests: a partner file, a CA file or a sub-folder can be committed as a
symbolic link to /etc/shadow or the gateway's private key, and a local user can put a FIFO (an open
that never returns) or a device (/dev/zero: a read that never ends) where a file is expected. So
every component below the profiles folder is opened relative to its parent's descriptor with
O_NOFOLLOW, the file itself with O_NONBLOCK (a FIFO opens at once instead of waiting for a writer),
and only what fstat calls a regular file is read, and at most `limit` bytes of it.

The profiles folder itself (the --profiles argument) may be a link: the person running the command
chose it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 4 * 1024 * 1024  # the largest profile input file read (YAML, PEM)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


class UnsafeFile(OSError):
    """A file refused before or instead of reading it; `strerror` says why, in a sentence.

    An OSError, so that code which reports `cannot read FILE: {strerror}` reports these as well."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPERM, message)


class TooLarge(UnsafeFile):
    """A regular file larger than the limit; `size` is what fstat said (or the limit + 1, if it grew)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file is {size} bytes; a profile file may be at most {limit} bytes")
        self.size = size


def read_regular(path: Path, limit: int = MAX_FILE_BYTES, root: Path | None = None) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; raises UnsafeFile (or OSError).

    With `root`, `path` must lie below it and no component between them may be a link; without,
    only `path` itself may not be one."""
    fd = open_regular(path, root)
    try:
        return _read_bounded(fd, limit)
    finally:
        os.close(fd)


def open_regular(path: Path, root: Path | None = None) -> int:
    """A read-only descriptor of `path`, which fstat says is a regular file (see read_regular)."""
    if root is None:
        parent_fd, name = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path.name
    else:
        parent_fd, name = _walk_below(root, path)
    try:
        return _open_file(parent_fd, name)
    finally:
        os.close(parent_fd)


def open_folder_below(root: Path, path: Path) -> int:
    """A descriptor of the folder `path` below `root`, no component of which may be a link."""
    parent_fd, name = _walk_below(root, path)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise _refusal(parent_fd, name, exc) from None
    finally:
        os.close(parent_fd)


def open_subfolder(parent_fd: int, name: str) -> int:
    """A descriptor of the folder `name` in the folder `parent_fd`, refused if it is a link."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise _refusal(parent_fd, name, exc) from None


def link_refusal(what: str = "") -> UnsafeFile:
    """The error for a symbolic link found where profile input is expected."""
    return _not_regular(stat.S_IFLNK, what)


def _walk_below(root: Path, path: Path) -> tuple[int, str]:
    """The descriptor of `path`'s folder, reached from `root` one component at a time, and its name."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise UnsafeFile("is outside the profiles folder") from None
    if not parts or ".." in parts:
        raise UnsafeFile("is not a file inside the profiles folder")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refusal(fd, part, exc, f"its folder {part!r}") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _open_file(parent_fd: int, name: str) -> int:
    try:
        before = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as exc:
        raise _refusal(parent_fd, name, exc) from None
    if not stat.S_ISREG(before.st_mode):  # refused before opening: opening some devices does something
        raise _not_regular(before.st_mode)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise _refusal(parent_fd, name, exc) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # swapped since the stat: what was opened decides
        os.close(fd)
        raise _not_regular(mode)
    return fd


def _refusal(parent_fd: int, name: str, exc: OSError, what: str = "") -> OSError:
    """The error to raise for a failed open: why, in words, when the cause is a link or a non-folder."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            return _not_regular(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode, what)
        except OSError:
            pass
    return exc


def _not_regular(mode: int, what: str = "") -> UnsafeFile:
    """Why a path that is not a regular file (or, for `what`, a folder on the way) is refused."""
    subject = f"{what} is" if what else "is"
    if stat.S_ISLNK(mode):
        return UnsafeFile(f"{subject} a symbolic link; profile input must be regular files and folders inside "
                          "the profiles folder (links are never followed)")
    if what and stat.S_ISREG(mode):
        return UnsafeFile(f"{subject} a file, not a folder")
    return UnsafeFile(f"{subject} {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}; profile input must be regular files")


def read_fd(fd: int, limit: int) -> bytes:
    """The rest of the open file `fd`, at most `limit` bytes; raises TooLarge beyond."""
    return _read_bounded(fd, limit)


def _read_bounded(fd: int, limit: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > limit:
        raise TooLarge(size, limit)
    chunks, total = [], 0
    want = size + 1  # one byte more than fstat says, so that a file growing meanwhile is noticed
    while chunk := os.read(fd, want):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise TooLarge(total, limit)
        want = min(1 << 16, limit + 1 - total)
    return b"".join(chunks)
