"""`gatewayctl`: the click group and its shared options.

Exit codes, the same for every command: 0 clean, 1 findings or changes,
2 bad input or usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gatewayctl import __version__
from gatewayctl.cli import auth_cmd, build_cmd, cert_cmd, diff_cmd, host_cmds, lab_cmd, lint_cmd, policy_cmds, report_cmd, schema_cmd
from gatewayctl.cli.common import Context

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    ctx.obj = Context(profiles=profiles, verbosity=-1 if quiet else verbose)


build_cmd.register(cli)
schema_cmd.register(cli)
host_cmds.register(cli)
lab_cmd.register(cli)
lint_cmd.register(cli)
policy_cmds.register(cli)
diff_cmd.register(cli)
cert_cmd.register(cli)
auth_cmd.register(cli)
report_cmd.register(cli)


def main() -> None:
    """Console entry point."""
    try:
        cli.main(prog_name="gatewayctl")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
