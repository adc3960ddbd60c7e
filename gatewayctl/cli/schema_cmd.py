"""`schema`: the JSON Schemas of the profile and policy test files, for editors and CI."""

from __future__ import annotations

from pathlib import Path

import click

from gatewayctl.docgen import profile_reference
from gatewayctl.schema import KINDS, OUTPUTS, schema_text, write_schemas


@click.command()
@click.option("--kind", type=click.Choice(["all", *KINDS, *OUTPUTS]), default="all", show_default=True,
              help="Schema of one kind of file (policy-test: profiles/tests/*.yaml; plan: a saved plan, "
                   "`plan -o`), or of all profile and policy test files (any of them validates against it).")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json", show_default=True,
              help="JSON Schema, or the Markdown profile reference (docs/profile-reference.md).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write every schema into this folder (profile.schema.json and one KIND.schema.json per "
                   "kind) instead of printing one.")
def schema(kind: str, fmt: str, output_dir: Path | None) -> None:
    """Print the JSON Schema of the profile files, or the profile reference.

    \b
    Examples:
      gatewayctl schema > profile.schema.json
      gatewayctl schema --kind partner > partner.schema.json
      gatewayctl schema --kind policy-test > policy-test.schema.json
      gatewayctl schema --output-dir schemas/
      gatewayctl schema --format markdown > docs/profile-reference.md
    """
    if output_dir is not None:
        if fmt != "json" or kind != "all":
            raise click.UsageError("--output-dir writes every JSON schema; it takes neither --kind nor --format")
        for path in write_schemas(output_dir):
            click.echo(f"wrote {path}")
        return
    if fmt == "markdown":
        click.echo(profile_reference(), nl=False)
        return
    click.echo(schema_text(kind), nl=False)
