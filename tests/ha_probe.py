"""A continuous prober with timestamps, for the failover tests: probes each flow in turn until SIGTERM.

    python -m tests.ha_probe LOG '[{"src": ..., "dst": ..., "proto": "tcp", "port": 9001}, ...]'

Writes one line per probe to LOG: "<start> <end> <index> <1|0>" (unix times; 1: the lab's service
answered through the gateway). Each probe waits at most 0.3 s; a round of probes is spaced 0.1 s.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from gatewayctl.lab import probe

probe.TIMEOUT_S = 0.3
stop = False


def main() -> None:
    def end(*_: object) -> None:
        global stop
        stop = True

    signal.signal(signal.SIGTERM, end)
    log, specs = sys.argv[1], json.loads(sys.argv[2])
    with open(log, "a", buffering=1) as out:
        while not stop:
            for index, spec in enumerate(specs):
                start = time.time()
                ok = probe.probe(spec)
                out.write(f"{start:.3f} {time.time():.3f} {index} {int(ok)}\n")
            time.sleep(0.1)


if __name__ == "__main__":
    main()
