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
