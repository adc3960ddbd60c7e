"""`gatewayctl`: the click group and its shared options.

Exit codes, the same for every command: 0 clean, 1 findings or changes,
2 bad input or usage.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from gatewayctl import __version__

# Each command's module is imported when the command runs (or when help lists it): a command pays
# only for the libraries it uses, which is most of a short command's time.
COMMANDS = {
    "validate": ("build_cmd", "validate"), "build": ("build_cmd", "build"), "schema": ("schema_cmd", "schema"),
    "plan": ("host_cmds", "plan"), "apply": ("host_cmds", "apply"), "confirm": ("host_cmds", "confirm"),
    "drift": ("host_cmds", "drift"), "_confirm-watch": ("host_cmds", "confirm_watch"), "lab": ("lab_cmd", "lab"),
    "lint": ("lint_cmd", "lint"), "test": ("policy_cmds", "test_cmd"), "query": ("policy_cmds", "query"),
    "diff": ("diff_cmd", "diff"), "cert": ("cert_cmd", "cert"), "auth": ("auth_cmd", "auth"),
    "report": ("report_cmd", "report"),
}


# Commands that load the estate from --profiles: their partner files are parsed on the second core
# while the command's module is imported (gatewayctl/loader/prefetch.py).
LOADS_ESTATE = {"validate", "build", "plan", "apply", "drift", "lint", "test", "query", "report"}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        profiles = ctx.params.get("profiles")
        if cmd_name in LOADS_ESTATE and profiles is not None and not ctx.resilient_parsing and not {"-h", "--help"} & set(ctx.args):
            from gatewayctl.loader import prefetch

            prefetch.start(profiles)
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"gatewayctl.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        finally:
            if "gatewayctl.loader.prefetch" in sys.modules:
                sys.modules["gatewayctl.loader.prefetch"].discard()



EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--profiles", "-p", type=click.Path(path_type=Path, file_okay=False), default=Path("profiles"),
              show_default=True, envvar="GATEWAYCTL_PROFILES", help="Folder with gateway.yaml, services.yaml and partners/.")
@click.option("-v", "--verbose", count=True, help="Say more (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.version_option(__version__, "--version", prog_name="gatewayctl")
@click.pass_context
def cli(ctx: click.Context, profiles: Path, verbose: int, quiet: bool) -> None:
    """Declarative partner access for a WireGuard gateway.

    Trust profiles in YAML (one per partner), a service catalogue and the gateway's
    settings go in; validated WireGuard configs, an nftables ruleset and certificate
    requirements come out.

    \b
    Examples:
      gatewayctl validate
      gatewayctl --profiles /srv/profiles build -o out/
      gatewayctl schema > profile.schema.json

    Exit codes: 0 clean, 1 findings or changes, 2 bad input or usage.
    Shell completion (bash): eval "$(_GATEWAYCTL_COMPLETE=bash_source gatewayctl)"
    """
    from gatewayctl.cli.common import Context

    ctx.obj = Context(profiles=profiles, verbosity=-1 if quiet else verbose)


def main() -> None:
    """Console entry point."""
    try:
        cli.main(prog_name="gatewayctl")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
