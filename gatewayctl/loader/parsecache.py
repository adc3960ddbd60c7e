"""What an unchanged YAML file parses to, kept between runs.

Parsing is most of loading a large estate (5,000 partner files: about 0.8 s of CPU), and a change
touches one file. So the plain data each file's text parses to is kept, keyed by the sha256 of the
text and of this parser (yaml12.py, the PyYAML, libyaml, Python and marshal versions): the same text
gives the same data, and the cached data goes through the same validation as freshly parsed data. Errors are never
kept (a file that does not parse is parsed, and reported, every time). Measured at 5,000 files: the
reading path with every file cached 0.13 s against 0.81 s (one process).

The cache is one file, `parsed.marshal` (0600), in the private folder gatewayctl/parse of
gatewayctl/cachedir.py, which is used only where nobody else could have written it. It is read once
per process and written (atomically, by rename) only when a run parsed something it did not hold; it
keeps the entries of that run first, then older ones up to MAX_ENTRIES. A cache that cannot be read
or written costs time, never correctness: a damaged or foreign file is ignored.
GATEWAYCTL_PARSE_CACHE=off turns it off. Tested in tests/test_parse_cache.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gatewayctl.cachedir import private_folder, read_entry, write_entry

ENV = "GATEWAYCTL_PARSE_CACHE"
FILE = "parsed.marshal"
MAX_ENTRIES = 50_000
MAX_BYTES = 256 << 20
MISS = object()


class _Cache:
    def __init__(self, fd: int, version: bytes, entries: dict[bytes, bytes]) -> None:
        self.fd = fd
        self.version = version
        self.entries = entries
        self.used: set[bytes] = set()
        self.new: dict[bytes, bytes] = {}

    def key(self, text: str) -> bytes:
        return hashlib.sha256(self.version + text.encode("utf-8", "surrogatepass")).digest()


_cache: _Cache | None = None
_loaded = False
_bypass = False  # bypassed(): no cache meanwhile


def _version() -> bytes:
    """This parser: yaml12.py, PyYAML and libyaml (a new libyaml may read a text otherwise), Python, marshal."""
    import yaml
    from yaml import _yaml

    parser = Path(__file__).with_name("yaml12.py").read_bytes()
    libraries = f"{yaml.__version__} {_yaml.get_version_string()} {sys.version} {marshal.version}".encode()
    return hashlib.sha256(parser + libraries).digest()


def _open() -> _Cache | None:
    global _cache, _loaded
    if _loaded:
        return _cache
    _loaded = True
    if os.environ.get(ENV, "").lower() in ("off", "0", "no"):
        return None
    fd = private_folder("parse")
    if fd is None:
        return None
    version = _version()
    _cache = _Cache(fd, version, _read(fd, version))
    return _cache


def _read(fd: int, version: bytes) -> dict[bytes, bytes]:
    """The entries of the cache file; empty when there is none, or it is not this user's private
    regular file, or it is not one this parser wrote."""
    raw = read_entry(fd, FILE, MAX_BYTES)
    if raw is None:
        return {}
    try:
        stored = marshal.loads(raw)
    except (EOFError, ValueError, TypeError):
        return {}
    if not (isinstance(stored, tuple) and len(stored) == 2 and stored[0] == version and isinstance(stored[1], dict)):
        return {}
    entries = stored[1]
    if not all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in entries.items()):
        return {}
    return entries


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Neither read nor write the cache meanwhile: for a load of a few files (a partner-scoped apply),
    reading the whole cache costs more than parsing them."""
    global _bypass
    _bypass, before = True, _bypass
    try:
        yield
    finally:
        _bypass = before


def lookup(text: str) -> Any:
    """The data `text` parsed to when it was last parsed, or MISS."""
    if _bypass:
        return MISS
    cache = _open()
    if cache is None:
        return MISS
    key = cache.key(text)
    stored = cache.entries.get(key)
    if stored is None:
        return MISS
    try:
        data = marshal.loads(stored)
    except (EOFError, ValueError, TypeError):
        return MISS
    cache.used.add(key)
    return data


def remember(text: str, data: Any) -> None:
    """Keep what `text` parsed to (here, or in the loader's helper process), to be saved by save()."""
    if _bypass:
        return
    cache = _open()
    if cache is None:
        return
    key = cache.key(text)
    if key in cache.entries:
        cache.used.add(key)
        return
    with contextlib.suppress(ValueError):  # not plain data: not kept
        cache.new[key] = marshal.dumps(data)


def save() -> None:
    """Write the cache when this run parsed something it did not hold."""
    if _bypass:
        return
    cache = _cache
    if cache is None or not cache.new:
        return
    kept = {**cache.new, **{k: cache.entries[k] for k in cache.used if k in cache.entries}}
    for key, value in cache.entries.items():
        if len(kept) >= MAX_ENTRIES:
            break
        kept.setdefault(key, value)
    data = marshal.dumps((cache.version, kept))
    cache.entries, cache.new = kept, {}
    if len(data) > MAX_BYTES:
        return
    write_entry(cache.fd, FILE, lambda handle: handle.write(data))


def reset() -> None:
    """Forget the cache read by this process (tests; and a forked helper that must read its own)."""
    global _cache, _loaded
    if _cache is not None:
        with contextlib.suppress(OSError):
            os.close(_cache.fd)
    _cache, _loaded = None, False
