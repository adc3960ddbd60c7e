"""`validate` and `build`."""

from __future__ import annotations

from pathlib import Path

import click
import jinja2

from gatewayctl.build import write_artifacts
from gatewayctl.cli.common import Context, at_option, gateway_option, label, load_each_or_exit, resolve_at
from gatewayctl.render.artifacts import render_all
from gatewayctl.render.environment import make_environment


@click.command()
@at_option
@gateway_option
@click.pass_obj
def validate(obj: Context, at_text: str | None) -> None:
    """Check every profile file and the references between them.

    Every problem is reported as file:line: message with the bad value; all of
    them are collected before the command exits 2.

    \b
    Examples:
      gatewayctl validate
      gatewayctl --profiles ../estate validate --at 2027-01-01
    """
    for compiled in load_each_or_exit(obj, resolve_at(at_text)):
        policy = compiled.policy
        if obj.verbosity >= 0:
            grants = sum(len(p.grants) for p in policy.partners)
            click.echo(f"{label(compiled)}ok: {len(policy.partners)} partners, {len(policy.interface.peers)} peers, "
                       f"{grants} grants in force, {len(compiled.estate.services.model.services)} services")


@click.command()
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the artifacts to (created if missing).")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder of site templates that override the built-in ones by name.")
@at_option
@gateway_option
@click.pass_obj
def build(obj: Context, out: Path, templates: Path | None, at_text: str | None) -> None:
    """Compile the profiles and write every gateway artifact.

    Writes the gateway's WireGuard config, one config per partner peer, the
    nftables ruleset and each partner's certificate requirements. Only files that
    changed are written; configs are written 0600. A rebuild is byte-identical.

    \b
    Examples:
      gatewayctl build -o out/
      gatewayctl build -o out/ --at 2027-01-01 --templates site-templates/
    """
    env = make_environment(templates)
    built = []
    for compiled in load_each_or_exit(obj, resolve_at(at_text)):  # every gateway renders before any is written
        try:
            artifacts = render_all(compiled.policy, env, compiled.estate.gateway.model.ha)
        except jinja2.TemplateError as exc:
            where = f"{exc.filename}:{exc.lineno}: " if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            click.echo(f"error: template {where}{exc.message}; nothing was written", err=True)
            raise SystemExit(2) from None
        # several gateways: one folder each, named after the gateway
        built.append((out / compiled.policy.gateway if compiled.estate.several else out, artifacts))
    for folder, artifacts in built:
        for result in write_artifacts(artifacts, folder):
            if obj.verbosity >= 0:
                click.echo(f"{result.status:<9} {folder / result.path}  ({result.kind}, {result.size} bytes, "
                           f"mode {result.mode:04o})")
        if obj.verbosity >= 0:
            click.echo(f"built {len(artifacts)} artifacts in {folder}")
