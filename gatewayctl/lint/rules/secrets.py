"""Secrets: private key material anywhere under the profiles folder."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from gatewayctl.errors import display_path
from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule
from gatewayctl.loader.safefs import UnsafeFile, open_regular

PEM_PRIVATE = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----")
WG_ASSIGNMENT = re.compile(rb"(?i)(private[_ -]?key|preshared[_ -]?key)\s*[:=]\s*['\"]?([A-Za-z0-9+/]{43}=)")
WG_BARE = re.compile(rb"^\s*([A-Za-z0-9+/]{43}=)\s*$")
MAX_SCAN = 8 * 1024 * 1024


def scan_files(root: Path, read: Mapping[str, str] | None = None,
               only: Iterable[Path] | None = None) -> Iterator[tuple[Path, bytes]]:
    """Each regular file under `root` (outside .git folders), in path order, with its first MAX_SCAN bytes.

    Links are skipped, never followed: what a link points at is not stored with the profiles, and
    following one read /etc/shadow or a huge file outside. FIFOs and devices are skipped unopened,
    and only MAX_SCAN bytes of a file are ever read (a huge sparse file cannot exhaust memory).
    `read`: the text of files the loader has read already (by path), scanned as they were read
    rather than read again (at 5,000 partner files, reading them again was most of apply's lint).
    `only`: these files alone (a partner-scoped apply, whose other files are as the last apply scanned them)."""
    for path in sorted(_regular_below(root) if only is None else only, key=str):  # findings are sorted in the end: any fixed order will do
        text = read.get(os.path.normpath(path)) if read else None
        if text is not None:
            yield path, text.encode()[:MAX_SCAN]
            continue
        try:
            fd = open_regular(path, root)  # again without links: a component may have been swapped since
        except UnsafeFile:
            continue
        try:
            data = os.read(fd, MAX_SCAN)
        finally:
            os.close(fd)
        yield path, data


def _regular_below(root: Path) -> Iterator[Path]:
    """The paths under `root` that lstat calls regular files; folders named .git and links are not entered."""
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != ".git":
                    yield from _regular_below(root / entry.name)
            elif entry.name != ".git" and entry.is_file(follow_symlinks=False):
                yield root / entry.name


def _line(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _is_key(text: bytes) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class PemPrivateKey(Rule):
    """What it does: scans every file under the profiles folder for PEM private keys.

    Why it matters: the profiles live in git, usually readable by many; a private key there is
    compromised the moment it is pushed, and stays in history.

    Example: `ca/partner.pem` holding the CA's key next to its certificate.

    Fix: remove the key, purge it from git history, and have the key replaced (it is compromised)."""

    code, name, severity = "GW801", "pem-private-key", "error"
    summary = "A PEM private key is stored with the profiles."
    hint = "remove it, purge it from git history, and replace the key: it is compromised"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(scan(ctx.estate.root, (self,)))

    def found(self, path: Path, data: bytes) -> Iterator[Finding]:
        """Findings in one file's bytes."""
        for match in PEM_PRIVATE.finditer(data):
            kind = match.group(1).decode().strip()
            label = f"{kind} private key" if kind else "private key"
            yield Finding(display_path(path), _line(data, match.start()), self.code, self.name, self.severity,
                          f"{label} in {path.name}", self.hint, ("file", str(path)))


class WireguardPrivateKey(Rule):
    """What it does: scans every file under the profiles folder for WireGuard private or preshared
    keys: `PrivateKey = ...`, `private_key: ...`, `PresharedKey = ...`, or a file holding just one
    key as `wg genkey` writes it.

    Why it matters: as for any private key, git is the wrong place; profiles hold public keys only,
    and key files live on the gateway (`private_key_file`).

    Example: a partner config with its PrivateKey filled in, committed beside the profiles.

    Fix: remove it, purge it from history, and have the peer generate a new key."""

    code, name, severity = "GW802", "wireguard-private-key", "error"
    summary = "A WireGuard private or preshared key is stored with the profiles."
    hint = "remove it, purge it from git history, and generate a new key"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(scan(ctx.estate.root, (self,)))

    def found(self, path: Path, data: bytes) -> Iterator[Finding]:
        """Findings in one file's bytes."""
        hits = [(m.start(), m.group(1).decode()) for m in WG_ASSIGNMENT.finditer(data) if _is_key(m.group(2))]
        bare = WG_BARE.match(data) if path.suffix != ".pub" else None
        if bare and _is_key(bare.group(1)) and not hits:
            hits.append((0, "a bare key"))
        for offset, what in hits:
            yield Finding(display_path(path), _line(data, offset), self.code, self.name, self.severity,
                          f"WireGuard key material ({what}) in {path.name}", self.hint, ("file", str(path)))


RULES = [PemPrivateKey, WireguardPrivateKey]


def scan(root: Path, rules: tuple[PemPrivateKey | WireguardPrivateKey, ...] = (PemPrivateKey(), WireguardPrivateKey()),
         read: Mapping[str, str] | None = None, only: Iterable[Path] | None = None) -> list[Finding]:
    """The findings of the secret rules in the files under `root` (or in `only`), every file read once
    for all of them (not at all when `read` holds its text); needs nothing else, so it runs on broken
    profiles too."""
    return [finding for path, data in scan_files(root, read, only) for rule in rules for finding in rule.found(path, data)]
