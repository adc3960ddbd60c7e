"""Benchmark: `gatewayctl validate` and `gatewayctl build` as whole processes on synthetic estates.

    .venv/bin/python bench/bench_build.py [--sizes 10,1000,5000] [--runs 5]

For each size: median wall time and peak memory (max RSS) of each command, and the number of
rules in the compiled ruleset, counted by nft itself after loading it into a throwaway network
namespace when run as root (from the ruleset text otherwise), with per-partner deny logging on
(the default) and off. Targets (issue 2): 1,000 partners under 1 s, 5,000 under 4 s, peak memory
under 200 MB at 5,000, rule count independent of the number of partners.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    ENV,
    GATEWAYCTL,
    WORK,
    precompile,
)
from gatewayctl.synth import write_estate  # noqa: E402

precompile()


def timed(args: list[str]) -> tuple[float, int]:
    """Run a whole process; return (seconds, peak RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss


def count_rules(ruleset: Path) -> tuple[int, str]:
    if os.geteuid() == 0 and shutil.which("nft"):
        ns = f"gwb{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(ruleset)], check=True)
            listing = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"], check=True,
                                     capture_output=True, text=True).stdout
            return sum(1 for item in json.loads(listing)["nftables"] if "rule" in item), "nft (kernel)"
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    text = ruleset.read_text()
    body = text.split("chain ", 1)[1]
    rules = [ln for ln in body.splitlines() if ln.startswith("\t\t") and not ln.strip().startswith(("type ", "}"))]
    return len(rules), "ruleset text"


def bench(size: int, runs: int, per_partner: bool) -> dict[str, object]:
    root = WORK / f"estate-{size}-{'pp' if per_partner else 'shared'}"
    if not root.exists():
        write_estate(root, size, per_partner_logging=per_partner)
    out = WORK / f"out-{size}-{'pp' if per_partner else 'shared'}"
    result: dict[str, object] = {"partners": size, "per_partner_logging": per_partner}
    for name, args in (("validate", [GATEWAYCTL, "-q", "-p", str(root), "validate", "--at", "2026-12-01"]),
                       ("build", [GATEWAYCTL, "-q", "-p", str(root), "build", "-o", str(out), "--at", "2026-12-01"])):
        samples = []
        for run in range(runs):
            if name == "build" and run == 0:
                shutil.rmtree(out, ignore_errors=True)  # the first build writes every file
            samples.append(timed(args))
        result[f"{name}_s"] = round(statistics.median(s for s, _ in samples), 3)
        result[f"{name}_first_s"] = round(samples[0][0], 3)
        result[f"{name}_peak_mib"] = round(max(m for _, m in samples) / 1024, 1)
    rules, how = count_rules(out / "nftables" / "gatewayctl.nft")
    result["rules"] = rules
    result["rules_counted_by"] = how
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,1000,5000")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| partners | per-partner log | validate (median) | build (median) | first build | peak MiB | rules |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for per_partner in (True, False):
        for size in (int(s) for s in options.sizes.split(",")):
            r = bench(size, options.runs, per_partner)
            print(f"| {size} | {'yes' if per_partner else 'no'} | {r['validate_s']} s | {r['build_s']} s | "
                  f"{r['build_first_s']} s | {max(float(str(r['validate_peak_mib'])), float(str(r['build_peak_mib'])))} | "
                  f"{r['rules']} ({r['rules_counted_by']}) |", flush=True)


if __name__ == "__main__":
    main()
