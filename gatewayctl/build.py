"""Write rendered artifacts: atomically, only when changed, secrets 0600, stale files removed."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gatewayctl.render.artifacts import Artifact

MANIFEST = ".gatewayctl-build.json"


@dataclass(frozen=True)
class WriteResult:
    """What happened to one file: written, unchanged or removed."""

    path: str
    status: str
    kind: str
    size: int
    mode: int


def write_artifacts(artifacts: list[Artifact], out: Path) -> list[WriteResult]:
    """Write `artifacts` under `out`; remove files an earlier build wrote that are no longer produced."""
    out.mkdir(parents=True, exist_ok=True)
    results = [_write(out, a.path, a.content.encode(), 0o600 if a.secret else 0o644, a.kind) for a in artifacts]
    produced = {a.path for a in artifacts}
    for stale in sorted(_previous(out) - produced):
        target = _inside(out, stale)
        if target.is_file():
            target.unlink()
            results.append(WriteResult(stale, "removed", "stale file of an earlier build", 0, 0))
    manifest = json.dumps({"format": "gatewayctl-build/1", "files": sorted(produced)}, indent=2) + "\n"
    _write(out, MANIFEST, manifest.encode(), 0o644, "manifest")
    return results


def _previous(out: Path) -> set[str]:
    try:
        data = json.loads((out / MANIFEST).read_text())
        return {str(p) for p in data.get("files", [])}
    except (OSError, ValueError, AttributeError):
        return set()


def _inside(out: Path, rel: str) -> Path:
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or "" in parts:
        raise ValueError(f"refusing to touch {rel!r}: outside the output folder")
    return out / rel


def _write(out: Path, rel: str, data: bytes, mode: int, kind: str) -> WriteResult:
    target = _inside(out, rel)
    try:  # unchanged files are left alone (plain os calls: a build compares a thousand of them)
        with open(target, "rb") as handle:
            same = os.fstat(handle.fileno()).st_mode & 0o777 == mode and handle.read(len(data) + 1) == data
        if same:
            return WriteResult(rel, "unchanged", kind, len(data), mode)
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data, mode)
    return WriteResult(rel, "written", kind, len(data), mode)


def atomic_write(target: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode` from the start, then rename over `target`.

    Readers see the old file or the new one, never a part. No fsync: build outputs can be
    regenerated, and syncing thousands of files would dominate the build time."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
