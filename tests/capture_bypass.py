"""Capture, for real, the `foreign` part of a host snapshot that tests/test_drift_bypass.py parses.

Run as root: `.venv/bin/python -m tests.capture_bypass` rewrites tests/cases/snapshots/bypass/foreign.json.
A fresh namespace gets a tun device named like the example estate's interface, a veth pair for the
services side, the tables of bypass.nft and the commands of iptables.txt; then RealHost's own
acquisition reads it. The root test in test_drift_bypass.py captures again and compares.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from gatewayctl.host import foreign
from gatewayctl.host.netns import enter, run_in_thread
from tests.netns import Namespace

HERE = Path(__file__).parent / "cases" / "snapshots" / "bypass"
IFNAME = "wg-partners"


def capture() -> dict[str, Any]:
    """The raw `foreign` entry RealHost acquires in a namespace holding bypass.nft and iptables.txt."""
    with Namespace.create("gwbp") as ns:
        ns.run("ip", "tuntap", "add", "dev", IFNAME, "mode", "tun")
        ns.run("ip", "link", "add", "svc0", "type", "veth", "peer", "name", "svc1")
        ns.run("nft", "-f", str(HERE / "bypass.nft"))
        for line in (HERE / "iptables.txt").read_text().splitlines():
            ns.run(*shlex.split(line))
        name = ns.name
        raw: dict[str, Any] = run_in_thread(lambda: enter(name), lambda: foreign.acquire(IFNAME, "gatewayctl"))
    return comparable(raw)


def comparable(raw: dict[str, Any]) -> dict[str, Any]:
    """Without the lines that name the tools' versions and the capture's time."""
    raw["nft"]["nftables"] = [i for i in raw["nft"]["nftables"] if "metainfo" not in i]
    for legacy in raw["legacy"].values():
        if legacy["save"]:
            legacy["save"] = "".join(ln + "\n" for ln in legacy["save"].splitlines() if not ln.startswith("#"))
    return raw


if __name__ == "__main__":
    (HERE / "foreign.json").write_text(json.dumps(capture(), indent=1, sort_keys=True) + "\n")
