"""`schema`: the JSON Schema of the profile files, for editors and CI."""

from __future__ import annotations

import json

import click

from gatewayctl.schema import json_schema


@click.command()
@click.option("--kind", type=click.Choice(["all", "gateway", "services", "partner"]), default="all", show_default=True,
              help="Schema of one kind of file, or of all three (any profile file validates against it).")
def schema(kind: str) -> None:
    """Print the JSON Schema of the profile files.

    \b
    Examples:
      gatewayctl schema > profile.schema.json
      gatewayctl schema --kind partner > partner.schema.json
    """
    click.echo(json.dumps(json_schema(kind), indent=2, sort_keys=True))


def register(group: click.Group) -> None:
    group.add_command(schema)
