"""Reachability probes with real packets, run inside a namespace:

    python -m gatewayctl.lab.probe '[{"src": "10.250.1.1", "dst": "10.1.0.5", "proto": "tcp", "port": 443}]'

Prints one JSON list of booleans: did the service answer?
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

TIMEOUT_S = 2.0


def probe(spec: dict[str, Any]) -> bool:
    family = socket.AF_INET6 if ":" in spec["dst"] else socket.AF_INET
    proto = spec["proto"]
    if proto == "icmp":
        args = ["ping", "-c", "1", "-W", "1", "-I", spec["src"], spec["dst"]]
        return subprocess.run(args, capture_output=True, timeout=5).returncode == 0
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(TIMEOUT_S)
        try:
            sock.bind((spec["src"], 0))
            sock.connect((spec["dst"], int(spec["port"])))
            if proto == "udp":
                sock.send(b"probe")
            return sock.recv(64).startswith(b"gatewayctl-lab")
        except OSError:
            return False


def main() -> None:
    specs = json.loads(sys.argv[1])
    print(json.dumps([probe(s) for s in specs]))


if __name__ == "__main__":
    main()
