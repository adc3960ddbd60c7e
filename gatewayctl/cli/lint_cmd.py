"""`lint`: the policy linter."""

from __future__ import annotations

from pathlib import Path

import click

from gatewayctl.atomicfile import atomic_write
from gatewayctl.cli import colour
from gatewayctl.cli.common import Context, at_option, gateway_option, resolve_at, targets
from gatewayctl.lint.docs import rules_reference
from gatewayctl.lint.engine import merge, run_lint
from gatewayctl.lint.finding import rank
from gatewayctl.lint.formats import FORMATS, render


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="github: workflow-command annotations; gitlab: Code Quality JSON (docs/review.md).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="error", show_default=True,
              help="Exit 1 when a finding of this severity or above is not suppressed.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to a file.")
@click.option("--rules", "print_rules", is_flag=True, help="Print the rule reference (docs/rules.md) and exit.")
@at_option
@gateway_option
@click.pass_obj
def lint(obj: Context, fmt: str, fail_on: str, output: Path | None, print_rules: bool, at_text: str | None) -> None:
    """Check the profiles against the policy rules (stable codes GW101...).

    Text prints `path:line: CODE message`. Exit 0: clean; 1: findings at or above
    --fail-on; 2: the profiles do not load.

    \b
    Examples:
      gatewayctl lint
      gatewayctl lint --format sarif -o lint.sarif
      gatewayctl lint --format gitlab -o gl-code-quality-report.json
      gatewayctl lint --format json --at 2027-01-01 --fail-on warning
    """
    if print_rules:
        click.echo(rules_reference(), nl=False)
        return
    at = resolve_at(at_text)
    result = merge({name or "": run_lint(obj.profiles, at, name) for name in targets(obj)})
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    rendered = render(result, fmt, at)
    if output:
        atomic_write(output, (rendered + "\n").encode(), 0o644)
    elif fmt == "text":
        colour.echo(obj, colour.by_severity(rendered, [f.severity for f in result.active()]))
    else:
        click.echo(rendered)
    if result.errors:
        click.echo(f"{len(result.errors)} error(s) in the profiles; fix them (gatewayctl validate) to lint the rest",
                   err=True)
        raise SystemExit(2)
    threshold = rank(fail_on)
    raise SystemExit(1 if any(rank(f.severity) >= threshold for f in result.active()) else 0)
