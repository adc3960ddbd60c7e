"""A fleet rolled out by Ansible (issue 17.5): check-mode plan of the whole test fleet, and a one-partner
change rolled out to every gateway, canary first, in wall-clock seconds with the share that is
Ansible's own.

    sudo .venv/bin/python -m bench.bench_fleet [--runs 3] [--write]

On tests/sshlab.py's lab: three gateway namespaces of one estate (gateway.yaml `gateways:`), each with its
own sshd, nftables and wireguard-go, and a controller namespace running ansible-playbook over SSH. The
inventory's `gatewayctl_executable` is pointed at a wrapper that logs how long each gatewayctl process
ran on the gateways, so that Ansible's own share is the playbook's wall-clock time less the time spent in
gatewayctl (the modules' Python and the SSH round trips are Ansible's). The one-partner change is a new
keepalive for acme's peer (acme connects through every gateway), committed and rolled out; each run
alternates the value so that every rollout changes something. --write adds the results to
bench/results.json (key "fleet") and renders bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.sshlab import GATEWAYCTL, SshLab  # noqa: E402

WRAPPER = """#!/bin/sh
# bench/bench_fleet.py: how long each gatewayctl run on a gateway took
start=$(date +%s.%N)
"{real}" "$@"
rc=$?
echo "$start $(date +%s.%N) $1 $2 $3" >> "{log}"
exit $rc
"""


def wrap(lab: SshLab) -> Path:
    """Point the inventory's gatewayctl at a timing wrapper; the log it writes."""
    log = lab.root / "gatewayctl-times.log"
    wrapper = lab.root / "gatewayctl-timed"
    wrapper.write_text(WRAPPER.format(real=GATEWAYCTL, log=log))
    wrapper.chmod(0o755)
    inventory = json.loads((lab.root / "inventory.json").read_text())
    inventory["gateways"]["vars"]["gatewayctl_executable"] = str(wrapper)
    (lab.root / "inventory.json").write_text(json.dumps(inventory, indent=1))
    return log


def in_gatewayctl(log: Path) -> float:
    """Seconds spent in gatewayctl processes since the log was last emptied; empties it."""
    total = sum(float(end) - float(start) for start, end, *_ in (line.split() for line in log.read_text().splitlines())) \
        if log.exists() else 0.0
    log.write_text("")
    return total


def timed(lab: SshLab, log: Path, *args: str) -> dict[str, float]:
    in_gatewayctl(log)
    start = time.perf_counter()
    run = lab.playbook("rollout.yml", *args, timeout=600)
    wall = time.perf_counter() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    inside = in_gatewayctl(log)
    return {"wall_s": round(wall, 2), "gatewayctl_s": round(inside, 2), "ansible_share": round(1 - inside / wall, 3)}


def change_acme(lab: SshLab, run: int) -> None:
    path = lab.work / "profiles" / "partners" / "acme.yaml"
    doc = json.loads(path.read_text())
    doc["peers"][0]["keepalive"] = 20 + run % 2 * 5
    path.write_text(json.dumps(doc, indent=1))
    lab.commit(f"bench: acme keepalive {doc['peers'][0]['keepalive']}")


def median(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {"runs": rows}


def bench(runs: int) -> dict[str, Any]:
    lab = SshLab(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-fleet-{os.getpid()}")
    try:
        lab.up()
        log = wrap(lab)
        checks = [timed(lab, log, "--check") for _ in range(runs)]
        first = timed(lab, log)  # the first rollout: every gateway from nothing
        changes = []
        for run in range(runs):
            change_acme(lab, run)
            changes.append(timed(lab, log))
        return {"gateways": len(lab.gateways), "check_mode_plan": median(checks), "first_rollout": first,
                "one_partner_rollout": median(changes),
                "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    finally:
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_fleet.py needs root (network namespaces, sshd, nftables, wireguard-go)")
    result = bench(options.runs)
    print(json.dumps(result, indent=1))
    if options.write:
        path = REPO / "bench" / "results.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["fleet"] = result
        path.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
