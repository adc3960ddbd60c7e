"""diff: compile the profiles at two revisions (or a revision and the working tree) and compare."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gatewayctl.compile.compiler import compile_estate
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.errors import ProfileError, ProfileErrors
from gatewayctl.lint.engine import lint_checked
from gatewayctl.loader.profiles import Estate, gc_paused, load_estate
from gatewayctl.review.compare import Change, access_diff
from gatewayctl.review.gitsource import export
from gatewayctl.validate import check_estate


@dataclass(frozen=True)
class Review:
    base: str
    head: str
    changes: tuple[Change, ...]
    lint_introduced: tuple[str, ...]

    @property
    def risky(self) -> list[Change]:
        return [c for c in self.changes if c.risk]

    @property
    def risk_count(self) -> int:
        return len(self.risky) + len(self.lint_introduced)


def review(profiles: Path, base: str, head: str | None, at: dt.datetime) -> Review:
    """Raises ProfileErrors (naming the revision) when either side does not validate."""
    with tempfile.TemporaryDirectory(prefix="gatewayctl-diff-", dir=_scratch()) as tmp:
        old_root = export(profiles, base, Path(tmp) / "base")
        new_root = export(profiles, head, Path(tmp) / "head") if head else profiles
        old, old_estate, lint_before = _side(old_root, base, Path(tmp) / "base", at)
        new, new_estate, lint_after = _side(new_root, head or "working tree", Path(tmp) / "head" if head else None, at)
    introduced = tuple(sorted(lint_after - lint_before))
    changes = access_diff(old, new, old_estate, new_estate)
    return Review(base, head or "working tree", tuple(changes), introduced)


def _scratch() -> str | None:
    """Where the two revisions are extracted: memory (/dev/shm) when there is one and TMPDIR does not
    say otherwise; thousands of small files created and deleted on a disk file system cost journal
    writes (and discards) that took a third of a diff at 1,000 partners on a busy disk."""
    if os.environ.get("TMPDIR") or not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK | os.X_OK):
        return None
    return "/dev/shm"


def _side(root: Path, label: str, checkout: Path | None, at: dt.datetime) -> tuple[CompiledPolicy, Estate, set[str]]:
    """Load once; compile and lint from the same load: (policy, validated estate, lint errors). Errors
    name the revision and the path inside the repository (REV:profiles/...)."""
    with gc_paused():
        partial = load_estate(root)
        estate, cas, errors = check_estate(partial)
    if errors or estate is None:
        raise ProfileErrors([ProfileError(f"{label}:{_relative(e.path, checkout)}" if checkout else f"{label}: {e.path}",
                                          e.line, e.message) for e in errors])
    policy = compile_estate(estate, cas, at)
    lint = lint_checked(root, estate, cas, errors, at)
    return policy, estate, {f"{f.code} {f.message}" for f in lint.active() if f.severity == "error"}


def _relative(path: str, root: Path) -> str:
    resolved = str(root.resolve())
    return path.split(resolved + "/", 1)[-1] if resolved in path else path.split(str(root) + "/", 1)[-1]
