"""Profiles at a git revision, read with `git archive` into a temporary folder: the working tree and
the index are never touched."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from gatewayctl.errors import ProfileError, ProfileErrors


def _git(repo: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120)


def locate(profiles: Path) -> tuple[Path, str]:
    """(repository top level, path of the profiles folder inside it)."""
    top = _git(profiles, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise ProfileErrors([ProfileError(str(profiles), 0, "the profiles folder is not inside a git repository")])
    root = Path(top.stdout.decode().strip())
    return root, str(profiles.resolve().relative_to(root.resolve())) if profiles.resolve() != root.resolve() else "."


def export(profiles: Path, revision: str, dest: Path) -> Path:
    """Extract the profiles folder as it is at `revision` under `dest`; return the extracted folder."""
    root, rel = locate(profiles)
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if commit.returncode != 0:
        raise ProfileErrors([ProfileError(revision, 0, f"git revision {revision!r} not found in {root}")])
    sha = commit.stdout.decode().strip()
    archive = _git(root, "archive", "--format=tar", sha, "--", rel)
    if archive.returncode != 0:
        raise ProfileErrors([ProfileError(revision, 0, f"revision {revision} ({sha[:12]}) has no {rel}/: "
                                          f"{archive.stderr.decode().strip()}")])
    _extract(archive.stdout, dest)
    return dest / rel


def _extract(data: bytes, dest: Path) -> None:
    """Regular files and folders only, inside `dest` (links and odd paths in a profile repository are skipped)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts:
                continue
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = tar.extractfile(member)
                if source is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read())
