"""`diff`: what access a change of the profiles adds or removes."""

from __future__ import annotations

import click

from gatewayctl.cli import colour
from gatewayctl.cli.common import Context, at_option, resolve_at
from gatewayctl.errors import ProfileErrors
from gatewayctl.review.formats import render
from gatewayctl.review.review import review


@click.command()
@click.option("--base", required=True, metavar="REV", help="The git revision to compare against (e.g. origin/main).")
@click.option("--head", metavar="REV", help="The revision to compare; default: the working tree.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@at_option
@click.pass_obj
def diff(obj: Context, base: str, head: str | None, fmt: str, at_text: str | None) -> None:
    """Show which partner gains or loses which access between two revisions.

    Both revisions are read straight from git (the working tree is not touched) and
    compiled; the comparison is on meaning (partner, destination, protocol, ports), so moving
    or reformatting a grant shows nothing. Changes a security reviewer must see are marked.
    Exit 0: no access change; 1: access changed; 2: error.

    \b
    Examples:
      gatewayctl diff --base origin/main
      gatewayctl diff --base v12 --head v13 --format markdown > comment.md
      gatewayctl diff --base HEAD~1 --format json
    """
    try:
        result = review(obj.profiles, base, head, resolve_at(at_text))
    except ProfileErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    rendered = render(result, fmt)
    colour.echo(obj, colour.by_line(rendered, colour.review_role) if fmt == "text" else rendered)
    raise SystemExit(1 if result.changes or result.lint_introduced else 0)
