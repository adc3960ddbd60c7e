"""Saved plans on the command line: `plan -o FILE` writes one, `apply FILE` checks it against a fresh plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatewayctl import __version__
from gatewayctl.apply.engine import Prepared
from gatewayctl.cli.common import Context
from gatewayctl.errors import ProfileErrors
from gatewayctl.plan.specdigest import digest
from gatewayctl.state import StateDir, profile_revision

if TYPE_CHECKING:  # saved plans (a pydantic model) are imported only by the commands that use one
    from gatewayctl.plan.savedfile import SavedPlan


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def revision_or_exit(profiles: Path) -> dict[str, Any]:
    """The profiles' git revision for the journal and the plan's pins; exit 2 before anything is
    planned when the profiles folder holds a git repository (gatewayctl/gitsafe.py)."""
    try:
        return profile_revision(profiles)
    except ProfileErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


def saved_plan_of(obj: Context, prep: Prepared, revision: dict[str, Any]) -> SavedPlan:
    """The saved plan of `prep`, pinned to the desired state, the host and the profiles it was made from."""
    from gatewayctl.plan import saved

    pins = saved.make_pins(digest(prep.desired), prep.live, revision, saved.profiles_digest(obj.profiles))
    return saved.build(prep.plan, prep.desired, prep.live, prep.labels, prep.now, pins, prep.policy.gateway, __version__)


def save_or_exit(obj: Context, prep: Prepared, path: Path) -> None:
    """Write the plan file (0600); a blocked plan is not saved (apply would refuse it): exit 2."""
    if prep.plan.blockers:
        _fail(f"not saving the plan to {path}: apply would refuse it (blocked: {'; '.join(prep.plan.blockers)})")
    from gatewayctl.plan import saved

    try:
        saved.write(path, saved_plan_of(obj, prep, revision_or_exit(obj.profiles)))
    except OSError as exc:
        _fail(f"cannot write the plan to {path}: {exc.strerror or exc}")
    if obj.verbosity >= 0:
        click.echo(f"saved the plan to {path}; apply exactly this plan with `gatewayctl apply {path}`", err=True)


def read_or_exit(path: Path) -> SavedPlan:
    """The saved plan in `path`; exit 2 saying what is wrong with the file."""
    from gatewayctl.plan import saved

    try:
        return saved.read(path)
    except saved.SavedPlanError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def refuse_if_stale(obj: Context, state: StateDir, path: Path, plan: SavedPlan, prep: Prepared,
                    revision: dict[str, Any]) -> None:
    """Exit 2, changing nothing, unless the plan made now from the same profiles on the same host is
    the saved one: same pins, same operations."""
    from gatewayctl.plan import saved

    reasons = saved.stale_reasons(plan, saved_plan_of(obj, prep, revision))
    if not reasons:
        return
    state.journal({"event": "refused", "saved_plan": str(path), "made_at": plan.made_at, "stale": reasons})
    _fail(f"refusing to apply the saved plan {path} (made {plan.made_at}): " + "; ".join(reasons)
          + f". Nothing was changed; make a new plan with `gatewayctl plan -o {path}`, review it, and apply that")
