"""`test` and `query`: questions answered from the compiled policy."""

from __future__ import annotations

import dataclasses
import json

import click

from gatewayctl.cli.common import Context, at_option, gateway_option, label, load_each_or_exit, resolve_at
from gatewayctl.errors import ProfileErrors
from gatewayctl.pipeline import Compiled
from gatewayctl.policy.assertions import evaluate_fleet, load_tests
from gatewayctl.policy.explain import flow, partner_access, who_reaches
from gatewayctl.policy.flows import parse_target
from gatewayctl.policy.junit import junit


@click.command("test")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True,
              help="junit: JUnit XML, one testcase per policy test (for CI test reports).")
@at_option
@gateway_option
@click.pass_obj
def test_cmd(obj: Context, fmt: str, at_text: str | None) -> None:
    """Run the policy tests kept with the profiles (tests/*.yaml).

    Each failure says which grant allowed the flow, or that none did. Exit 0: all pass;
    1: failures; 2: bad input.

    \b
    Examples:
      gatewayctl test
      gatewayctl test --at 2027-06-01 --format json
      gatewayctl test --format junit > policy-tests.xml
    """
    at = resolve_at(at_text)
    views = [(c.policy.gateway, c) for c in load_each_or_exit(dataclasses.replace(obj, verbosity=-1), at)]
    try:
        tests = load_tests(obj.profiles)
    except ProfileErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    services = {k: v for _, c in views for k, v in c.estate.services.model.services.items()}  # what any gateway fronts
    outcomes = [evaluate_fleet(t, [(n, c.policy) for n, c in views], services) for t in tests]
    failed = [o for o in outcomes if not o.passed]
    if fmt == "junit":
        click.echo(junit(outcomes, at), nl=False)
    elif fmt == "json":
        click.echo(json.dumps({"format": "gatewayctl-test/1", "passed": len(outcomes) - len(failed), "failed": len(failed),
                               "tests": [{"name": o.test.test.name, "where": o.test.where, "passed": o.passed,
                                          "detail": o.detail, "evidence": list(o.evidence)} for o in outcomes]}, indent=2))
    else:
        for o in outcomes:
            if not o.passed or obj.verbosity >= 1:
                click.echo(f"{'PASS' if o.passed else 'FAIL'} {o.test.where}: {o.test.test.name}: {o.detail}")
        click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    raise SystemExit(1 if failed else 0)


@click.command()
@click.option("--partner", help="Everything this partner can reach, with the grant behind each.")
@click.option("--to", "to", metavar="TARGET", help="ADDRESS[/PREFIX][:PORT][/tcp|udp|icmp], e.g. 10.1.0.5:443/tcp.")
@click.option("--from", "source", metavar="ADDRESS", help="With --to: is this one flow allowed, and by which grant?")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@at_option
@gateway_option
@click.pass_obj
def query(obj: Context, partner: str | None, to: str | None, source: str | None, fmt: str, at_text: str | None) -> None:
    """Ask the compiled policy: what a partner reaches, who reaches a target, whether a flow passes.

    Answers come from the same compiled sets the nftables ruleset is rendered from. With
    --from and --to: exit 0 allowed, 1 denied.

    \b
    Examples:
      gatewayctl query --partner acme
      gatewayctl query --to 10.1.0.5:443/tcp
      gatewayctl query --from 10.250.1.1 --to 10.1.0.5:22/tcp
    """
    if not partner and not to:
        raise click.UsageError("give --partner, or --to (with or without --from)")
    every = load_each_or_exit(dataclasses.replace(obj, verbosity=-1), resolve_at(at_text))
    if partner and not any(c.policy.partner(partner) for c in every):
        from gatewayctl.suggest import did_you_mean

        known = {p.id for c in every for p in c.policy.partners}
        raise click.BadParameter(f"no partner {partner!r} in the profiles{did_you_mean(partner, known)}",
                                 param_hint="--partner")
    answers: list[tuple[Compiled, object]] = []
    for compiled in every:
        policy = compiled.policy
        try:
            target = parse_target(to) if to else None
            if partner:
                if len(every) > 1 and policy.partner(partner) is None:
                    continue  # not a partner of this gateway
                answer: object = partner_access(policy, partner)
            elif source:
                answer = flow(policy, source, target).as_json()  # type: ignore[arg-type]
            else:
                answer = who_reaches(policy, target)  # type: ignore[arg-type]
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        answers.append((compiled, answer))
    if not answers:
        raise click.BadParameter(f"no partner {partner!r} on any gateway", param_hint="--partner")
    if fmt == "json":
        data = answers[0][1] if len(every) == 1 else [{"gateway": c.policy.gateway, "answer": a} for c, a in answers]
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo("\n".join(_labelled(label(c), _text(a)) for c, a in answers))
    if source:
        raise SystemExit(0 if any(a["allowed"] for _, a in answers) else 1)  # type: ignore[index]


def _text(answer: object) -> str:
    if isinstance(answer, list):
        if not answer:
            return "nobody can reach it"
        return "\n".join(f"{a['partner']} from {', '.join(a['sources'])} via {a['grant']} ({a['service']}, "
                         f"{a['protocol']}/{','.join(a['ports']) or '-'}, until {a['expires'] or 'the agreement ends'}; "
                         f"approved by {a['approved_by']})" for a in answer)
    assert isinstance(answer, dict)
    if "allowed" in answer:
        return f"{'ALLOWED' if answer['allowed'] else 'DENIED'}: {answer['reason']}"
    lines = [f"{answer['partner']} ({answer['name']}, stage {answer['stage']}) from {', '.join(answer['sources'])}:"]
    for g in answer["grants"]:
        lines.append(f"  {g['grant']}: {', '.join(g['destinations'])} {g['protocol']}/{','.join(g['ports']) or '-'} "
                     f"[{g['classification']}] until {g['expires'] or 'the agreement ends'}; {g['justification']} "
                     f"(approved by {g['approved_by']})")
    lines += [f"  not in force: {e['service']}: {e['reason']}" for e in answer["not_in_force"]]
    return "\n".join(lines)


def _labelled(prefix: str, text: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines()) if prefix else text
