"""`report`: the compliance evidence pack for auditors, or for one partner."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from gatewayctl.atomicfile import atomic_write
from gatewayctl.cli.common import Context, gateway_option, load_or_exit, one_gateway
from gatewayctl.errors import ProfileErrors
from gatewayctl.loader.profiles import gateway_names
from gatewayctl.state import DEFAULT_STATE_DIR, profile_revision

FORMATS = ["html", "markdown", "json", "junit", "prometheus"]


@click.command()
@click.option("--partner", help="A report for this partner only: its own grants, peers, counters and requirements.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Output format; default: from the -o suffix (.html .md .json .xml .prom), else html, "
                   "or markdown when printing to a terminal.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to a file.")
@click.option("--controls", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A control mapping to use instead of the packaged one (see docs/report.md).")
@click.option("--netns", metavar="NAME", help="Read the live gateway in the network namespace NAME.")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"State folder (journal, last apply, session log); default {DEFAULT_STATE_DIR}.")
@click.option("--offline", is_flag=True, help="Do not read the live gateway (controls that need it are not evidenced).")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder of templates that replace the default ones of the same name.")
@gateway_option
@click.pass_obj
def report(obj: Context, partner: str | None, fmt: str | None, output: Path | None, controls: Path | None,
           netns: str | None, state_dir: Path | None, offline: bool, templates: Path | None) -> None:
    """Write the compliance report: controls with pass, fail or not evidenced, and the evidence.

    Brings together lint findings and exceptions, policy tests, drift, the apply journal, every
    grant with its justification, approver and expiry, live WireGuard state and firewall counters,
    and certificate requirements. Exit 0: every evidenced control passes; 1: some control fails;
    2: error.

    \b
    Examples:
      gatewayctl report -o report.html
      gatewayctl report --partner acme -o acme.html
      gatewayctl report --format junit -o controls.xml --offline
    """
    from gatewayctl.cli.hostopts import fail
    from gatewayctl.host.errors import HostError
    from gatewayctl.host.netns import enter
    from gatewayctl.lint.engine import lint_checked
    from gatewayctl.policy.assertions import evaluate as run_test
    from gatewayctl.policy.assertions import load_tests
    from gatewayctl.render.environment import make_environment
    from gatewayctl.report.checks import evaluate, load_controls
    from gatewayctl.report.collect import collect
    from gatewayctl.report.live import read_live
    from gatewayctl.report.render import render

    fmt = fmt or _format_of(output)  # before any work: a name it cannot tell is a usage error
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        mapping = load_controls(controls)
        tests = load_tests(obj.profiles)
        revision = profile_revision(obj.profiles)  # refuses a profiles folder holding a git repository
    except ProfileErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    root = state_dir or (DEFAULT_STATE_DIR / "netns" / netns if netns else DEFAULT_STATE_DIR)
    chosen = one_gateway(obj, root)  # several gateways: this host's, or the one asked for
    names = gateway_names(obj.profiles)
    every = [chosen] if chosen is not None or len(names) <= 1 else names  # none chosen: one report per gateway
    if netns and not offline:
        try:
            enter(netns)
        except HostError as exc:
            fail(str(exc))
    failed = False
    for name in every:
        compiled = load_or_exit(obj.profiles, now, -1, name)
        if partner is not None and compiled.policy.partner(partner) is None:
            if len(every) > 1:
                continue  # not a partner of this gateway
            from gatewayctl.suggest import did_you_mean

            fail(f"no partner {partner!r} in the profiles{did_you_mean(partner, (p.id for p in compiled.policy.partners))}")
        live = read_live(compiled, root, now, offline)
        services = compiled.estate.services.model.services
        outcomes = [run_test(t, compiled.policy, services) for t in tests]
        lint = lint_checked(obj.profiles, compiled.estate, compiled.cas, [], now)  # the estate loaded once
        doc = collect(compiled, lint, outcomes, live, now, revision, partner)
        evaluate(doc, mapping)
        text = render(doc, fmt, make_environment(templates))
        failed = failed or bool(doc["summary"]["controls"]["fail"])
        target = output.with_name(f"{output.stem}-{name}{output.suffix}") if output and len(every) > 1 else output
        if target:
            atomic_write(target, text.encode(), 0o644)
            counts = doc["summary"]["controls"]
            click.echo(f"wrote {target}: {counts['pass']} controls pass, {counts['fail']} fail, "
                       f"{counts['not-evidenced']} not evidenced", err=True)
        else:
            click.echo(text, nl=False)
    raise SystemExit(1 if failed else 0)

SUFFIXES = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json", ".xml": "junit", ".prom": "prometheus"}


def _format_of(output: Path | None) -> str:
    """The format -o's suffix names (a suffix it does not know is a usage error, status 2: a .txt
    holding HTML helps nobody); without -o, html, except markdown on a terminal (HTML is for
    browsers, not for reading in a terminal)."""
    if output is None:
        return "markdown" if sys.stdout.isatty() else "html"
    fmt = SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"cannot tell the report format from {str(output)[-80:]!r}: name the file "
                                 f"{', '.join(SUFFIXES)} or give --format {{{','.join(FORMATS)}}}", param_hint="-o")
    return fmt
