"""`schema`: the JSON Schema of the profile files, for editors and CI."""

from __future__ import annotations

import json

import click

from gatewayctl.docgen import profile_reference
from gatewayctl.schema import json_schema


@click.command()
@click.option("--kind", type=click.Choice(["all", "gateway", "services", "partner"]), default="all", show_default=True,
              help="Schema of one kind of file, or of all three (any profile file validates against it).")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json", show_default=True,
              help="JSON Schema, or the Markdown profile reference (docs/profile-reference.md).")
def schema(kind: str, fmt: str) -> None:
    """Print the JSON Schema of the profile files, or the profile reference.

    \b
    Examples:
      gatewayctl schema > profile.schema.json
      gatewayctl schema --kind partner > partner.schema.json
      gatewayctl schema --format markdown > docs/profile-reference.md
    """
    if fmt == "markdown":
        click.echo(profile_reference(), nl=False)
        return
    click.echo(json.dumps(json_schema(kind), indent=2, sort_keys=True))
