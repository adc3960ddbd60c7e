"""`lab up|down|status`: the demo gateway in network namespaces."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gatewayctl.build import write_artifacts
from gatewayctl.cli.common import Context, load_or_exit
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.lab import core, ha, reach
from gatewayctl.loader.profiles import Estate
from gatewayctl.render.artifacts import render_all
from gatewayctl.render.environment import make_environment


@click.group()
def lab() -> None:
    """A demo gateway with partners and services in network namespaces (needs root).

    \b
    Examples:
      gatewayctl lab up
      gatewayctl lab status
      gatewayctl lab down
    """


F = TypeVar("F", bound=Callable[..., Any])


def lab_dir_option(func: F) -> F:
    return click.option("--dir", "root", type=click.Path(path_type=Path, file_okay=False), default=core.DEFAULT_LAB_DIR,
                        show_default=True, help="Where the lab keeps its keys, derived profiles and state.")(func)


@lab.command()
@lab_dir_option
@click.option("--ha", "pair", is_flag=True, help="A pair of gateway nodes (keepalived, conntrackd) behind a floating "
              "address, instead of one gateway (docs/ha.md).")
@click.pass_obj
def up(obj: Context, root: Path, pair: bool) -> None:
    """Build the lab from the profiles, apply them, and prove access with real packets.

    \b
    Examples:
      gatewayctl lab up
      gatewayctl lab up --ha
      gatewayctl --profiles my-estate lab up --dir /tmp/lab
    """
    load_or_exit(obj.profiles, dt.datetime.now(dt.UTC), -1)  # bad profiles fail before anything is made
    if pair:
        _up_pair(obj, root)
        return
    try:
        made = core.up(obj.profiles, root)
    except core.LabError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"lab {made.data['id']}: gateway namespace {made.gateway_ns}, {len(made.data['peers'])} partner peers, "
               f"services in {made.data['services_ns']}")
    profiles = Path(made.data["profiles"])
    compiled = load_or_exit(profiles, dt.datetime.now(dt.UTC), obj.verbosity)
    write_artifacts(render_all(compiled.policy, make_environment()), root / "out")
    core.configure_peers(made, root / "out")
    base = [sys.executable, "-m", "gatewayctl", "--profiles", str(profiles)]
    host = ["--netns", made.gateway_ns, "--state-dir", made.data["state_dir"]]
    click.echo("\n$ gatewayctl apply --yes")
    applied = subprocess.run([*base, "apply", *host, "--yes"], check=False)
    if applied.returncode != 0:
        click.echo("error: apply failed; the lab is left up for inspection (gatewayctl lab down removes it)", err=True)
        raise SystemExit(applied.returncode)
    silent = core.wait_handshakes(made)
    if silent:
        click.echo(f"warning: no WireGuard handshake yet from {', '.join(silent)}", err=True)
    _reachability(made, compiled.policy, compiled.estate)
    click.echo("\n$ gatewayctl drift")
    subprocess.run([*base, "drift", *host], check=False)
    click.echo(f"\nlab is up. Try: gatewayctl --profiles {profiles} plan --netns {made.gateway_ns} "
               f"--state-dir {made.data['state_dir']}\n     and: gatewayctl lab down")


def _up_pair(obj: Context, root: Path) -> None:
    """lab up --ha: the pair's namespaces, build, then conntrackd, apply standby then active, keepalived."""
    try:
        made = ha.up(obj.profiles, root)
    except core.LabError as exc:  # up removed what it had made
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    try:
        click.echo(f"lab {made.data['id']}: nodes {', '.join(n['ns'] for n in made.data['ha']['nodes'].values())}, "
                   f"{len(made.data['peers'])} partner peers, services in {made.data['services_ns']}, "
                   f"floating address {made.data['ha']['floating']}")
        compiled = load_or_exit(Path(made.data["profiles"]), dt.datetime.now(dt.UTC), obj.verbosity)
        write_artifacts(render_all(compiled.policy, make_environment(), compiled.estate.gateway.model.ha), root / "out")
        core.configure_peers(made, root / "out")
        for line in ha.start(made):
            click.echo(line)
    except core.LabError as exc:
        click.echo(f"error: {exc}; the lab is left up for inspection (gatewayctl lab down removes it)", err=True)
        raise SystemExit(2) from None
    silent = core.wait_handshakes(made)
    if silent:
        click.echo(f"warning: no WireGuard handshake yet from {', '.join(silent)}", err=True)
    _reachability(made, compiled.policy, compiled.estate)
    click.echo(f"\nactive node: {ha.active(made)}. Try: gatewayctl --profiles {made.data['profiles']} plan --netns NODE_NS "
               f"--state-dir {root}/state/NODE --node NODE (in the node's mount namespace: docs/ha.md)\n"
               "     and: gatewayctl lab down")


def _reachability(made: core.Lab, policy: CompiledPolicy, estate: Estate) -> None:
    catalogue: reach.Catalogue = {}
    for name, svc in estate.services.model.services.items():
        net = svc.addresses[0]
        catalogue[name] = (reach.host_of(net), svc.protocol, int(str(svc.ports[0]).split("-")[0]) if svc.ports else 0, net.version)
    gateway_address = str(ipaddress.ip_interface(made.data["gateway_addresses"][0]).ip)
    results = reach.run(reach.plan_probes(policy, made.data["peers"], gateway_address, catalogue))
    click.echo("\nreachability (real packets through the tunnel):")
    wrong = 0
    for probe, ok in results:
        mark = "ok  " if ok == probe.expect else "FAIL"
        wrong += ok != probe.expect
        verdict = "reached" if ok else "blocked"
        port = f"/{probe.port}" if probe.proto != "icmp" else ""
        click.echo(f"  {mark} {probe.peer:<28} {probe.src} -> {probe.dst} {probe.proto}{port}: {verdict} ({probe.why})")
    click.echo(f"{len(results) - wrong} of {len(results)} probes as expected")
    if wrong:
        raise SystemExit(1)


@lab.command()
@lab_dir_option
def down(root: Path) -> None:
    """Remove everything the lab made (its namespaces and processes), and nothing else.

    \b
    Examples:
      gatewayctl lab down
    """
    removed = core.down(root)
    click.echo(f"removed {len(removed)} lab objects" if removed else "no lab to remove")


@lab.command()
@lab_dir_option
def status(root: Path) -> None:
    """Show the lab's namespaces and processes.

    \b
    Examples:
      gatewayctl lab status
    """
    made = core.load(root)
    if made is None:
        click.echo("no lab")
        raise SystemExit(1)
    existing = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    for ns in made.data["namespaces"]:
        click.echo(f"namespace {ns}: {'present' if ns in existing else 'MISSING'}")
    for pid in made.data["pids"]:
        click.echo(f"process {pid}: {'running' if Path(f'/proc/{pid}').exists() else 'gone'}")
