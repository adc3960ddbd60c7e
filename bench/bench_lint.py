"""Benchmark: `gatewayctl lint` and `gatewayctl test` as whole processes on a synthetic estate.

    .venv/bin/python bench/bench_lint.py [--partners 1000] [--runs 5]

Target (issue 3): both under 1 s at 1,000 partners; no rule quadratic in the number of grants.
The estate gets 100 policy tests (50 can_reach, 50 cannot_reach).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import WORK, precompile, timed_process  # noqa: E402
from gatewayctl.synth import write_estate  # noqa: E402

precompile()
from bench.common import GATEWAYCTL  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    root = WORK / f"lint-{options.partners}"
    shutil.rmtree(root, ignore_errors=True)
    write_estate(root, options.partners)
    tests = [{"name": f"p{i:05d} reaches something", "partner": f"p{i:05d}", "can_reach": {"to": "10.1.0.0/24/tcp"}}
             for i in range(50)]
    tests += [{"name": f"p{i:05d} no ssh to 10.9/16", "partner": f"p{i:05d}", "cannot_reach": {"to": "10.9.0.0/16:22/tcp"}}
              for i in range(50)]
    (root / "tests").mkdir()
    (root / "tests" / "bench.yaml").write_text(json.dumps({"tests": tests}))
    results = {}
    for name, args in (("lint", [GATEWAYCTL, "-q", "-p", str(root), "lint", "--at", "2026-12-01"]),
                       ("test", [GATEWAYCTL, "-q", "-p", str(root), "test", "--at", "2026-12-01"])):
        runs = [timed_process(args) for _ in range(options.runs)]
        results[name] = {"median_s": round(statistics.median(t for t, _, _ in runs), 3),
                         "exit": runs[0][1], "peak_mib": round(max(m for _, _, m in runs) / 1024, 1)}
    print(json.dumps({"partners": options.partners, **results}, indent=1))


if __name__ == "__main__":
    main()
