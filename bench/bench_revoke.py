"""Benchmark (issue 13.7): `revoke` of one partner and `apply` of a one-partner change on a gateway
namespace with N partners, wall-clock, whole processes; with a profile of each when it misses 1 s.

    .venv/bin/python bench/bench_revoke.py [--partners 5000] [--runs 3] [--no-profile] [--write]

As root, with nftables and wireguard-go. The gateway is set up as bench/bench_gateway.py does (one
peer and five grants per partner) and applied once. Then `--runs` applies, each of a change to a
different partner (one grant removed, keepalive changed; the plan output must name only that
partner), and `--runs` revokes, each of a different partner (`revoke P --reason ...`, which works
from the state folder's applied.json). Target: under 1 s each. One more apply comes first and is
reported apart (`one_partner_apply_listed_s`): the first after a whole-table apply lists the table;
it and every later one leave the table record, so the measured ones plan from it (the journal's
`table_read` says which, and is checked; docs/operations.md "Planning without listing the table").
That first one plans the whole estate; the measured ones plan only the partner whose file changed
(the journal's `scope`, checked; docs/operations.md "A change to some partners only").
A command over 1 s is run once more under cProfile (the main process only: apply reads the host in a forked child while it compiles,
and that child's work shows in the parent as the wait for its result); the functions with the most
cumulative and the most own time are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_gateway import gateway_estate  # noqa: E402
from bench.common import ENV, WORK, reference_s  # noqa: E402

TARGET_S = 1.0
# the functions whose direct callees are the steps of each command (cli/host_cmds.py, apply/revoke.py)
# (file, function name: line numbers move as the code changes)
# (the stale flows' deletion runs in a forked child in both: the profile sees it as the wait for its result)
APPLY_STEPS = ("cli/apply_cmd.py(_apply_locked)", "cli/apply_cmd.py(_apply_prepared)", "cli/host_cmds.py(prepare_or_exit)",
               "cli/host_cmds.py(_lint_errors)", "apply/engine.py(prepare)")
REVOKE_STEPS = ("cli/revoke_cmd.py(revoke)", "apply/revoke.py(revoke)")


def timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start, result


def change_partner(profiles: Path, partner: str) -> None:
    """One grant fewer and another keepalive: a change to one partner's peer and grant elements."""
    path = profiles / "partners" / f"{partner}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["peers"][0]["keepalive"] = 20
    doc["grants"] = doc["grants"][1:]
    path.write_text(json.dumps(doc))


def last_applied(state: Path) -> dict[str, Any]:
    entries = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]
    return dict([e for e in entries if e["event"] == "applied"][-1])


def table_read(state: Path) -> str:
    """How the last apply read gatewayctl's table: "listed", or from the state folder's "record"."""
    return str(last_applied(state)["table_read"])


def scope(state: Path) -> list[str] | None:
    """The partners the last apply planned alone (gatewayctl/apply/scoped.py), or None: a whole apply."""
    found = last_applied(state).get("scope")
    return list(found) if found is not None else None


def touched(plan_output: str) -> set[str]:
    """The partners named by the change lines (+, -, ~) of apply's plan output."""
    return {line.split()[2].split("/")[0].rstrip(":") for line in plan_output.splitlines() if line[:2] in ("+ ", "- ", "~ ")}


def _where(path: str, line: int, name: str) -> str:
    return f"{path.split('/site-packages/')[-1].replace(str(REPO) + '/', '')}:{line}({name})"


def hot_spots(stats_file: Path, steps_of: tuple[str, ...], top: int = 12) -> dict[str, Any]:
    """The functions with the most cumulative time (gatewayctl's own) and the most own time, and the
    direct callees (with their cumulative time) of the functions named in `steps_of`: where one
    command's time goes, step by step."""
    stats = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]
    rows = [{"function": _where(*key), "calls": calls, "own_s": round(own, 3), "cumulative_s": round(cumulative, 3)}
            for key, (_, calls, own, cumulative, _) in stats.items()]
    callees: dict[str, list[dict[str, Any]]] = {}
    for key, (*_, callers) in stats.items():
        for caller, (_, calls, _, cumulative) in callers.items():
            if f"{caller[0]}({caller[2]})".endswith(steps_of):
                callees.setdefault(_where(*caller), []).append(
                    {"function": _where(*key), "calls": calls, "cumulative_s": round(cumulative, 3)})
    return {"total_s": round(max(r["cumulative_s"] for r in rows), 3),
            "steps": {name: sorted(found, key=lambda r: -r["cumulative_s"])[:top] for name, found in callees.items()},
            "cumulative_gatewayctl": sorted((r for r in rows if r["function"].startswith("gatewayctl/")),
                                            key=lambda r: -r["cumulative_s"])[:top],
            "own": sorted(rows, key=lambda r: -r["own_s"])[:top]}


def profiled(args: list[str], out: Path, steps_of: tuple[str, ...]) -> dict[str, Any]:
    """Run `python -m gatewayctl ARGS` under cProfile; the hot spots."""
    result = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "gatewayctl", *args],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, env=ENV)
    assert result.returncode == 0, result.stderr
    return hot_spots(out, steps_of)


def gateway_ops(partners: int, runs: int = 3, profile: bool = True) -> dict[str, Any]:
    """First apply, then `runs` one-partner applies and `runs` revokes, each of a different partner."""
    token = secrets.token_hex(3)
    root = WORK / f"revoke-{partners}"
    profiles = gateway_estate(root, partners, token)
    ns, state = f"gwv{token}", root / "state"
    common = ["-q", "--profiles", str(profiles)]
    host = ["--netns", ns, "--state-dir", str(state)]
    base = [sys.executable, "-m", "gatewayctl", *common]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                        "net.ipv6.conf.all.forwarding=1"], check=True)
        first, result = timed([*base, "apply", *host, "--yes"])
        assert result.returncode == 0, result.stderr
        applies: list[float] = []
        revokes: list[float] = []
        listed: list[float] = []
        names: set[str] = set()
        for run in range(runs + 1):  # the first after a whole-table apply lists the table; the others plan from the record
            partner = f"p{run:05d}"
            change_partner(profiles, partner)
            elapsed, result = timed([*base, "apply", *host, "--yes"])
            assert result.returncode == 0, result.stderr
            assert touched(result.stdout) == {partner}, result.stdout
            read = table_read(state)
            assert read == ("listed" if run == 0 else "record"), (run, read)
            # the first plans the whole estate (no record of the table yet); the others only the changed partner
            scoped = scope(state)
            assert (scoped is None) if run == 0 else (scoped is not None and partner in scoped), (run, scoped)
            (listed if run == 0 else applies).append(round(elapsed, 3))
        for run in range(runs):  # each revoke keeps the table record true, so each plans from it
            partner = f"p{partners - 1 - run:05d}"
            elapsed, result = timed([*base, "revoke", partner, "--reason", "bench: emergency stop", *host])
            assert result.returncode == 0, result.stderr
            found = re.search(r"(\d+) firewall element\(s\) removed", result.stdout)
            assert found and int(found.group(1)) > 0, result.stdout
            revokes.append(round(elapsed, 3))
            names.add(partner)
        row: dict[str, Any] = {
            "partners": partners, "reference_s": reference_s(), "first_apply_s": round(first, 3),
            "one_partner_apply_s": {"median": statistics.median(applies), "runs": applies},
            "one_partner_apply_listed_s": listed[0],
            "revoke_s": {"median": statistics.median(revokes), "runs": revokes}, "target_s": TARGET_S}
        if profile and row["one_partner_apply_s"]["median"] > TARGET_S:
            change_partner(profiles, f"p{runs + 1:05d}")
            row["apply_profile"] = profiled([*common, "apply", *host, "--yes"], root / "apply.prof",
                                          APPLY_STEPS)
        if profile and row["revoke_s"]["median"] > TARGET_S:
            row["revoke_profile"] = profiled([*common, "revoke", f"p{partners - 1 - runs:05d}", "--reason", "bench",
                                              *host], root / "revoke.prof", REVOKE_STEPS)
        return row
    finally:
        pidfile = state / f"wireguard-go-wgb{token}.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--write", action="store_true",
                        help="put the row, dated, in bench/results.json (per_packet.gateway) and render results.md again")
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_revoke.py needs root (network namespaces, nftables, wireguard-go)")
    row = gateway_ops(options.partners, options.runs, not options.no_profile)
    print(json.dumps(row, indent=1))
    if options.write:
        from bench.results_md import render

        results = json.loads((REPO / "bench" / "results.json").read_text())
        row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results.setdefault("per_packet", {})["gateway"] = row
        (REPO / "bench" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (REPO / "bench" / "results.md").write_text(render(results))


if __name__ == "__main__":
    main()
