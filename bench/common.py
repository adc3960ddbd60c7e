"""What every benchmark shares: measure gatewayctl as installed, with bytecode caches.

A sandbox setting PYTHONDONTWRITEBYTECODE=1 would add the compilation of every module to every
start; pip compiles bytecode when it installs a package, so the benchmarks do too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
GATEWAYCTL = str(Path(sys.executable).parent / "gatewayctl")


def precompile() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "gatewayctl")], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)


def timed_process(args: list[str]) -> tuple[float, int, int]:
    """Run a whole process: (wall seconds, exit status, peak resident memory in KiB)."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss
