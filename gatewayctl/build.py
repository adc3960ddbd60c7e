"""Write rendered artifacts: atomically, only when changed, secrets 0600, stale files removed.

The output folder can be a checkout or a shared folder where someone else planted links: a
`partners` link to /etc, or a `.gatewayctl-build.json` naming a file outside. So every folder is
opened relative to its parent's descriptor with O_NOFOLLOW (from / or the working folder down to
the output folder, and inside it), a link anywhere on the way is refused, files are replaced by
renaming a new file over them (which replaces a link, never writes through it), and only regular
files at paths a build writes are ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from gatewayctl.loader.safefs import read_fd
from gatewayctl.render.artifacts import Artifact

MANIFEST = ".gatewayctl-build.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# Every path a build writes: a top folder and a file name, or partners/<id>/<file name>.
OUTPUT_DEPTHS = {"wireguard": 2, "nftables": 2, "systemd": 2, "front": 2, "partners": 3, "ha": 3}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class OutputError(Exception):
    """The output folder cannot be written safely; the message says where and why."""


@dataclass(frozen=True)
class WriteResult:
    """What happened to one file: written, unchanged or removed."""

    path: str
    status: str
    kind: str
    size: int
    mode: int


# What each output folder holds: a stale file is removed only when its name could be one a build writes.
OUTPUT_SUFFIXES = {"wireguard": (".conf",), "nftables": (".nft",), "systemd": (".service", ".timer"),
                   "front": (".conf", ".pem"), "partners": (".conf", ".pem", ".json"), "ha": (".conf", ".sh", ".nft", ".service")}


def is_build_path(rel: str) -> bool:
    """True when `rel` is a path a build writes (and so may remove): relative, no '..', no hidden part,
    a name of the kind its folder holds."""
    parts = rel.split("/")
    return (OUTPUT_DEPTHS.get(parts[0]) == len(parts) and all(_NAME.fullmatch(part) for part in parts[1:])
            and parts[-1].endswith(OUTPUT_SUFFIXES[parts[0]]))


def write_artifacts(artifacts: list[Artifact], out: Path) -> list[WriteResult]:
    """Write `artifacts` under `out`; remove files an earlier build wrote that are no longer produced.
    Raises OutputError when a folder on the way is a link or not a folder."""
    for artifact in artifacts:
        if not is_build_path(artifact.path):  # keeps is_build_path, and so removal, in step with rendering
            raise OutputError(f"refusing to write {artifact.path!r}: not a path a build writes")
    with _Folders(out) as folders:
        results = [_write(folders, a.path, a.content.encode(), 0o600 if a.secret else 0o644, a.kind) for a in artifacts]
        produced = {a.path for a in artifacts}
        for stale in sorted(_previous(folders.root) - produced):
            if is_build_path(stale) and _remove(folders, stale):
                results.append(WriteResult(stale, "removed", "stale file of an earlier build", 0, 0))
        manifest = json.dumps({"format": "gatewayctl-build/1", "files": sorted(produced)}, indent=2) + "\n"
        _write(folders, MANIFEST, manifest.encode(), 0o644, "manifest")
    return results


class _Folders:
    """Descriptors of the output folder and of the folders below it, each opened from its parent with
    O_NOFOLLOW. The last folder's chain is kept open: artifacts come folder by folder."""

    def __init__(self, out: Path) -> None:
        self.shown = str(out)
        start = "/" if out.is_absolute() else "."
        self.root = self._descend(os.open(start, _DIR_FLAGS & ~os.O_NOFOLLOW), Path(os.path.normpath(out)).parts,
                                  start if out.is_absolute() else "", create=True)
        self._chain: list[tuple[str, int]] = []

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, fd in self._chain:
            os.close(fd)
        os.close(self.root)

    def folder(self, parts: tuple[str, ...], create: bool) -> int | None:
        """The descriptor of out/`parts` (created if missing and `create`), or None if missing."""
        keep = 0
        while keep < min(len(parts), len(self._chain)) and self._chain[keep][0] == parts[keep]:
            keep += 1
        for _, fd in self._chain[keep:]:
            os.close(fd)
        del self._chain[keep:]
        for part in parts[keep:]:
            parent = self._chain[-1][1] if self._chain else self.root
            shown = "/".join([self.shown, *(name for name, _ in self._chain), part])
            opened = _open_folder(parent, part, shown, create)
            if opened is None:
                return None
            self._chain.append((part, opened))
        return self._chain[-1][1] if self._chain else self.root

    @staticmethod
    def _descend(fd: int, parts: tuple[str, ...], shown: str, create: bool) -> int:
        for part in parts:
            if part in ("/", "."):
                continue
            shown = os.path.join(shown, part)
            try:
                child = _open_folder(fd, part, shown, create)
            finally:
                os.close(fd)
            if child is None:  # removed again between mkdir and open
                raise OutputError(f"{shown}: the folder disappeared while it was being created")
            fd = child
        return fd


def _open_folder(parent: int, name: str, shown: str, create: bool) -> int | None:
    for attempt in (1, 2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create or attempt == 2:
                return None
            with contextlib.suppress(FileExistsError):  # made meanwhile: open it (refused if it is a link)
                os.mkdir(name, 0o777, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            what = "a symbolic link" if _is_link(parent, name) else "not a folder"
            raise OutputError(f"{shown}: is {what}; the output folder, the folders above it and those inside it "
                              "must be real folders (links are never followed)") from None
    return None


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _previous(root: int) -> set[str]:
    """The files the manifest of the last build names (only ever removed if they pass is_build_path)."""
    try:
        fd = os.open(MANIFEST, _READ_FLAGS, dir_fd=root)
    except OSError:
        return set()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return set()
        data = json.loads(read_fd(fd, MAX_MANIFEST_BYTES))
        return {p for p in data.get("files", []) if isinstance(p, str)}
    except (OSError, ValueError, AttributeError):
        return set()
    finally:
        os.close(fd)


def _remove(folders: _Folders, rel: str) -> bool:
    """Remove out/`rel` if it is a regular file; True if it was removed."""
    *parents, name = rel.split("/")
    folder = folders.folder(tuple(parents), create=False)
    if folder is None:
        return False
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            return False  # a link or anything else is not ours: left alone
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def _write(folders: _Folders, rel: str, data: bytes, mode: int, kind: str) -> WriteResult:
    *parents, name = rel.split("/")
    folder = folders.folder(tuple(parents), create=True)
    assert folder is not None  # created when missing
    if _unchanged(folder, name, data, mode):
        return WriteResult(rel, "unchanged", kind, len(data), mode)
    _replace(folder, name, data, mode, f"{folders.shown}/{rel}")
    return WriteResult(rel, "written", kind, len(data), mode)


def _unchanged(folder: int, name: str, data: bytes, mode: int) -> bool:
    """True when `name` is a regular file with this mode and content (plain os calls: a build compares
    a thousand of them). A link or anything else is never "unchanged": it is replaced."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=folder)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == mode and os.read(fd, len(data) + 1) == data
    finally:
        os.close(fd)


def _replace(folder: int, name: str, data: bytes, mode: int, shown: str) -> None:
    """Write a new file beside `name` with `mode` from the start, then rename it over `name`."""
    tmp = f".{name}.{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it, or widened nothing: exactly `mode`
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.rename(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp, dir_fd=folder)
        if isinstance(exc, IsADirectoryError):
            raise OutputError(f"{shown}: is a folder; the build writes a file there") from None
        raise
