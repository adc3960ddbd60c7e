"""A continuous prober for fail-closed tests: probes flows in turn until SIGTERM, then prints counts.

    python -m tests.prober '[{"src": ..., "dst": ..., "proto": "tcp", "port": 5432}, ...]'

Prints one JSON object: {"rounds": N, "passed": [count per flow]} (a flow passed when the lab's
service answered through the gateway). Each probe waits at most 0.3 s.
"""

from __future__ import annotations

import json
import signal
import sys

from gatewayctl.lab import probe

probe.TIMEOUT_S = 0.3
stop = False


def main() -> None:
    def end(*_: object) -> None:
        global stop
        stop = True

    signal.signal(signal.SIGTERM, end)
    specs = json.loads(sys.argv[1])
    passed = [0] * len(specs)
    rounds = 0
    while not stop:
        for index, spec in enumerate(specs):
            if probe.probe(spec):
                passed[index] += 1
        rounds += 1
    print(json.dumps({"rounds": rounds, "passed": passed}), flush=True)


if __name__ == "__main__":
    main()
