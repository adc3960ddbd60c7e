"""The options of the commands that act on a live gateway (--netns, --state-dir, --gateway, --node),
entering the namespace, and failing with a message: light, so that revoke and confirm, which load
no profiles, import neither the loader nor the planner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gatewayctl.cli.common import gateway_option
from gatewayctl.hanode import NODE_ENV, NODE_FILE
from gatewayctl.host.errors import HostError
from gatewayctl.host.netns import enter
from gatewayctl.host.real import RealHost
from gatewayctl.state import DEFAULT_STATE_DIR, StateDir

F = TypeVar("F", bound=Callable[..., Any])


def host_options(func: F) -> F:
    func = click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                        help=f"State folder (lock, journal, last applied state); default {DEFAULT_STATE_DIR}, "
                             f"or {DEFAULT_STATE_DIR}/netns/NAME with --netns.")(func)
    func = click.option("--netns", metavar="NAME", help="Act on the network namespace NAME instead of the host.")(func)
    func = gateway_option(func)
    func = click.option("--node", metavar="NAME", expose_value=False, callback=_remember_node,
                        help=f"Which node of a pair (gateway.yaml ha:) this host is; else ${NODE_ENV} or the "
                             f"state folder's file {NODE_FILE} (docs/ha.md).")(func)
    return func


def _remember_node(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    ctx.meta["gatewayctl.node"] = value  # read by prepare_or_exit: the commands' signatures stay as they are


def open_host(netns: str | None, state_dir: Path | None) -> tuple[RealHost, StateDir]:
    """Enter the namespace (the whole process moves) and return the host and its state folder."""
    try:
        if netns:
            enter(netns)
    except HostError as exc:
        fail(str(exc))
    root = state_dir or (DEFAULT_STATE_DIR / "netns" / netns if netns else DEFAULT_STATE_DIR)
    state = StateDir(root)
    state.ensure()
    return RealHost(log_dir=root), state


def fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


