"""`gatewayctl`: the click group and its shared options.

Exit codes, the same for every command: 0 clean, 1 findings or changes,
2 bad input or usage, and 2 for any error a command did not expect (one line on
stderr; --debug adds the traceback).
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from gatewayctl import __version__

# Each command's module is imported when the command runs (or when help lists it): a command pays
# only for the libraries it uses, which is most of a short command's time.
COMMANDS = {
    "validate": ("build_cmd", "validate"), "build": ("build_cmd", "build"), "schema": ("schema_cmd", "schema"),
    "plan": ("host_cmds", "plan"), "apply": ("apply_cmd", "apply"), "confirm": ("host_cmds", "confirm"),
    "drift": ("host_cmds", "drift"), "_confirm-watch": ("host_cmds", "confirm_watch"), "lab": ("lab_cmd", "lab"),
    "lint": ("lint_cmd", "lint"), "test": ("policy_cmds", "test_cmd"), "query": ("policy_cmds", "query"),
    "diff": ("diff_cmd", "diff"), "cert": ("cert_cmd", "cert"), "auth": ("auth_cmd", "auth"),
    "report": ("report_cmd", "report"), "revoke": ("revoke_cmd", "revoke"),
    "restore": ("restore_cmd", "restore"),
}


# Commands that load the estate from --profiles: their partner files are parsed on the second core
# while the command's module is imported (gatewayctl/loader/prefetch.py).
LOADS_ESTATE = {"validate", "build", "plan", "apply", "drift", "lint", "test", "query", "report"}
# Batch commands: they read their input, write their output and end, within seconds, without threads
# of their own left running. They run without the cyclic garbage collector: they build hundreds of
# thousands of objects that live to the end, and full collections walking them again and again were
# a tenth of a build at 1,000 partners and 40% at 5,000. Reference counting still frees everything
# that is not in a cycle; the few cycles (schema and template compilation) go at exit. And they end
# with os._exit once their output is flushed: tearing down every object one by one at exit is work
# nobody waits for. apply and revoke are batch commands too: what they start lives on in processes of
# its own (wireguard-go, the confirm watcher), and every file they write is closed (the journal synced)
# before they end (a one-partner apply at 5,000 partners: 0.24 s less). confirm, auth and lab keep the
# ordinary behaviour.
BATCH = {"apply", "revoke", "validate", "build", "plan", "drift", "lint", "test", "query", "report", "diff", "schema", "cert"}
_batch_command = False
_console = False  # run as the gatewayctl program (main), not called in-process


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if ctx.meta.get("gatewayctl.invoking"):  # about to run it (not listing commands, help or completion)
            self._prepare(ctx, cmd_name)
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"gatewayctl.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        from gatewayctl.cli.common import group_options

        return group_options(command)  # the group's options after the command too (pre-commit's args:)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """The command named first in `args`; an unknown name fails with the closest command's name."""
        ctx.meta[ARGS] = args[1:]  # the command's own arguments, read by _prepare
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            from gatewayctl.suggest import did_you_mean

            ctx.fail(f"No such command {name!r}{did_you_mean(name, [c for c in COMMANDS if not c.startswith('_')])}.")
        return super().resolve_command(ctx, args)

    @staticmethod
    def _prepare(ctx: click.Context, cmd_name: str) -> None:
        """Before the command's module is imported: the collector off for a batch command, the parse
        helper started for a command that loads the estate."""
        global _batch_command
        if cmd_name in BATCH:
            gc.disable()
            _batch_command = True
        args = ctx.meta.get(ARGS, [])
        if cmd_name in LOADS_ESTATE and not {"-h", "--help"} & set(args):
            from gatewayctl.loader import prefetch

            # a guess: a wrong one costs only the helper's work (prefetch.take checks the folder)
            prefetch.start(_profiles_after(args) or _profiles_before(ctx))

    def invoke(self, ctx: click.Context) -> object:
        collecting = gc.isenabled()
        ctx.meta["gatewayctl.invoking"] = not ctx.resilient_parsing
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and ordinary exits: click prints and sets the status
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # the reader went away: click ends quietly, as any program would
            _unexpected(exc, _debugging(ctx))
        except Exception as exc:
            _unexpected(exc, _debugging(ctx))
        finally:
            ctx.meta.pop("gatewayctl.invoking", None)
            if "gatewayctl.loader.prefetch" in sys.modules:
                sys.modules["gatewayctl.loader.prefetch"].discard()
            if collecting and not _console:  # called in-process (tests, scripts): leave the collector as found
                gc.enable()


ARGS = "gatewayctl.command-args"


def _profiles_after(args: list[str]) -> Path | None:
    """The last --profiles given after the command's name, read before click parses them."""
    found = None
    for index, arg in enumerate(args):
        if arg in ("--profiles", "-p") and index + 1 < len(args):
            found = Path(args[index + 1])
        elif arg.startswith("--profiles="):
            found = Path(arg.split("=", 1)[1])
        elif arg == "--":
            break
    return found


def _profiles_before(ctx: click.Context) -> Path:
    """--profiles of the group as the Context will have it: flag or environment, else the settings file."""
    profiles: Path = ctx.params["profiles"]
    if ctx.get_parameter_source("profiles") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        return profiles
    from gatewayctl.cli import config  # imports the models: only when the settings file must be read

    try:
        return config.load(Path.cwd()).profiles or profiles
    except (config.ConfigError, OSError, UnicodeDecodeError):
        return profiles  # the group's callback reports it


EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
DEBUG_ENV = "GATEWAYCTL_DEBUG"


def _debugging(ctx: click.Context) -> bool:
    """--debug given before or after the command (or GATEWAYCTL_DEBUG, or the settings file)."""
    return bool(getattr(ctx.obj, "debug", False) or ctx.params.get("debug"))


def _unexpected(exc: Exception, debug: bool) -> NoReturn:
    """End a command that raised: one line on stderr and status 2, never 1 (which CI reads as "changes")
    and never a traceback, unless --debug (or GATEWAYCTL_DEBUG=1) asks for it."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    from gatewayctl.errors import ProfileErrors

    build = sys.modules.get("gatewayctl.build")  # loaded whenever its OutputError can have been raised
    if isinstance(exc, ProfileErrors):  # a command that did not print its own input errors
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
    else:
        text = " ".join(str(exc).split()) or "no details"
        text = text if len(text) <= 300 else text[:297] + "..."
        if build is not None and isinstance(exc, build.OutputError):
            click.echo(f"error: {text}", err=True)
        else:
            hint = "" if debug else " (--debug shows where)"
            click.echo(f"error: unexpected {type(exc).__name__}: {text}{hint}", err=True)
    raise SystemExit(EXIT_BAD_INPUT)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--version: gatewayctl's version line first (scripts read its third word), then Python, the
    nftables binding and the WireGuard backends (kernel module, wireguard-go) of this host."""
    if not value or ctx.resilient_parsing:
        return
    from gatewayctl.host.versions import version_text

    click.echo(version_text(__version__))
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--profiles", "-p", type=click.Path(path_type=Path, file_okay=False), default=Path("profiles"),
              show_default=True, envvar="GATEWAYCTL_PROFILES", help="Folder with gateway.yaml, services.yaml and partners/.")
@click.option("--gateway", "-g", "gateway", metavar="NAME", multiple=True, envvar="GATEWAYCTL_GATEWAY",
              help="In an estate of several gateways: the one(s) to act on (repeatable; also accepted after the "
                   "command). Default: every gateway, or this host's own for host commands (docs/fleet.md).")
@click.option("-v", "--verbose", count=True, help="Say more (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--debug", is_flag=True, envvar=DEBUG_ENV, help="Show the traceback of an unexpected error.")
@click.option("--color/--no-color", "color", default=None,
              help="Colour plan, diff, drift and lint output: default on a terminal unless NO_COLOR is set.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, with Python, the nftables binding and the WireGuard backends, and exit.")
@click.pass_context
def cli(ctx: click.Context, profiles: Path, gateway: tuple[str, ...], verbose: int, quiet: bool, debug: bool,
        color: bool | None) -> None:
    """Declarative partner access for a WireGuard gateway.

    Trust profiles in YAML (one per partner), a service catalogue and the gateway's
    settings go in; validated WireGuard configs, an nftables ruleset and certificate
    requirements come out.

    \b
    Examples:
      gatewayctl validate
      gatewayctl --profiles /srv/profiles build -o out/
      gatewayctl schema > profile.schema.json

    These options are accepted after the command too (gatewayctl validate --profiles DIR).
    Defaults come from gatewayctl.toml or [tool.gatewayctl] in pyproject.toml, in this folder or a
    parent; a flag wins over the environment, which wins over the file (docs/cli.md).

    Exit codes: 0 clean, 1 findings or changes, 2 bad input or usage.
    Shell completion (bash): eval "$(_GATEWAYCTL_COMPLETE=bash_source gatewayctl)"
    """
    from gatewayctl.cli.config import group_context

    ctx.obj = group_context(ctx)


def main() -> None:
    """Console entry point."""
    global _console
    _console = True
    try:
        cli.main(prog_name="gatewayctl")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit as exc:
        if _batch_command and sys.getprofile() is None:  # under cProfile the ordinary exit writes the profile
            _leave(exc.code)
        raise


def _leave(code: object) -> None:
    """End a batch command as the interpreter would (same status, same output), without its teardown."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            status = 120  # what the interpreter returns when it cannot flush its output at exit
    os._exit(status)
