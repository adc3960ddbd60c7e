"""Benchmark: `gatewayctl diff` between two revisions of an N-partner estate that differ in one partner.

    .venv/bin/python bench/bench_diff.py [--partners 1000] [--runs 5]

Target (issue 5): under 2 s at 1,000 partners. Whole processes, median of --runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from bench.common import ENV, WORK, precompile  # noqa: E402
from gatewayctl.synth import write_estate  # noqa: E402

precompile()
from bench.common import GATEWAYCTL  # noqa: E402


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=b@example.com", "-c", "user.name=bench", *args],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    root = WORK / f"diff-{options.partners}"
    shutil.rmtree(root, ignore_errors=True)
    write_estate(root / "profiles", options.partners)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    partner = root / "profiles" / "partners" / "p00042.yaml"
    doc = yaml.safe_load(partner.read_text())
    doc["grants"] = doc["grants"][1:]
    partner.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(root, "commit", "-qam", "one partner loses a grant")
    args = [GATEWAYCTL, "-q", "--profiles", str(root / "profiles"), "diff", "--base", "HEAD~1", "--head", "HEAD",
            "--format", "json", "--at", "2026-12-01"]
    times, outputs = [], []
    for _ in range(options.runs):
        start = time.perf_counter()
        result = subprocess.run(args, capture_output=True, text=True, env=ENV)
        times.append(time.perf_counter() - start)
        outputs.append(result)
    data = json.loads(outputs[0].stdout)
    print(json.dumps({"partners": options.partners, "median_s": round(statistics.median(times), 3),
                      "exit": outputs[0].returncode, "changes": data["summary"]}, indent=1))


if __name__ == "__main__":
    main()
