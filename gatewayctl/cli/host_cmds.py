"""`plan`, `confirm`, `drift`: the commands that read a live gateway (and confirm an apply); shared host options."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatewayctl.apply import confirm as confirming
from gatewayctl.apply import revocations, tablerecord
from gatewayctl.apply.engine import (
    Prepared,
    prepare,
)
from gatewayctl.atomicfile import atomic_write
from gatewayctl.cli import colour
from gatewayctl.cli.common import Context, load_or_exit, one_gateway
from gatewayctl.cli.hostopts import fail, host_options, open_host
from gatewayctl.cli.saved_plan import save_or_exit
from gatewayctl.compile.origin import grant_locator
from gatewayctl.forked import Forked
from gatewayctl.hanode import NodeError, NodeRole, node_name, resolve
from gatewayctl.host.errors import HostError
from gatewayctl.host.local_addresses import local_addresses
from gatewayctl.host.real import ForkedSnapshot, RealHost
from gatewayctl.loader.profiles import peek_names
from gatewayctl.pipeline import Compiled
from gatewayctl.plan.render import plan_json, plan_text
from gatewayctl.plan.secrets import Secrets
from gatewayctl.render.environment import make_environment
from gatewayctl.state import StateDir

if TYPE_CHECKING:  # drift's own modules are imported by drift alone
    from gatewayctl.compile.ir import CompiledPolicy
    from gatewayctl.drift.check import Finding
    from gatewayctl.loader.profiles import Estate
    from gatewayctl.plan.spec import GatewaySpec

def check_node(obj: Context, state: StateDir, compiled: Compiled) -> NodeRole | None:
    """On a pair: this host's node and role, said on stderr; exit 2 when the node is unknown or wrong.
    None for a gateway that is one host."""
    ha = compiled.estate.gateway.model.ha
    if ha is None:
        return None
    ctx = click.get_current_context(silent=True)
    option = ctx.meta.get("gatewayctl.node") if ctx is not None else None
    try:
        role = resolve(ha, node_name(option, state.root), local_addresses())
    except NodeError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits
    if obj.verbosity >= 0:
        click.echo(role.describe(), err=True)
    return role


def labels_from(applied: dict[str, Any] | None) -> dict[str, str]:
    """partner/peer names by public key, from the last applied state (for peers the profiles no longer name)."""
    return {k: f"{p['partner']}/{p['name']}" for k, p in (applied or {}).get("peers", {}).items()}


def prepare_or_exit(obj: Context, host: RealHost, state: StateDir, templates: Path | None,
                    at: dt.datetime | None = None, lint: bool = False,
                    labels: Callable[[], dict[str, str]] | None = None, use_record: bool = False,
                    on_spec: Callable[[CompiledPolicy, GatewaySpec, dt.datetime], None] | None = None,
                    on_compiled: Callable[[Compiled], None] | None = None,
                    ) -> tuple[Prepared, Secrets]:
    """Compile, take out what is revoked on this host, read the host and diff. `at` (never earlier
    than now) compiles for a later instant: every kernel timer is shorter than the real one.
    `labels` gives the peers' names by key from the last applied state when the caller has them
    (else applied.json, which is large, is read here). `use_record`: plan against the state
    folder's table record where the generation proves it (apply/tablerecord.py) instead of listing
    the table (apply and plan; drift always lists). `on_spec(policy, desired, now)`: called once the
    desired state is known, before the host is read (engine.prepare). `on_compiled(compiled)`: called
    with the loaded estate and its policy (apply keeps what a partner-scoped apply needs of them)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if at is not None:
        if at < now:
            fail(f"--at {at:%Y-%m-%dT%H:%M:%SZ} is earlier than now: access would be kept open longer than the profiles say")
        now = at
    names = peek_names(obj.profiles)
    known = tablerecord.load(state.root) if use_record else None
    early = ForkedSnapshot(host, *names, known) if names else None
    compiled = load_or_exit(obj.profiles, now, obj.verbosity, one_gateway(obj, state.root))
    # the estate and its compiled policy live until the command ends: kept out of the cyclic garbage
    # collector's walks from here on (at 5,000 partners those walks were 0.3 s of an apply)
    gc.freeze()
    if on_compiled is not None:
        on_compiled(compiled)
    check_node(obj, state, compiled)  # a pair's node: the same desired state on either node
    standing, ended = revocations.still_granted(revocations.load(state), compiled.policy)
    policy = revocations.restrict(compiled.policy, standing)
    secrets = Secrets()
    def collect() -> dict[str, Any] | None:
        try:
            return early.result() if early else None
        except HostError:
            return None  # read again, where the error is reported in context

    # apply's lint check reads only the loaded estate: a forked child does it while this process reads
    # the host and diffs (gatewayctl/forked.py: the same errors, or worked out here if the child fails)
    linting = Forked(lambda: _lint_errors(obj, compiled, now)) if lint else None
    try:
        prep = prepare(policy, host, make_environment(templates), secrets, now,
                       labels() if labels is not None else labels_from(state.read_json("applied.json")),
                       cache=state.root / "canonical-cache.json", early=collect, known=known,
                       on_spec=None if on_spec is None else lambda desired: on_spec(policy, desired, now))
        prep = dataclasses.replace(prep, revoked=tuple(standing), unrevoked=tuple(ended),
                                   locate=grant_locator(compiled.estate, compiled.policy),
                                   lint_errors=linting.result() if linting else ())
    except HostError as exc:
        fail(str(exc))
    finally:
        if linting:
            linting.stop()
    return prep, secrets


@click.command()
@host_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True), hidden=True)
@click.option("-o", "--output", "saved_to", type=click.Path(path_type=Path, dir_okay=False), metavar="PLAN",
              help="Also save the plan (JSON, mode 0600) for `gatewayctl apply PLAN` (docs/operations.md).")
@click.pass_obj
def plan(obj: Context, netns: str | None, state_dir: Path | None, fmt: str, templates: Path | None,
         saved_to: Path | None) -> None:
    """Show what apply would change on this host (read-only).

    Reads the live state once and diffs it against the compiled profiles. With -o, saves
    the plan, pinned to the profiles and the host, for `apply PLAN`. Exit 0: no changes;
    1: changes pending; 2: error.

    \b
    Examples:
      gatewayctl plan
      gatewayctl plan --netns gw --format json
      gatewayctl plan -o plan.json && gatewayctl apply plan.json
    """
    host, state = open_host(netns, state_dir)
    prep, _ = prepare_or_exit(obj, host, state, templates, use_record=True)
    revoked = prep.revoked
    if fmt == "json":
        click.echo(json.dumps({**plan_json(prep.plan), "revocations": [r.to_json() for r in revoked]}, indent=2))
    else:
        colour.echo(obj, plan_text(prep.plan, colour.ansi) + revoked_text(revoked))
    if saved_to is not None:
        save_or_exit(obj, prep, saved_to)  # a blocked plan is not saved: exit 2
    if prep.plan.blockers:
        raise SystemExit(2)
    raise SystemExit(0 if prep.plan.empty else 1)


# Stage ceilings are enforced by the compiler (a grant beyond its stage is not compiled, and build, plan
# and apply say so): applying such an estate only narrows access, so those findings do not stop apply.
ENFORCED_AT_COMPILE = frozenset({"GW101", "GW102", "GW103", "GW104", "GW105"})


def _lint_errors(obj: Context, compiled: Compiled, now: dt.datetime) -> tuple[str, ...]:
    """The lint errors apply refuses on, from the estate already loaded (not loaded a second time)."""
    return lint_errors_of(obj.profiles, compiled.estate, compiled.cas, now)


def lint_errors_of(profiles: Path, estate: Estate, cas: dict[str, Any], now: dt.datetime,
                   only: list[Path] | None = None) -> tuple[str, ...]:
    """The lint errors apply refuses on, of `estate` (the whole one, or a scoped apply's changed files,
    `only` the files scanned for secrets then)."""
    from gatewayctl.lint.engine import lint_checked

    found = lint_checked(profiles, estate, cas, [], now, errors_only=True, only=only).active()
    return tuple(f"{f.path}:{f.line}: {f.code} {f.message}" for f in found
                 if f.severity == "error" and f.code not in ENFORCED_AT_COMPILE)


def revoked_text(revoked: tuple[revocations.Revocation, ...]) -> str:
    lines = [f"\nrevoked on this gateway (kept closed; `gatewayctl revoke --lift` reopens): {r.label}, by {r.by} at {r.at}: "
             f"{r.reason}" for r in revoked]
    return "".join(lines)


@click.command()
@host_options
@click.pass_obj
def confirm(obj: Context, netns: str | None, state_dir: Path | None) -> None:
    """Keep the change of the last `apply --confirm-timeout`.

    \b
    Examples:
      gatewayctl confirm
      gatewayctl confirm --netns gw
    """
    _, state = open_host(netns, state_dir)
    try:
        token = confirming.confirm(state)
    except HostError as exc:
        fail(str(exc))
    if token is None:
        last = next((e for e in reversed(state.read_journal()) if e.get("event") in ("rolled-back", "confirmed")), None)
        if last and last["event"] == "rolled-back":
            fail(f"too late: the change was rolled back at {last['time']}", 1)
        click.echo("nothing to confirm")
        return
    click.echo("confirmed: the applied change stays")


@click.command("_confirm-watch", hidden=True)
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--id", "token", required=True)
def confirm_watch(state_dir: Path, token: str) -> None:
    """Internal: wait for the confirmation deadline, then roll back unless confirmed."""
    confirming.watch(StateDir(state_dir), RealHost(log_dir=state_dir), token)




@click.command()
@host_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "junit", "prometheus"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to a file.")
@click.pass_obj
def drift(obj: Context, netns: str | None, state_dir: Path | None, fmt: str, output: Path | None) -> None:
    """Tell whether the live host still is what was applied, and what the profiles say.

    Exit 0: in sync; 1: the host was changed outside gatewayctl; 3: the profiles changed
    but were not applied; 2: error. Counters, handshakes and expiry timers moving are
    not drift.

    \b
    Examples:
      gatewayctl drift
      gatewayctl drift --netns gw --format markdown
      gatewayctl drift --format prometheus -o /var/lib/node_exporter/gatewayctl.prom
    """
    host, state = open_host(netns, state_dir)
    prep, _ = prepare_or_exit(obj, host, state, None)
    from gatewayctl.auth import log
    from gatewayctl.auth.sessions import session_problems
    from gatewayctl.drift.check import check
    from gatewayctl.drift.formats import RENDERERS
    from gatewayctl.drift.formats import text as drift_text

    sessions = session_problems(prep.live.nft, prep.policy, log.read(state.root), prep.now)
    report = check(prep.desired, prep.live, state.read_json("applied.json"), prep.now, sessions,
                   _stale_flow_findings(host, prep))
    report = dataclasses.replace(report, revocations=tuple(
        f"{r.label}: revoked by {r.by} at {r.at}: {r.reason}" for r in prep.revoked))
    if output:
        atomic_write(output, (RENDERERS[fmt](report).rstrip("\n") + "\n").encode(), 0o644)
    else:
        colour.echo(obj, (drift_text(report, colour.ansi) if fmt == "text" else RENDERERS[fmt](report)).rstrip("\n"))
    raise SystemExit(report.status)


def _stale_flow_findings(host: RealHost, prep: Prepared) -> list[Finding]:
    """Tracked flows that nothing in force allows (judged against the live sets): host drift."""
    from gatewayctl.drift.check import Finding
    from gatewayctl.plan.flows import partner_of, stale_flows

    if prep.live.nft is None:
        return []
    try:
        raw = host.conntrack_list()
    except HostError as exc:
        return [Finding("host", "conntrack-unreadable", "-", "connection tracking", str(exc))]
    owners = {p.partner: [] for p in prep.desired.peers.values()}  # type: dict[str, list[str]]
    for peer in prep.desired.peers.values():
        owners[peer.partner] += sorted(peer.allowed_ips)
    flows = stale_flows(raw, prep.live.nft.sets, prep.policy.table.auth_port, prep.desired.addresses)
    return [Finding("host", "flow-not-allowed", partner_of(f, owners), f"flow {f}",
                    "an open connection that no grant in force covers (apply deletes it)") for f in flows]
