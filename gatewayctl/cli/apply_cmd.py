"""`apply`: change the live gateway to what the profiles say, safely; refuse what must not be applied."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatewayctl.apply import basis, revocations, scoped, tablerecord
from gatewayctl.apply import confirm as confirming
from gatewayctl.apply.engine import (
    ApplyError,
    Prepared,
    added_elements,
    close_stale_flows,
    close_while_refused,
    element_grants,
    execute,
    grant_ends,
)
from gatewayctl.cli import colour
from gatewayctl.cli.common import Context, remember_gateway
from gatewayctl.cli.host_cmds import labels_from, lint_errors_of, prepare_or_exit, revoked_text
from gatewayctl.cli.hostopts import fail, host_options, open_host
from gatewayctl.cli.saved_plan import read_or_exit, refuse_if_stale, revision_or_exit
from gatewayctl.forked import Forked
from gatewayctl.host import conntrack
from gatewayctl.host.errors import HostError
from gatewayctl.host.real import ForkedSnapshot, RealHost
from gatewayctl.plan.render import plan_json, plan_text
from gatewayctl.plan.spec import spec_to_json
from gatewayctl.plan.specdigest import digest
from gatewayctl.render.environment import make_environment
from gatewayctl.state import StateDir

if TYPE_CHECKING:
    from gatewayctl.compile.ir import CompiledPolicy
    from gatewayctl.pipeline import Compiled
    from gatewayctl.plan.savedfile import SavedPlan
    from gatewayctl.plan.secrets import Secrets
    from gatewayctl.plan.spec import GatewaySpec


@click.command()
@click.argument("saved_path", metavar="[PLAN]", required=False, type=click.Path(path_type=Path, dir_okay=False))
@host_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (a saved PLAN never asks).")
@click.option("--confirm-timeout", type=click.IntRange(10, 86400), metavar="SECONDS",
              help="Roll back by itself unless `gatewayctl confirm` arrives within SECONDS.")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Site templates that override the built-in ones.")
@click.option("--at", type=click.DateTime(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"]), metavar="INSTANT",
              help="Apply as of a later instant (UTC, not earlier than now): every timer is shorter, never longer.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout at the end (format gatewayctl-apply/1: the plan, the outcome, what "
                   "else changed); errors stay on stderr.")
@click.option("--whole", is_flag=True,
              help="Plan the whole estate even when only some partners' files changed since the last apply "
                   "(which then plans those partners alone; docs/operations.md).")
@click.pass_obj
def apply(obj: Context, saved_path: Path | None, netns: str | None, state_dir: Path | None, yes: bool,
          confirm_timeout: int | None, templates: Path | None, at: dt.datetime | None, fmt: str, whole: bool) -> None:
    """Apply the profiles to this host: show the plan, ask, apply, verify.

    Replaces gatewayctl's nftables table atomically, changes WireGuard peers one by one
    (untouched peers keep their sessions), and orders the steps so access is never wider
    than the old or the new policy. On any failure the previous table and peers are
    restored. With PLAN (saved by `gatewayctl plan -o PLAN`), applies exactly that plan
    without asking, and refuses, changing nothing, if the profiles or the host changed
    since. Exit 0: applied or nothing to do; 1: failed and rolled back; 2: bad input or
    refused; 4: failed and the rollback failed too.

    \b
    Examples:
      gatewayctl apply
      gatewayctl plan -o plan.json && gatewayctl apply plan.json
      gatewayctl apply --yes --confirm-timeout 120   # then: gatewayctl confirm
      gatewayctl apply --netns gw --yes
      gatewayctl apply --yes --format json
    """
    if saved_path is not None and at is not None:
        raise click.UsageError("a saved plan is applied as of now: it takes no --at")
    saved = (saved_path, read_or_exit(saved_path)) if saved_path is not None else None
    host, state = open_host(netns, state_dir)
    when = at.replace(tzinfo=dt.UTC) if at is not None else None
    report = Report(obj, fmt)
    try:
        with state.lock():
            _apply_locked(obj, host, state, yes or saved is not None, confirm_timeout, templates, when, saved, report,
                          whole)
    except HostError as exc:
        report.end("refused")
        fail(str(exc))
    except SystemExit as exc:
        report.end({1: "failed", 4: "rollback-failed"}.get(exc.code if isinstance(exc.code, int) else 2, "refused"))
        raise


APPLY_FORMAT = "gatewayctl-apply/1"


class Report:
    """What apply says: lines on stdout (text), or one JSON object at the end (--format json) with the
    plan, the outcome (applied, nothing-to-do, refused, failed, rollback-failed) and the lines."""

    def __init__(self, obj: Context, fmt: str) -> None:
        self.obj, self.json = obj, fmt == "json"
        self.data: dict[str, Any] = {"format": APPLY_FORMAT, "outcome": None, "plan": None, "applied_changes": 0,
                                     "flows_closed": 0, "revocations_ended": [], "apply_id": None, "messages": []}
        self.ended = False

    def plan(self, prep: Prepared) -> None:
        if self.json:
            self.data["plan"] = {**plan_json(prep.plan), "revocations": [r.to_json() for r in prep.revoked]}
        else:
            colour.echo(self.obj, plan_text(prep.plan, colour.ansi) + revoked_text(prep.revoked))

    def say(self, line: str) -> None:
        if self.json:
            self.data["messages"].append(line)
        else:
            click.echo(line)

    def end(self, outcome: str) -> None:
        """Print the JSON object, once (the first outcome reached stands)."""
        if self.json and not self.ended:
            self.ended = True
            click.echo(json.dumps({**self.data, "outcome": outcome}, indent=2))


def _apply_locked(obj: Context, host: RealHost, state: StateDir, yes: bool, confirm_timeout: int | None,
                  templates: Path | None, at: dt.datetime | None, saved: tuple[Path, SavedPlan] | None,
                  report: Report, whole: bool) -> None:
    revision = revision_or_exit(obj.profiles)
    from gatewayctl.loader import prefetch

    first_read = min(prefetch.asked_ns() or time.time_ns(), time.time_ns())  # before any profile file was read
    if saved is None and not confirm_timeout and templates is None and at is None:
        scope = "--whole" if whole else "--format json" if report.json else _scope_or_reason(obj, host, state, first_read)
        if not isinstance(scope, str):
            flows: Forked[list[dict[str, Any]]] | None = None
            try:
                basis.forget(state.root)  # kept again only by an apply that succeeds
                _say_scope(obj, scope)
                # the changed partners' stale flows are deleted by a child that imports the netlink library
                # now and starts only once the new firewall is in force (_closing_stale_flows)
                flows = Forked(lambda: [flow.raw for flow in scoped.close_stale_flows(scope, host)],
                               prelude=conntrack.warm)
                _apply_prepared(obj, host, state, yes, None, None, None, report, revision, None, scope.prep,
                                scope.secrets, ScopedDocument(state.root, scope), scope, flows)
            finally:
                if flows is not None:
                    flows.stop()
                scope.document.stop()
            return
        basis.forget(state.root)  # whatever happens now: kept again only by an apply that succeeds
        keep = _WholeBasis(obj.profiles, first_read)
    else:
        basis.forget(state.root)
        keep = None
    # the last applied state is large (at 5,000 partners, 0.1 s to read): only a confirm timeout keeps
    # it (to put it back); otherwise a forked child reads the peers' names from it while the
    # estate loads. applied.json for this apply is spelt by another one from the moment the desired
    # state is known (ApplyDocument)
    previous = state.read_json("applied.json") if confirm_timeout else None
    document = ApplyDocument(templates)
    with contextlib.ExitStack() as children:
        labels: Callable[[], dict[str, str]]
        if confirm_timeout:
            labels = functools.partial(labels_from, previous)
        else:
            labels = children.enter_context(Forked(lambda: labels_from(state.read_json("applied.json")))).result
        children.callback(document.stop)
        prep, secrets = prepare_or_exit(obj, host, state, templates, at, lint=True, labels=labels, use_record=True,
                                        on_spec=document.start, on_compiled=keep.compiled if keep else None)
        _apply_prepared(obj, host, state, yes, confirm_timeout, templates, saved, report, revision, previous, prep,
                        secrets, document, keep)


def _scope_or_reason(obj: Context, host: RealHost, state: StateDir, first_read: int) -> scoped.Scope | str:
    """A partner-scoped plan (gatewayctl/apply/scoped.py), or why this apply is a whole one (said at -v)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        scope = scoped.attempt(obj.profiles, state, host, now, first_read,
                               lambda estate, cas, files: lint_errors_of(obj.profiles, estate, cas, now, files),
                               lambda ifname, table, known: ForkedSnapshot(host, ifname, table, known))
    except HostError as exc:
        scope = f"the host could not be read: {exc}"
    except Exception as exc:  # anything unforeseen on the way (its children are stopped): the whole apply decides
        scope = f"the partners could not be planned alone: {type(exc).__name__}: {exc}"
    if isinstance(scope, str) and obj.verbosity > 0:
        click.echo(f"apply: planning the whole estate ({scope})", err=True)
    return scope


def _say_scope(obj: Context, scope: scoped.Scope) -> None:
    """The plan below is of these partners only: say so (a whole plan may show more); and the compile
    warnings a whole apply prints."""
    if obj.verbosity >= 0:
        click.echo(f"apply: only the files of {', '.join(sorted(scope.partners))} changed since the last apply: "
                   "planning those partners alone (`apply --whole` plans the whole estate; docs/operations.md)",
                   err=True)
        for warning in scoped.warnings(scope):
            click.echo(f"warning: {warning}", err=True)


class _WholeBasis:
    """What a whole apply keeps for the next one to be partner-scoped (apply/basis.py): the profiles
    folder's stats, taken before it is loaded, and the estate and policy once compiled."""

    def __init__(self, profiles: Path, first_read: int) -> None:
        self.profiles = profiles
        self.racy = basis.racy_threshold(first_read)
        try:
            self.files: dict[str, basis.Stat] | None = basis.tree(profiles, self.racy)
        except OSError:  # no folder (the load reports it), or one swapped meanwhile: no basis this time
            self.files = None
        self.seen: Compiled | None = None
        self.keys: dict[str, basis.Stat] = {}

    def compiled(self, compiled: Compiled) -> None:
        """The estate is loaded and compiled; the key files are read next (desired state): stat them now."""
        self.seen = compiled
        self.keys = basis.key_files(scoped.key_paths(compiled.policy), self.racy)

    def keep(self, state: StateDir, prep: Prepared) -> None:
        seen = self.seen
        if seen is None or self.files is None or seen.estate.several or seen.estate.gateway.model.ha is not None:
            return
        scoped.keep(state.root, scoped.whole(state.root, self.profiles, self.files, seen.estate, seen.policy, prep.desired,
                                             self.keys, seen.cas))


def _apply_prepared(obj: Context, host: RealHost, state: StateDir, yes: bool, confirm_timeout: int | None,
                    templates: Path | None, saved: tuple[Path, SavedPlan] | None, report: Report,
                    revision: dict[str, Any], previous: dict[str, Any] | None, prep: Prepared, secrets: Secrets,
                    document: ApplyDocument, keep: _WholeBasis | scoped.Scope | None,
                    flows: Forked[list[dict[str, Any]]] | None = None) -> None:
    """Carry out a prepared plan. `keep`: what to keep, once it succeeded, for the next apply to be
    partner-scoped; a Scope when this apply is one (its flows, document and basis are the scope's).
    `flows`: the child that deletes the stale flows, forked already, waiting for its go."""
    scope = keep if isinstance(keep, scoped.Scope) else None
    if isinstance(document, ScopedDocument):
        document.start_scoped()
    report.plan(prep)
    if prep.plan.blockers:
        guard = close_while_refused(prep, host, make_environment(templates))
        if guard:
            state.journal({"event": "refused", "blockers": list(prep.plan.blockers), "guard": guard})
        fail("refusing to apply: " + "; ".join(prep.plan.blockers)
             + (f"; partner traffic is blocked by the guard table inet {guard} until an apply succeeds" if guard else ""))
    if saved is not None:  # before anything changes: a stale plan is refused whole
        refuse_if_stale(obj, state, *saved, prep, revision)
    _refuse_lint_errors(obj, prep)
    _end_revocations(state, prep, report)
    if prep.plan.empty:
        with _closing_stale_flows(host, prep, scope, flows) as closing:
            _record_table(state, host, prep, time.time())
            _report_closed(state, _stale_flows_closed(closing), report)
        _keep_basis(state, prep, keep)
        report.end("nothing-to-do")
        return
    if not yes:
        if not sys.stdin.isatty():
            fail("not applying without confirmation: run with --yes when there is no terminal")
        click.confirm("Apply these changes?", abort=True)
    meta = {**revision, "changes": len(prep.plan.changes),
            "table_read": "record" if prep.live.from_record else "listed",
            **({"saved_plan": str(saved[0])} if saved is not None else {})}
    started_at = time.time()
    # applied.json is known before anything changes: it is spelt while this process changes the
    # host, records the table and closes stale flows, and written once the change is verified
    try:
        rollback = execute(prep, host, make_environment(templates), secrets)
    except ApplyError as exc:
        tablerecord.forget(state.root)
        state.journal({"event": "failed", "rolled_back": exc.rolled_back, "error": str(exc),
                       "digest": _failed_digest(document, prep), **meta,
                       **({"scope": sorted(scope.partners)} if scope else {})})
        click.echo(f"error: apply failed: {exc}", err=True)
        click.echo("the previous firewall table and peers were restored" if exc.rolled_back else
                   "the rollback failed too: check the host now", err=True)
        raise SystemExit(1 if exc.rolled_back else 4) from None
    with _closing_stale_flows(host, prep, scope, flows) as closing:  # the new table is in force: what it no longer allows ends now
        _record_table(state, host, prep, started_at)
        meta["digest"], text = document.text(prep, meta)
        state.write_text("applied.json", text)
        closed = _stale_flows_closed(closing)
    remember_gateway(state.root, prep.policy.gateway, prep.policy.several)
    entry = {"event": "applied", **meta, **({"scope": sorted(scope.partners)} if scope else {})}
    if confirm_timeout:
        entry["apply_id"] = confirming.arm(state, rollback, previous, confirm_timeout)
        entry["confirm_by_s"] = confirm_timeout
    state.journal(entry)
    report.data.update(applied_changes=len(prep.plan.changes), apply_id=entry.get("apply_id"))
    report.say(f"applied {len(prep.plan.changes)} change(s); verified against the host")
    _report_closed(state, closed, report)
    if confirm_timeout:
        report.say(f"run `gatewayctl confirm` within {confirm_timeout} s, or the change is rolled back")
    _keep_basis(state, prep, keep)
    report.end("applied")


def _keep_basis(state: StateDir, prep: Prepared, keep: _WholeBasis | scoped.Scope | None) -> None:
    if isinstance(keep, scoped.Scope):
        scoped.keep(state.root, keep.basis)
    elif keep is not None:
        keep.keep(state, prep)


def _failed_digest(document: ApplyDocument, prep: Prepared) -> str:
    """The digest a failed apply journals: from the child's document, else the spec's alone (the
    failure is reported whatever happens to the document)."""
    try:
        return document.parts(prep)[0]
    except Exception:
        return digest(spec_to_json(prep.desired))


class ApplyDocument:
    """applied.json for this apply (what `restore` loads back after a reboot or crash, and what revoke
    works from), spelt by a forked child (gatewayctl/forked.py) from the moment the desired state is
    known: at 5,000 partners its text is 7 MB and about 0.3 s of CPU, done on the second core while
    this process reads the host, diffs and changes it. The child gives the digest and the JSON of each
    part that the desired state alone decides; text() adds what the plan and the host decide (the
    journal's fields, the foreign chains) and puts the parts together in the order of keys that
    json_text(..., compact=True) gives the whole (tests/test_apply_document.py compares the two)."""

    def __init__(self, templates: Path | None) -> None:
        self.templates = templates
        self.child: Forked[tuple[str, dict[str, str]]] | None = None

    def start(self, policy: CompiledPolicy, desired: GatewaySpec, now: dt.datetime) -> None:
        self.stop()
        self.child = Forked(lambda: document_parts(policy, desired, now, self.templates))

    def parts(self, prep: Prepared) -> tuple[str, dict[str, str]]:
        """The digest and the parts: the child's, else worked out here (no child was started)."""
        if self.child is None:
            return document_parts(prep.policy, prep.desired, prep.now, self.templates)
        return self.child.result()

    def text(self, prep: Prepared, meta: dict[str, Any]) -> tuple[str, str]:
        """The digest and the text of applied.json."""
        spec_digest, parts = self.parts(prep)
        late = {**meta, "digest": spec_digest, "foreign_chains": [str(c) for c in prep.live.foreign_chains]}
        return spec_digest, joined({**parts, **{key: _compact(value) for key, value in late.items()}})

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


class ScopedDocument(ApplyDocument):
    """applied.json for a partner-scoped apply: the last one with the changed partners' parts
    replaced (apply/scoped.py document_parts), spelt by a forked child from the start of the apply."""

    def __init__(self, state_root: Path, scope: scoped.Scope) -> None:
        super().__init__(None)
        self.state_root, self.scope = state_root, scope

    def start_scoped(self) -> None:
        self.child = self.scope.document  # started by scoped.attempt

    def parts(self, prep: Prepared) -> tuple[str, dict[str, str]]:
        return self.scope.document.result()

    def stop(self) -> None:
        self.scope.document.stop()


def document_parts(policy: CompiledPolicy, desired: GatewaySpec, now: dt.datetime,
                   templates: Path | None) -> tuple[str, dict[str, str]]:
    """The spec's digest, and the compact JSON of each key of applied.json the desired state decides."""
    from gatewayctl.apply.restore import SKELETON, skeleton

    applied = spec_to_json(desired)
    spec_digest = digest(applied)
    applied.update(applied_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"), element_grants=element_grants(policy),
                   grant_ends=grant_ends(policy))
    applied[SKELETON] = skeleton(policy, make_environment(templates))
    return spec_digest, {key: _compact(value) for key, value in applied.items()}


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def joined(parts: dict[str, str]) -> str:
    """The object whose keys are `parts`' and values their JSON texts, as json_text(..., compact=True)
    spells it: keys sorted, no spaces, a final newline."""
    return "{" + ",".join(f"{json.dumps(key)}:{parts[key]}" for key in sorted(parts)) + "}\n"


def _record_table(state: StateDir, host: RealHost, prep: Prepared, started_at: float) -> None:
    """Keep the table as this apply left it, for the next apply's plan (apply/tablerecord.py), when it
    is known exactly; else drop the old record (the next apply lists the table)."""
    now = host.generation()
    if prep.plan.nft_replace or prep.live.nft is None or not tablerecord.continued(prep.live.generation, now, host.nft_writes):
        tablerecord.forget(state.root)
        return
    assert now is not None
    record = tablerecord.after_elements(prep.live, prep.live_raw, prep.plan.nft_delete,
                                        added_elements(prep) if prep.plan.nft_add else {},
                                        prep.desired.element_ends, prep.now, started_at)
    foreign = None if prep.plan.remove_guard or prep.plan.create_interface else \
        tablerecord.foreign_of(prep.live_raw, prep.desired.table_name)
    tablerecord.save(state.root, now, prep.desired.table_name, record, foreign)


def _refuse_lint_errors(obj: Context, prep: Prepared) -> None:
    """apply refuses what lint calls an error (exit 2), with the findings."""
    if prep.lint_errors:
        for line in prep.lint_errors:
            click.echo(f"error: {line}", err=True)
        fail(f"refusing to apply: lint reports {len(prep.lint_errors)} error(s); fix them, or have the gateway owners "
             "approve an exception (docs/rules.md)")


def _end_revocations(state: StateDir, prep: Prepared, report: Report) -> None:
    """Revocations whose access the profiles no longer grant have done their work: they end here."""
    if not prep.unrevoked:
        return
    revocations.save(state, list(prep.revoked))
    for r in prep.unrevoked:
        state.journal({"event": "revocation-ended", "partner": r.partner, "service": r.service,
                       "why": "the profiles no longer grant this access"})
        report.data["revocations_ended"].append(r.label)
        report.say(f"revocation of {r.label} ended: the profiles no longer grant that access")


def _closing_stale_flows(host: RealHost, prep: Prepared, scope: scoped.Scope | None,
                         ready: Forked[list[dict[str, Any]]] | None = None) -> Forked[list[dict[str, Any]]]:
    """Delete the tracked flows no grant covers any more, in a forked child (gatewayctl/forked.py)
    while this process records the table and writes applied.json: it imports pyroute2 for
    conntrack, 0.15 s at every apply. A flow is deleted by its original tuple and one gone already is
    not an error, so when the child fails, the same step done again here deletes only what is left.
    A scoped apply looks only at the changed partners' flows (its desired state holds only theirs);
    `ready`: a child forked for it already, which starts now."""
    if ready is not None:
        ready.go()
        return ready
    if scope is not None:
        return Forked(lambda: [flow.raw for flow in scoped.close_stale_flows(scope, host)])
    return Forked(lambda: [flow.raw for flow in close_stale_flows(prep, host)])


def _stale_flows_closed(closing: Forked[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The flows deleted (their conntrack tuples). A failure here is a warning, not fatal (the ruleset
    already drops their packets one by one)."""
    try:
        return closing.result()
    except HostError as exc:
        click.echo(f"warning: could not delete stale connection tracking entries: {exc}", err=True)
        return []


def _report_closed(state: StateDir, closed: list[dict[str, Any]], report: Report) -> None:
    if closed:
        state.journal({"event": "flows-closed", "count": len(closed)})
        report.data["flows_closed"] = len(closed)
        report.say(f"closed {len(closed)} open connection(s) that no grant covers any more")
