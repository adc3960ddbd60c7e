"""A continuous prober for fail-closed tests: probes flows in turn until SIGTERM, then prints counts.

    python -m tests.prober '[{"src": ..., "dst": ..., "proto": "tcp", "port": 5432}, ...]'

Prints one JSON object: {"rounds": N, "passed": [count per flow]} (a flow passed when the lab's
service answered through the gateway). Each probe waits at most 0.3 s. `probe_until_stopped` is the
loop the other probers (tests/timed_prober.py, tests/ha_probe.py) share.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from gatewayctl.lab import probe

probe.TIMEOUT_S = 0.3


def probe_until_stopped(specs: list[dict[str, Any]], record: Callable[[int, float, bool], None], pause: float = 0.0) -> int:
    """Probe every flow in turn until SIGTERM; `record(index, start, passed)` after each probe (the
    answer came by time.time() at the call). Returns the number of rounds."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    rounds = 0
    while not stopping:
        for index, spec in enumerate(specs):
            start = time.time()
            record(index, start, probe.probe(spec))
        rounds += 1
        if pause:
            time.sleep(pause)
    return rounds


def main() -> None:
    specs = json.loads(sys.argv[1])
    passed = [0] * len(specs)

    def count(index: int, _: float, ok: bool) -> None:
        passed[index] += ok

    rounds = probe_until_stopped(specs, count)
    print(json.dumps({"rounds": rounds, "passed": passed}), flush=True)


if __name__ == "__main__":
    main()
