"""`restore`: bring the gateway back after a reboot or a crash from the state folder, closed first."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click
import jinja2

from gatewayctl.apply.restore import Record, RestoreError, StateError, guard_nets, load_guard, load_record
from gatewayctl.apply.restore import restore as restore_host
from gatewayctl.cli.common import Context
from gatewayctl.cli.hostopts import fail, host_options, open_host
from gatewayctl.host.errors import HostError
from gatewayctl.host.real import RealHost
from gatewayctl.plan.secrets import Secrets
from gatewayctl.render.environment import make_environment
from gatewayctl.state import StateDir

EXIT_FAILED_GUARDED = 1
EXIT_BAD_STATE = 2
EXIT_FAILED_UNGUARDED = 4
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@click.command()
@host_options
@click.option("--guard-only", is_flag=True, help="Only load the guard table that drops all partner traffic (the boot unit "
                                                  "runs this before the network comes up).")
@click.option("--interface", metavar="NAME", help="The WireGuard interface to guard when the state folder cannot be read "
                                                   "(the built units pass it).")
@click.option("--table", metavar="NAME", help="gatewayctl's table name, for the guard when the state folder cannot be read.")
@click.option("--at", type=click.DateTime(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"]), metavar="INSTANT",
              help="Restore as of a later instant (UTC, not earlier than now): every timer is shorter, never longer.")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Site templates that override the built-in ones (the guard table's).")
@click.pass_obj
def restore(obj: Context, netns: str | None, state_dir: Path | None, guard_only: bool, interface: str | None,
            table: str | None, at: dt.datetime | None, templates: Path | None) -> None:
    """Bring this gateway back from its state folder after a reboot or a crash.

    Loads the guard table (every partner packet dropped), then creates the interface (and
    its wireguard-go where the kernel has no WireGuard module) with its key, peers,
    addresses and routes as last applied, then gatewayctl's table with every timer
    recomputed from its grant's absolute end (an ended grant stays closed, revocations
    stay), reads the host back, and lifts the guard only when it matches. Any failure
    leaves the guard in force. A host that matches already is not touched. Nothing is
    compiled: the profiles are not read. Exit 0: restored, or nothing to do; 1: failed,
    partner traffic blocked by the guard; 2: the state folder cannot be restored from,
    usage, lock held; 4: failed and the guard could not be loaded either.

    \b
    Examples:
      gatewayctl restore
      gatewayctl restore --guard-only --interface wg0 --table gatewayctl
      gatewayctl restore --netns gw --state-dir /var/lib/gatewayctl/netns/gw
    """
    for value, pattern, what in ((interface, _IFNAME, "an interface name"), (table, _TABLE, "a table name")):
        if value is not None and not pattern.fullmatch(value):
            fail(f"--{'interface' if pattern is _IFNAME else 'table'} must be {what} (letters, digits, _ . -); "
                 f"it is {value[:40]!r}")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if at is not None:
        when = at.replace(tzinfo=dt.UTC)
        if when < now:
            fail(f"--at {when:%Y-%m-%dT%H:%M:%SZ} is earlier than now: access would be kept open longer than applied")
        now = when
    host, state = open_host(netns, state_dir)
    env = make_environment(templates)
    try:
        with state.lock(wait_s=10.0):
            record = _record_or_guard(host, state, env, interface, table, guard_only)
            if record is None:
                return
            if guard_only:
                name = load_guard(host, env, record.spec.table_name, record.spec.ifname, guard_nets(record.spec))
                click.echo(f"guard table inet {name} loaded: partner traffic is blocked until restore or apply lifts it")
                return
            _restore(host, state, env, record, now)
    except HostError as exc:
        fail(str(exc))


def _record_or_guard(host: RealHost, state: StateDir, env: jinja2.Environment, interface: str | None,
                     table: str | None, guard_only: bool) -> Record | None:
    """The last applied state; when there is none, or it cannot be read, guard by --interface (when given)
    and return None (nothing applied) or exit (unreadable)."""
    try:
        record = load_record(state)
    except StateError as exc:
        guard = _fallback_guard(host, env, interface, table)
        if guard_only and guard:  # the boot order goes on: restore itself will fail, the guard holding
            click.echo(f"warning: {exc}; guard table inet {guard} loaded for interface {interface} only", err=True)
            return None
        _journal_failure(state, str(exc), guard)
        held = (f"; partner traffic is blocked by the guard table inet {guard}" if guard else
                "; no guard loaded by this command (the guard unit passes --interface and --table)")
        fail(f"cannot restore: {exc}{held}", EXIT_BAD_STATE)
    if record is None:
        guard = _fallback_guard(host, env, interface, table)
        click.echo("nothing was applied on this host (no applied.json): nothing to restore"
                   + (f"; the guard table inet {guard} blocks partner traffic until the first apply" if guard else ""))
    return record


def _fallback_guard(host: RealHost, env: jinja2.Environment, interface: str | None, table: str | None) -> str | None:
    """Guard the named interface (no addresses known) when the state folder cannot say more; None if not asked.
    A guard already loaded (by the boot unit, with the addresses it knew then) is kept as it is."""
    if interface is None:
        return None
    try:
        if host.nft_list_text(f"{table or 'gatewayctl'}_guard") is not None:
            return f"{table or 'gatewayctl'}_guard"
        return load_guard(host, env, table or "gatewayctl", interface, [])
    except HostError as exc:
        click.echo(f"error: cannot load the guard table: {exc}", err=True)
        return None


def _restore(host: RealHost, state: StateDir, env: jinja2.Environment, record: Record, now: dt.datetime) -> None:
    try:
        outcome = restore_host(host, record, env, Secrets(), now)
    except RestoreError as exc:
        _journal_failure(state, str(exc), exc.guard)
        click.echo(f"error: restore failed: {exc}", err=True)
        raise SystemExit(EXIT_FAILED_GUARDED if exc.guard else EXIT_FAILED_UNGUARDED) from None
    if not outcome.changes:
        click.echo(f"nothing to restore: the host matches the last applied state (interface {record.spec.ifname}, "
                   f"table inet {record.spec.table_name})")
        return
    state.journal({"event": "restored", "changes": len(outcome.changes), "steps": outcome.steps,
                   "revoked_kept": len(record.revoked)})
    for change in outcome.changes:
        click.echo(change)
    click.echo(f"restored {len(outcome.changes)} difference(s) from the last applied state; verified against the host; "
               "guard lifted")


def _journal_failure(state: StateDir, error: str, guard: str | None) -> None:
    state.journal({"event": "restore-failed", "error": error, "guard": guard})
