"""What the last apply worked from, so that the next one may redo only the partners whose files changed.

After every apply that succeeds (or finds nothing to do) the state folder keeps `apply-basis.marshal`
(0600): a stamp (this code, the profiles folder, the gateway, the UTC day), the size, times and inode
of every file of the profiles folder and of every key file the desired state was read with, and for
each partner file the partner it holds, what of it the cross-partner checks look at (its identity:
id, peers' names, keys, addresses, networks, endpoints, preshared key files, whether it has
certificate requirements) and the warnings its compile gave. apply/scoped.py decides from it whether
a change touches only some partners' files, and which; anything else (another file changed, a file
added or removed, another day, other code, applied.json or the revocations changed since) and the
next apply is a whole one, as before.

For a file whose times are within two seconds of when the process could first have read it (the
parse helper reads partner files before a whole apply takes their stats; some filesystems keep whole
seconds), the times prove nothing: the basis keeps the SHA-256 of the text that was compiled
instead, and the next apply compares the file's text with it (as git does for "racily clean"
entries). Anything else it cannot tell counts as changed. Tested in tests/test_scoped.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewayctl.atomicfile import atomic_write

if TYPE_CHECKING:
    from gatewayctl.loader.profiles import Loaded
    from gatewayctl.model import PartnerFile

FILE = "apply-basis.marshal"
VERSION = 2
# size, mtime_ns, ctime_ns, inode, mode; or ("sha256", digest) of the text the apply compiled, for a
# file whose times say nothing (changed too close to the read); None: unknown (counts as changed)
Stat = tuple[int, int, int, int, int] | tuple[str, str] | None
_PACKAGE = Path(__file__).resolve().parent.parent
RACY_MARGIN_NS = 2_000_000_000  # file times of some filesystems are whole seconds, and the clock coarse
DEPENDENCIES = ("pydantic", "pydantic_core", "jinja2", "click", "cryptography", "pyroute2", "nftables")


@dataclass(frozen=True)
class Basis:
    stamp: tuple[Any, ...]
    files: dict[str, Stat]  # every file under the profiles folder, by path relative to it
    keys: dict[str, Stat]  # key files (the gateway's private key, preshared keys), by absolute path
    partners: dict[str, tuple[str, Any, tuple[str, ...]]]  # partner file (relative) -> (id, identity, warnings)
    gateway_warnings: tuple[str, ...]
    routes: tuple[str, ...]
    applied: Stat  # applied.json as this apply left it
    revocations: Stat  # revocations.json as this apply left it
    ca_end: float | None = None  # the earliest end of any CA certificate of the estate (lint's GW701 at that instant)
    endpoints: dict[str, tuple[str, str | None]] | None = None  # peers with a host-name endpoint: key -> (text, address)

    def to_marshal(self) -> bytes:
        return marshal.dumps((VERSION, self.stamp, self.files, self.keys, self.partners, self.gateway_warnings,
                              self.routes, self.applied, self.revocations, self.ca_end, self.endpoints))


def load(state_root: Path) -> Basis | None:
    """The basis in the state folder, or None (none, unreadable, or of another version)."""
    try:
        with open(state_root / FILE, "rb") as handle:
            data = marshal.loads(handle.read())
        version, *fields = data
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if version != VERSION or len(fields) != 10 or not all(isinstance(f, dict) for f in (fields[1], fields[2], fields[3])):
        return None
    return Basis(*fields)


def save(state_root: Path, basis: Basis) -> None:
    atomic_write(state_root / FILE, basis.to_marshal(), 0o600)


def forget(state_root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_root / FILE).unlink()


def racy_threshold(first_read_ns: int) -> int:
    """Files whose times are after this say nothing about their text: `first_read_ns` (when this
    process could first have read a profile file) less two seconds, since file times come from the
    kernel's coarse clock and some filesystems keep whole seconds only."""
    return first_read_ns - RACY_MARGIN_NS


def text_digest(data: bytes) -> tuple[str, str]:
    return ("sha256", hashlib.sha256(data).hexdigest())


def same(old: Stat, new: Stat, path: Path) -> Stat | None:
    """The file's entry for the next basis when it is as `old` recorded it, else None: its stat is the
    same (and says something), or its text is the one `old` recorded the digest of."""
    if new is not None and len(new) == 5 and old == new:
        return new
    if old is not None and len(old) == 2:
        try:
            with open(path, "rb") as handle:  # stat taken before: a change from now on shows next time
                if text_digest(handle.read()) == old:
                    return new if new is not None and len(new) == 5 else old
        except OSError:
            return None
    return None


def _stat_of(st: os.stat_result, racy_after: int) -> Stat:
    if st.st_mtime_ns >= racy_after or st.st_ctime_ns >= racy_after:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def tree(root: Path, racy_after: int) -> dict[str, Stat]:
    """Every entry under `root` (links not followed), by relative path: files with their stat, folders
    and links too (a link or a folder appearing is a change)."""
    found: dict[str, Stat] = {}

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name == ".git":
                    continue  # a repository's own files (the lint scan skips them too)
                rel = prefix + entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # gone since it was listed (an editor's temporary file)
                    found[rel] = None
                    continue
                if entry.is_dir(follow_symlinks=False):
                    found[rel + "/"] = (0, 0, 0, st.st_ino, st.st_mode)
                    walk(entry.path, rel + "/")
                else:
                    found[rel] = _stat_of(st, racy_after)

    walk(str(root), "")
    return found


def key_files(paths: list[str], racy_after: int) -> dict[str, Stat]:
    result: dict[str, Stat] = {}
    for path in paths:
        try:
            result[path] = _stat_of(os.stat(path), racy_after)
        except OSError:
            result[path] = None
    return result


def file_stat(path: Path) -> Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def code_stamp() -> str:
    """This installation's code and templates, by their files' sizes and times, the Python and the
    libraries it runs with (any change: a whole apply)."""
    import importlib.util
    import sys

    from gatewayctl.render.environment import default_templates

    h = hashlib.sha256(sys.version.encode())
    for name in DEPENDENCIES:
        try:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
            st = os.stat(origin) if origin else None
        except (ImportError, ValueError, OSError):
            st = None
        h.update(f"{name}:{st.st_size if st else '-'}:{st.st_mtime_ns if st else '-'}\n".encode())
    for folder in (_PACKAGE, default_templates()):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".py", ".j2", ".jinja", ".tmpl", ".conf", ".nft", ".txt", ".service", ".yaml")):
                    st = os.stat(os.path.join(dirpath, name))
                    h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def stamp(root: Path, gateway: str, day: str) -> tuple[Any, ...]:
    return (code_stamp(), str(root.resolve()), gateway, day)


def identity(loaded: Loaded[PartnerFile]) -> tuple[Any, ...]:
    """What of a partner the checks between partners look at (ids, keys, addresses, key files, endpoints)
    and whether it has certificate requirements (its sessions and the session front are estate-wide)."""
    model = loaded.model
    peers = tuple((p.name, p.public_key, tuple(str(a) for a in p.addresses), tuple(str(n) for n in p.networks),
                   p.preshared_key_file, p.endpoint) for p in model.peers)
    return (model.id, peers, model.certificates is not None)


def relative(root: Path, path: str | Path) -> str:
    text = str(path)
    prefix = f"{root}/"
    return text[len(prefix):] if text.startswith(prefix) else os.path.relpath(text, root)
