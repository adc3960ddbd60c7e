"""A continuous prober with timestamps, for the failover tests: probes each flow in turn until SIGTERM.

    python -m tests.ha_probe LOG '[{"src": ..., "dst": ..., "proto": "tcp", "port": 9001}, ...]'

Writes one line per probe to LOG: "<start> <end> <index> <1|0>" (unix times; 1: the lab's service
answered through the gateway). Each probe waits at most 0.3 s; a round of probes is spaced 0.1 s.
"""

from __future__ import annotations

import json
import sys
import time

from tests.prober import probe_until_stopped


def main() -> None:
    log, specs = sys.argv[1], json.loads(sys.argv[2])
    with open(log, "a", buffering=1) as out:
        def line(index: int, start: float, ok: bool) -> None:
            out.write(f"{start:.3f} {time.time():.3f} {index} {int(ok)}\n")

        probe_until_stopped(specs, line, pause=0.1)


if __name__ == "__main__":
    main()
