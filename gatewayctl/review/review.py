"""diff: compile the profiles at two revisions (or a revision and the working tree) and compare."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gatewayctl.compile.compiler import compile_estate
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.errors import ProfileError, ProfileErrors
from gatewayctl.lint.engine import lint_checked
from gatewayctl.loader.profiles import Estate, gateway_names, gc_paused, load_estate
from gatewayctl.review.change import GATEWAY
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
        sides = ((old_root, base, Path(tmp) / "base"), (new_root, head or "working tree", Path(tmp) / "head" if head else None))
        names = [gateway_names(root) for root, _, _ in sides]
        if max(len(names[0]), len(names[1])) <= 1:  # one gateway (perhaps renamed): compared as it always was
            (old, old_estate, lint_before), (new, new_estate, lint_after) = (_side(*side, at) for side in sides)
            changes = access_diff(old, new, old_estate, new_estate)
            return Review(base, head or "working tree", tuple(changes), tuple(sorted(lint_after - lint_before)))
        changes, introduced = [], set()
        for name in dict.fromkeys(names[0] + names[1]):  # every gateway of either side, in gateway.yaml's order
            found = [_side(*side, at, name) if name in known else None for side, known in zip(sides, names, strict=True)]
            changed, lint = _gateway_changes(name, found[0], found[1])
            changes += changed
            introduced |= {f"{e} (gateway {name})" for e in lint}
    return Review(base, head or "working tree", tuple(sorted(changes)), tuple(sorted(introduced)))


Side = tuple[CompiledPolicy, Estate, set[str]]


def _gateway_changes(name: str, old: Side | None, new: Side | None) -> tuple[list[Change], set[str]]:
    """The changes of one gateway of several, each marked with it, and the lint errors it gains; a
    gateway on one side only is one change (its access is all new, or all gone)."""
    if old is None or new is None:
        side = new or old
        assert side is not None
        grants = sum(len(p.grants) for p in side[0].partners)
        what = f"{len(side[0].partners)} partner(s), {grants} grant(s) in force"
        if old is None:
            return [Change(GATEWAY, "gateway-added", name, what, "a new gateway: every access it gives is new",
                           name)], set(new[2]) if new else set()
        return [Change(GATEWAY, "gateway-removed", name, what, "", name)], set()
    changes = [dataclasses.replace(c, gateway=name) for c in access_diff(old[0], new[0], old[1], new[1])]
    return changes, new[2] - old[2]


def _scratch() -> str | None:
    """Where the two revisions are extracted: memory (/dev/shm) when there is one and TMPDIR does not
    say otherwise; thousands of small files created and deleted on a disk file system cost journal
    writes (and discards) that took a third of a diff at 1,000 partners on a busy disk."""
    if os.environ.get("TMPDIR") or not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK | os.X_OK):
        return None
    return "/dev/shm"


def _side(root: Path, label: str, checkout: Path | None, at: dt.datetime, gateway: str | None = None) -> Side:
    """Load once (as `gateway` sees it, in an estate of several); compile and lint from the same load:
    (policy, validated estate, lint errors). Errors name the revision and the path inside the
    repository (REV:profiles/...)."""
    with gc_paused():
        try:
            partial = load_estate(root, gateway)
        except ProfileErrors as exc:
            raise ProfileErrors([ProfileError(f"{label}: {e.path}", e.line, e.message) for e in exc.errors]) from None
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
