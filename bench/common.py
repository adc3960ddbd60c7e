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


# A fixed piece of plain Python, timed in a fresh interpreter: how fast this machine runs gatewayctl's
# kind of work on the day of a measurement. The machines here vary by two times or more from one day
# to the next, so a figure is read beside the reference of the same run.
REFERENCE_LOOP = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(10_000_000):\n    s += i\nprint(time.perf_counter() - t)"


def reference_s(runs: int = 5) -> float:
    """The median time of REFERENCE_LOOP over `runs` fresh interpreters, in seconds."""
    import statistics

    times = [float(subprocess.run([sys.executable, "-c", REFERENCE_LOOP], capture_output=True, text=True, check=True,
                                  env=ENV).stdout) for _ in range(runs)]
    return round(statistics.median(times), 3)


def timed_process(args: list[str]) -> tuple[float, int, int]:
    """Run a whole process: (wall seconds, exit status, peak resident memory in KiB)."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss


# The memory of a whole process tree (gatewayctl forks a parse helper): the peak of a memory cgroup
# made for the run. It counts what the kernel charged to the run, anonymous memory and the page cache
# it filled (files read for the first time, files written), where max-RSS counts one process's
# resident pages, shared library pages included.
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")
_CGROUP_V2 = Path("/sys/fs/cgroup")


def _cgroup_root() -> tuple[Path, str] | None:
    if (_CGROUP_V1 / "memory.max_usage_in_bytes").exists():
        return _CGROUP_V1, "memory.max_usage_in_bytes"
    controllers = _CGROUP_V2 / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return _CGROUP_V2, "memory.peak"
    return None


def tree_process(args: list[str]) -> tuple[float, int, int, int | None]:
    """Like timed_process, plus the peak memory of the process and its children in KiB (None without a
    memory cgroup to measure it in; needs root)."""
    import secrets
    import time

    found = _cgroup_root() if os.geteuid() == 0 else None
    if found is None:
        return (*timed_process(args), None)
    base, peak_file = found
    group = base / f"gatewayctl-bench-{secrets.token_hex(4)}"
    group.mkdir()
    try:
        def join() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, preexec_fn=join)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        return elapsed, os.waitstatus_to_exitcode(status), usage.ru_maxrss, int((group / peak_file).read_text()) // 1024
    finally:
        for _ in range(100):  # the kernel lets go of an emptied group a moment after its last process
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.01)
