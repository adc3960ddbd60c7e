"""Helpers shared by commands: loading with errors printed, option decorators."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gatewayctl.errors import ProfileError, ProfileErrors

if TYPE_CHECKING:  # the loader and the pipeline are imported by the commands that load (not revoke, confirm)
    from gatewayctl.pipeline import Compiled

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """Options of the group, passed to every command."""

    profiles: Path
    verbosity: int
    gateways: list[str] = field(default_factory=list)  # --gateway NAME (repeatable); empty: every gateway
    debug: bool = False
    color: bool | None = None  # --color / --no-color / NO_COLOR / the settings file; None: on a terminal only
    gateways_default: bool = False  # `gateways` came from the environment or the settings file: a flag replaces them


def gateway_option(func: F) -> F:
    """--gateway NAME (repeatable), for a command: the gateway(s) of an estate of several to act on."""
    return click.option("--gateway", "-g", "gateway_names", metavar="NAME", multiple=True, expose_value=False,
                        callback=_remember_gateways, help="The gateway to act on, in an estate of several "
                        "(repeatable; default: every gateway, or this host's for host commands).")(func)


def _remember_gateways(ctx: click.Context, _: click.Parameter, value: tuple[str, ...]) -> None:
    obj = ctx.find_object(Context)
    if obj is not None and value:
        if obj.gateways_default:  # a flag wins over GATEWAYCTL_GATEWAY and the settings file
            obj.gateways, obj.gateways_default = [], False
        obj.gateways.extend(v for v in value if v not in obj.gateways)


def _set_profiles(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    obj = ctx.find_object(Context)
    if obj is not None and value is not None:
        obj.profiles = value


QUIET_FLAG = "gatewayctl.quiet-flag"  # in ctx.meta (shared by the group and its commands): -q was given


def _add_verbosity(ctx: click.Context, _: click.Parameter, value: int) -> None:
    obj = ctx.find_object(Context)
    if obj is None or not value or ctx.meta.get(QUIET_FLAG):  # -q wins over -v, wherever each is given
        return
    obj.verbosity = max(obj.verbosity, 0) + value  # a -v flag outranks the settings file's quiet


def _set_quiet(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    obj = ctx.find_object(Context)
    if obj is not None and value:
        obj.verbosity = -1
        ctx.meta[QUIET_FLAG] = True


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    obj = ctx.find_object(Context)
    if obj is not None and value:
        obj.debug = True


def _set_color(ctx: click.Context, _: click.Parameter, value: bool | None) -> None:
    obj = ctx.find_object(Context)
    if obj is not None and value is not None:
        obj.color = value


def group_options(command: click.Command) -> click.Command:
    """`command` (and each subcommand of a group) also accepts the group's options after its name:
    --profiles, -v, -q, --debug, --color/--no-color and --gateway, written into the Context over
    what the group settled (given after the command, a flag wins over one given before it). Options
    a command has already are left as they are; applying this twice changes nothing. They are hidden
    from the command's help (the group's help lists them). Returns `command`."""
    options = [
        click.Option(["--profiles", "-p"], type=click.Path(path_type=Path, file_okay=False), expose_value=False,
                     callback=_set_profiles, hidden=True),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_add_verbosity, hidden=True),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_quiet, hidden=True),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_debug, hidden=True),
        click.Option(["--color/--no-color"], default=None, expose_value=False, callback=_set_color, hidden=True),
        click.Option(["--gateway", "-g", "gateway_names"], metavar="NAME", multiple=True, expose_value=False,
                     callback=_remember_gateways, hidden=True),
    ]
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    command.params += [o for o in options if not taken & {*o.opts, *o.secondary_opts}]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            group_options(sub)
    return command


def targets(obj: Context) -> list[str | None]:
    """The gateways a read-only command covers: those asked for, else every gateway of the estate
    ([None] when gateway.yaml cannot be read: loading then reports why)."""
    from gatewayctl.loader.profiles import gateway_names

    if obj.gateways:
        return list(obj.gateways)
    return list(gateway_names(obj.profiles)) or [None]


def label(compiled: Compiled) -> str:
    """'[gw-fra-1] ' before output about one gateway of several; nothing for a one-gateway estate."""
    return f"[{compiled.estate.gateway.model.name}] " if compiled.estate.several else ""


def load_each_or_exit(obj: Context, at: dt.datetime) -> list[Compiled]:
    """Every target gateway compiled; or all their errors (each once) printed, and exit 2."""
    from gatewayctl.pipeline import compile_profiles

    done, errors = [], []
    for name in targets(obj):
        try:
            done.append(compile_profiles(obj.profiles, at, name))
        except ProfileErrors as exc:
            errors += [e for e in exc.errors if e not in errors]
    if errors:
        _print_errors(sorted(errors))
    if obj.verbosity >= 0:
        for compiled in done:
            for warning in compiled.policy.warnings:
                click.echo(f"warning: {label(compiled)}{warning}", err=True)
    return done


def at_option(func: F) -> F:
    return click.option("--at", "at_text", metavar="DATE",
                        help="Evaluate the profiles at this date (YYYY-MM-DD, UTC) or ISO date-time; default now.")(func)


def resolve_at(text: str | None) -> dt.datetime:
    """The --at instant (see parse_at); a bad one is a usage error, status 2."""
    from gatewayctl.pipeline import AtOutOfRange, parse_at

    try:
        return parse_at(text)
    except AtOutOfRange as exc:  # one line that names the range (the text itself was well formed)
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


def load_or_exit(profiles: Path, at: dt.datetime, verbosity: int, gateway: str | None = None) -> Compiled:
    """Compile the profiles (for `gateway`, in an estate of several), or print every error as
    file:line: message and exit 2."""
    from gatewayctl.pipeline import compile_profiles

    try:
        compiled = compile_profiles(profiles, at, gateway)
    except ProfileErrors as exc:
        _print_errors(exc.errors)
    if verbosity >= 0:
        for warning in compiled.policy.warnings:
            click.echo(f"warning: {warning}", err=True)
    return compiled


def _print_errors(errors: list[ProfileError]) -> None:
    for error in errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{len(errors)} error(s); nothing was built or changed", err=True)
    raise SystemExit(2)


GATEWAY_FILE = "gateway"  # in the state folder: which gateway of several this host is (written by apply)


def one_gateway(obj: Context, state_root: Path | None = None) -> str | None:
    """The one gateway a command acts on: --gateway (given once), else this host's, as the state
    folder records it, else None (the estate's only gateway; loading says so when there are several).
    Refused (exit 2), because it would make this host another gateway: a --gateway other than the
    recorded one, and a recorded gateway the estate no longer has."""
    if len(obj.gateways) > 1:
        raise click.UsageError("this command acts on one gateway: give --gateway once")
    recorded = None
    if state_root is not None and (state_root / GATEWAY_FILE).is_file():
        recorded = (state_root / GATEWAY_FILE).read_text().strip() or None
    wanted = obj.gateways[0] if obj.gateways else None
    if recorded is None or state_root is None:
        return wanted
    from gatewayctl.loader.profiles import gateway_names

    names = gateway_names(obj.profiles)
    where = state_root / GATEWAY_FILE
    if wanted is not None and wanted != recorded:
        _refuse_host(f"this host is gateway {recorded!r} ({where}); --gateway {wanted!r} would make it another gateway")
    if names and recorded not in names:
        _refuse_host(f"this host is gateway {recorded!r} ({where}), which the estate no longer has "
                     f"(it has {', '.join(names)}); acting would make it another gateway")
    return recorded if len(names) > 1 else wanted


def _refuse_host(message: str) -> None:
    click.echo(f"error: {message}: remove that file first if that is what you mean", err=True)
    raise SystemExit(2)


def remember_gateway(state_root: Path, compiled_gateway: str, several: bool) -> None:
    """Record which gateway of several this host is, once an apply of it succeeded."""
    if several:
        from gatewayctl.atomicfile import atomic_write

        atomic_write(state_root / GATEWAY_FILE, (compiled_gateway + "\n").encode(), 0o644)
