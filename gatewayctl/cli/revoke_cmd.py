"""`revoke`: the emergency stop for a partner's access, and `revoke --lift`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from gatewayctl.apply import revocations
from gatewayctl.apply.revoke import revoke as revoke_access
from gatewayctl.cli.common import Context
from gatewayctl.cli.hostopts import fail, host_options, open_host
from gatewayctl.host.errors import HostError
from gatewayctl.model.patterns import TEXT_PATTERN
from gatewayctl.state import StateDir


@click.command()
@host_options
@click.argument("partner")
@click.option("--grant", "service", metavar="SERVICE", help="Revoke only this service's grant(s) of the partner.")
@click.option("--reason", help="Why (journaled; required to revoke).")
@click.option("--lift", is_flag=True, help="Lift the partner's revocation (of --grant SERVICE only, if given).")
@click.pass_obj
def revoke(obj: Context, netns: str | None, state_dir: Path | None, partner: str, service: str | None,
           reason: str | None, lift: bool) -> None:
    """Close a partner's access on this gateway now, and keep it closed.

    Removes the partner's grant elements from the live firewall and ends its open connections
    at once, without a pull request. The revocation is journaled (who, when, why) and stays in
    force: plan shows it, apply never reopens it, drift and report list it, until the profiles
    no longer grant that access or `revoke --lift` is run (then `apply` reopens it).
    Exit 0: done; 2: bad input, nothing to revoke, or lock held.

    \b
    Examples:
      gatewayctl revoke acme --reason "INC-1234: leaked credentials"
      gatewayctl revoke acme --grant crm-api --reason "CHG-77 ended early" --netns gw
      gatewayctl revoke --lift acme --grant crm-api
    """
    host, state = open_host(netns, state_dir)
    try:
        with state.lock(wait_s=5.0):
            if lift:
                _lift(state, partner, service)
                return
            if not reason or not re.match(TEXT_PATTERN, reason):
                fail("--reason is required: say why the access is revoked (one line of text, no control characters)")
            result = revoke_access(host, state, partner, service, (reason or "").strip()[:500], fork=True)
    except HostError as exc:
        fail(str(exc))
    if result.flows_error:
        click.echo(f"warning: could not end the partner's open connections: {result.flows_error} (the firewall "
                   "already drops their packets; run `gatewayctl apply` or `gatewayctl drift` to see them)", err=True)
    lift_hint = f"gatewayctl revoke --lift {partner}" + (f" --grant {service}" if service else "")
    click.echo(f"revoked {result.revocation.label}: {result.elements} firewall element(s) removed, "
               f"{result.flows} open connection(s) closed")
    click.echo(f"it stays closed until the profiles no longer grant it or `{lift_hint}` is run")


def _lift(state: StateDir, partner: str, service: str | None) -> None:
    kept, lifted = revocations.lift(revocations.load(state), partner, service)
    if not lifted:
        fail(f"no revocation of {partner}" + (f"/{service}" if service else "") + " is in force here")
    revocations.save(state, kept)
    for r in lifted:
        state.journal({"event": "revocation-lifted", "partner": r.partner, "service": r.service})
    click.echo(f"lifted: {', '.join(r.label for r in lifted)}; run `gatewayctl apply` to reopen the access")
