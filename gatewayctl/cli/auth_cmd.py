"""`auth serve` and `auth sessions`: smart-card sessions that open a partner's grants."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from gatewayctl.cli.common import Context, load_or_exit, one_gateway
from gatewayctl.cli.hostopts import fail, host_options, open_host


@click.group()
def auth() -> None:
    """Smart-card sessions: the authorizer behind the mTLS front, and the open sessions.

    \b
    Examples:
      gatewayctl auth serve
      gatewayctl auth sessions --format json
    """


@auth.command()
@host_options
@click.option("--socket", "socket_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The Unix socket to serve on; default: gateway.yaml's auth.socket.")
@click.option("--front-user", help="The user nginx's workers run as, the only one whose requests are taken "
              "(a user of its own: never www-data or root); default: auth.front_user.")
@click.pass_obj
def serve(obj: Context, netns: str | None, state_dir: Path | None, socket_path: Path | None, front_user: str | None) -> None:
    """Run the authorizer: check each certificate the front passes on, open the partner's grants
    for its source address for a bounded session, log every decision.

    Each decision is taken against the access in force (the state folder's applied.json, re-read
    when an apply or a revocation changes it): no restart after an apply. Requests are taken only
    from the front's user and only with the front's secret, which it writes beside the socket.

    Runs in the foreground until SIGTERM (see the gatewayctl-auth.service unit `build` writes).

    \b
    Examples:
      gatewayctl auth serve
      gatewayctl auth serve --netns gw --socket /run/gatewayctl/auth.sock
    """
    from gatewayctl.auth.current import Current
    from gatewayctl.auth.decide import Authorizer
    from gatewayctl.auth.front import ensure_secret, secret_path
    from gatewayctl.auth.inforce import AppliedFile
    from gatewayctl.auth.serve import Service
    from gatewayctl.auth.serve import serve as run
    from gatewayctl.host.errors import HostError
    from gatewayctl.pipeline import compile_profiles

    host, state = open_host(netns, state_dir)
    gateway = one_gateway(obj, state.root)  # several gateways: this host's
    compiled = load_or_exit(obj.profiles, dt.datetime.now(dt.UTC), obj.verbosity, gateway)
    settings = compiled.policy.auth
    if settings is None:
        fail("gateway.yaml has no auth section: no partner's grants wait for a session")
        return
    crl = Path(settings.crl_file) if settings.crl_file else None

    def load() -> Authorizer:
        """The profiles as they are now (after an apply that changed what is installed)."""
        return Authorizer(compile_profiles(obj.profiles, dt.datetime.now(dt.UTC), gateway), crl)

    path = socket_path or Path(settings.socket)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        secret = ensure_secret(secret_path(path))
        current = Current(Authorizer(compiled, crl), load, AppliedFile(state.root), lambda line: click.echo(line))
    except (OSError, ValueError) as exc:
        fail(str(exc))
        return
    service = Service(current, host, state, lambda line: click.echo(line), secret)
    partners = ", ".join(sorted(current.authorizer.partners)) if current.authorizer else "none"
    try:
        run(service, path, front_user or settings.front_user,
            ready=lambda: click.echo(f"auth: serving on {path} for partners {partners}; decisions in "
                                     f"{state.root / 'auth-decisions.jsonl'}; the front's secret in {secret_path(path)}"))
    except (HostError, OSError) as exc:
        fail(str(exc))


@auth.command()
@host_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def sessions(obj: Context, netns: str | None, state_dir: Path | None, fmt: str) -> None:
    """List the open sessions: partner, source, identity, certificate serial, time left.

    Exit 0: every session was opened by a logged authentication for a session partner;
    1: some session should not exist (also reported by `drift`); 2: error.

    \b
    Examples:
      gatewayctl auth sessions
      gatewayctl auth sessions --netns gw --format json
    """
    from gatewayctl.auth import log
    from gatewayctl.auth.sessions import live_sessions, problems
    from gatewayctl.host.base import read
    from gatewayctl.host.errors import HostError

    host, state = open_host(netns, state_dir)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    compiled = load_or_exit(obj.profiles, now, obj.verbosity, one_gateway(obj, state.root))
    policy = compiled.policy
    try:
        live = read(host, policy.interface.name, policy.table.name)
    except HostError as exc:
        fail(str(exc))
        return
    found = live_sessions(live.nft, policy, log.read(state.root), now)
    wrong = problems(found, policy)
    if fmt == "json":
        click.echo(json.dumps({"sessions": [s.to_json() for s in found],
                               "problems": [p.__dict__ for p in wrong]}, indent=2, sort_keys=True))
    else:
        if not found:
            click.echo("no open session")
        for s in found:
            d = s.decision or {}
            left = f"{s.expires_in // 60}m{s.expires_in % 60:02d}s left" if s.expires_in is not None else "no timeout"
            click.echo(f"{s.partner or '?'}  {s.source}  {d.get('identity') or '-'}  serial {d.get('serial') or '-'}  "
                       f"opened {d.get('time') or '?'}  {left}")
        for p in wrong:
            click.echo(f"problem: {p.kind}: {p.source} ({p.partner}): {p.detail}")
    raise SystemExit(1 if wrong else 0)
