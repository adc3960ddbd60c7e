"""Benchmark: `gatewayctl report` as a whole process on a synthetic estate, in every format.

    .venv/bin/python bench/bench_report.py [--partners 1000] [--runs 5]

Target (issue 7): a 1,000-partner estate renders in under 5 s. Measured with --offline (no
gateway to read here; reading one costs what `drift` costs, see bench_gateway.py).
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
    root = WORK / f"report-{options.partners}"
    shutil.rmtree(root, ignore_errors=True)
    write_estate(root, options.partners)
    results = {}
    for fmt in ("html", "json", "markdown", "junit"):
        out = WORK / f"report-{options.partners}.{fmt}"
        args = [GATEWAYCTL, "-q", "-p", str(root), "report", "--offline", "--state-dir", str(WORK / "no-state"),
                "--format", fmt, "-o", str(out)]
        runs = [timed_process(args) for _ in range(options.runs)]
        results[fmt] = {"median_s": round(statistics.median(t for t, _, _ in runs), 3), "exit": runs[0][1],
                        "peak_mib": round(max(m for _, _, m in runs) / 1024, 1),
                        "size_kib": round(Path(out).stat().st_size / 1024)}
    print(json.dumps({"partners": options.partners, **results}, indent=1))


if __name__ == "__main__":
    main()
