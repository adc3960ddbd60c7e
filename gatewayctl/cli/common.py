"""Helpers shared by commands: loading with errors printed, option decorators."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from gatewayctl.errors import ProfileErrors
from gatewayctl.pipeline import AtOutOfRange, Compiled, compile_profiles, parse_at

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """Options of the group, passed to every command."""

    profiles: Path
    verbosity: int


def at_option(func: F) -> F:
    return click.option("--at", "at_text", metavar="DATE",
                        help="Evaluate the profiles at this date (YYYY-MM-DD, UTC) or ISO date-time; default now.")(func)


def resolve_at(text: str | None) -> dt.datetime:
    """The --at instant (see parse_at); a bad one is a usage error, status 2."""
    try:
        return parse_at(text)
    except AtOutOfRange as exc:  # one line that names the range (the text itself was well formed)
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


def load_or_exit(profiles: Path, at: dt.datetime, verbosity: int) -> Compiled:
    """Compile the profiles, or print every error as file:line: message and exit 2."""
    try:
        compiled = compile_profiles(profiles, at)
    except ProfileErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"{len(exc.errors)} error(s); nothing was built or changed", err=True)
        raise SystemExit(2) from None
    if verbosity >= 0:
        for warning in compiled.policy.warnings:
            click.echo(f"warning: {warning}", err=True)
    return compiled
