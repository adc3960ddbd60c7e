"""A continuous prober that keeps the time of every probe that passed, until SIGTERM:

    python -m tests.timed_prober '[{"src": ..., "dst": ..., "proto": "tcp", "port": 5432}, ...]'

Prints one JSON object: {"rounds": N, "passed_at": [[unix time the answer came, ...] per flow]}.
A probe passed when the lab's service answered through the gateway; each waits at most 0.3 s, so the
packet that passed crossed the gateway at most 0.3 s before its recorded time.
"""

from __future__ import annotations

import json
import sys
import time

from tests.prober import probe_until_stopped


def main() -> None:
    specs = json.loads(sys.argv[1])
    passed: list[list[float]] = [[] for _ in specs]

    def keep(index: int, _: float, ok: bool) -> None:
        if ok:
            passed[index].append(time.time())

    rounds = probe_until_stopped(specs, keep)
    print(json.dumps({"rounds": rounds, "passed_at": passed}), flush=True)


if __name__ == "__main__":
    main()
