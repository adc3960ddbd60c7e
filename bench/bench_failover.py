"""Failover of a pair (issue 16.5): time until new connections work again and until an established flow
resumes, per failure kind, median of several failovers; and what connection-state sync buys.

    sudo .venv/bin/python -m bench.bench_failover [--runs 5] [--write]

On `gatewayctl lab up --ha` with tests/ha_pair.py's estate: the endpoint partner umbrella keeps a
long-lived TCP connection (data both ways every 50 ms) and opens new connections all along; the
roaming partner acme (no endpoint in its profile: the gateway cannot start a handshake to it) opens
new connections too. Each run makes one failure on the active node (keepalived stopped, underlay link
down, wireguard-go killed) and then undoes it (failback). A last series stops conntrackd on both nodes
and fails over with a long-lived connection that was never synchronised, to measure what the sync is for.
--write adds the results to bench/results.json (key "failover") and renders bench/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gatewayctl.lab import ha  # noqa: E402
from tests.ha_pair import KINDS, Event, Pair  # noqa: E402

PROFILES = REPO / "profiles"
WORK = REPO / "bench" / "work" / "failover"
TARGET_NEW_S = 10.0


def run(runs: int) -> dict[str, Any]:
    """Every series; returns the results section (raw events and medians)."""
    pair = Pair(WORK / "lab")
    if (WORK / "lab" / "lab.json").exists():
        pair.down()
    events: list[Event] = []
    try:
        pair.up(PROFILES, roaming=True)
        pair.start_traffic(roaming=True)
        if not pair.wait_flowing(0.0):
            raise SystemExit("traffic did not pass before any failure")
        for kind in KINDS:
            for _ in range(runs):
                events.append(pair.event(kind, "node-a", lambda k=kind: pair.fail(k, "node-a"), "node-b", roaming=True))
                events.append(pair.event(f"{kind} failback", "node-a", lambda k=kind: pair.restore(k, "node-a"), "node-a",
                                         roaming=True))
                print(json.dumps(events[-2].row()), json.dumps(events[-1].row()), flush=True)
        leaks = pair.leaks()
        unsynced = _without_sync(pair, runs)
    finally:
        pair.down()
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "runs": runs,
            "events": [e.row() for e in events], "unsynced": [e.row() for e in unsynced], "leaks": leaks,
            "summary": summarise(events), "unsynced_summary": summarise(unsynced)}


def _without_sync(pair: Pair, runs: int) -> list[Event]:
    """What the sync is for: keepalived stopped, each run with a new long-lived connection, under strict TCP
    tracking (nf_conntrack_tcp_loose=0) with and without conntrackd, then without it under the default (1)."""
    found = []
    pair.tcp_loose(False)
    found += _series(pair, runs, "sync, tcp_loose=0")
    for name in ha.node_names():
        ha.stop(pair.lab, name, "conntrackd")
    found += _series(pair, runs, "no sync, tcp_loose=0")
    pair.tcp_loose(True)
    found += _series(pair, runs, "no sync, tcp_loose=1")
    return found


def _series(pair: Pair, runs: int, label: str) -> list[Event]:
    found = []
    for _ in range(runs):
        pair.new_long_flow()
        if not pair.wait_flowing(time.time(), 20.0):
            raise SystemExit("the new long-lived connection did not pass")
        time.sleep(1.0)  # conntrackd sends each new flow at once; give it a moment
        found.append(pair.event(f"keepalived ({label})", "node-a", lambda: pair.fail("keepalived", "node-a"),
                                "node-b", flow_timeout_s=12.0))
        found.append(pair.event(f"keepalived failback ({label})", "node-a",
                                lambda: pair.restore("keepalived", "node-a"), "node-a", flow_timeout_s=12.0))
        print(json.dumps(found[-2].row()), json.dumps(found[-1].row()), flush=True)
    return found


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known and len(known) == len(values) else None


def _median_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def summarise(events: list[Event]) -> list[dict[str, Any]]:
    """Per kind: medians and worst cases over its runs."""
    rows = []
    for kind in dict.fromkeys(e.kind for e in events):
        mine = [e for e in events if e.kind == kind]
        rows.append({
            "kind": kind, "runs": len(mine),
            "new_conn_s": _median([e.new_conn_s for e in mine]),
            "new_conn_max_s": max((e.new_conn_s for e in mine if e.new_conn_s is not None), default=None),
            "outage_s": _median([e.outage_s for e in mine]),
            "outage_max_s": max((e.outage_s for e in mine if e.outage_s is not None), default=None),
            "took_s": _median([e.took_s for e in mine]),
            "roaming_new_conn_s": _median_known([e.roaming_new_conn_s for e in mine]),
            "roaming_recovered": sum(e.roaming_new_conn_s is not None for e in mine),
            "roaming_max_s": max((e.roaming_new_conn_s for e in mine if e.roaming_new_conn_s is not None), default=None),
            "long_gap_s": _median([e.long_gap_s for e in mine]),
            "long_gap_max_s": round(max(e.long_gap_s for e in mine), 2),
            "long_resumed": sum(e.long_resume_s is not None and e.long_gap_s < 10.0 for e in mine),
            "long_alive": sum(e.long_alive for e in mine),
            "took_over": sorted({str(e.took_over) for e in mine}),
        })
    return rows


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def section(results: dict[str, Any]) -> list[str]:
    """results.md's section (bench/results_md.py calls this)."""
    lines = [f"## Failover of a pair (issue 16), measured {results['date']}", "",
             f"`python -m bench.bench_failover --runs {results['runs']}`: `gatewayctl lab up --ha` (two node namespaces, "
             "keepalived VRRPv3 with 1 s adverts, conntrackd FTFW on a link of its own); medians over the runs, from the "
             "partners' side. New connection: the endpoint partner opens a TCP connection every ~0.5 s (0.3 s timeout); "
             "\"0\" means not one failed. Roaming: the same from a partner with no endpoint in its profile. Long-lived: "
             "the longest silence of a TCP connection sending both ways every 50 ms; resumed / not reset out of the runs.",
             "All times are seconds from the failure (or from the action that undoes it: keepalived started, link up, "
             "apply); \"address moved\" is when the expected node held the floating address; \"out\" is how long new "
             "connections failed (first failed probe to the first success after it). Roaming: median of the "
             "runs in which it recovered within the window (30 s), and in how many it did; \"-\" where not measured.",
             "", "| failure | address moved | new connection back (median, worst) | new connections out (median, worst) | roaming "
             "partner back (median, worst) | long-lived: longest silence (median, worst) | resumed | not reset |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["summary"] + results["unsynced_summary"]:
        roaming = "-" if not row["roaming_recovered"] and "(" in row["kind"] else \
            f"{_s(row['roaming_new_conn_s'])}, {_s(row['roaming_max_s'])} ({row['roaming_recovered']}/{row['runs']})"
        lines.append(f"| {row['kind']} | {_s(row['took_s'])} | {_s(row['new_conn_s'])}, {_s(row['new_conn_max_s'])} | "
                     f"{_s(row['outage_s'])}, {_s(row['outage_max_s'])} | "
                     f"{roaming} | {_s(row['long_gap_s'])}, {_s(row['long_gap_max_s'])} | "
                     f"{row['long_resumed']}/{row['runs']} | {row['long_alive']}/{row['runs']} |")
    leaks = results["leaks"]
    lines += ["", f"Ungranted port and revoked grant probed {leaks['rounds']} times each throughout: "
                  f"{leaks['ungranted']} and {leaks['revoked']} passed.", ""]
    return lines


def write(results: dict[str, Any]) -> None:
    from bench.results_md import render

    path = REPO / "bench" / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["failover"] = results
    path.write_text(json.dumps(data, indent=1) + "\n")
    (REPO / "bench" / "results.md").write_text(render(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="failovers per kind (default 5)")
    parser.add_argument("--write", action="store_true", help="add the results to bench/results.json and results.md")
    options = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results = run(options.runs)
    (WORK / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(section(results)))
    if options.write:
        write(results)


if __name__ == "__main__":
    main()
