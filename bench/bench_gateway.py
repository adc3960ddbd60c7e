"""Benchmark: plan, drift and apply on a gateway namespace with N partners (one peer each).

    .venv/bin/python bench/bench_gateway.py [--partners 1000] [--runs 5]

Needs root, nftables and wireguard-go. Targets (issue 4) at 1,000 partners: plan and drift under
1 s; apply of a change to one partner under 1 s, touching only that partner's peer; a first full
apply under 10 s. Whole processes; medians of --runs runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat  # noqa: E402

from bench.common import ENV, WORK, precompile  # noqa: E402
from gatewayctl.host.wgtypes import public_of  # noqa: E402
from gatewayctl.synth import write_estate  # noqa: E402

precompile()


def timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start, result


def gateway_estate(root: Path, partners: int, token: str) -> Path:
    """A synthetic estate under `root` (emptied first) for a gateway namespace: a private key generated
    now (0600), the WireGuard interface named wgb<token> (unique on the machine). Returns the profiles."""
    shutil.rmtree(root, ignore_errors=True)
    profiles = write_estate(root / "profiles", partners)
    key = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    keyfile = root / "gateway.key"
    keyfile.write_text(base64.b64encode(key).decode() + "\n")
    os.chmod(keyfile, 0o600)
    gateway = json.loads(json.dumps(__import__("yaml").safe_load((profiles / "gateway.yaml").read_text())))
    gateway["wireguard"].update(interface=f"wgb{token}", public_key=public_of(key), private_key_file=str(keyfile))
    (profiles / "gateway.yaml").write_text(json.dumps(gateway))
    return profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    token = secrets.token_hex(3)
    root = WORK / f"gateway-{options.partners}"
    profiles = gateway_estate(root, options.partners, token)
    ns, state = f"gwb{token}", root / "state"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    base = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(profiles)]
    host = ["--netns", ns, "--state-dir", str(state)]
    try:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                        "net.ipv6.conf.all.forwarding=1"], check=True)
        first, result = timed([*base, "apply", *host, "--yes"])
        assert result.returncode == 0, result.stderr
        plans = [timed([*base, "plan", *host]) for _ in range(options.runs)]
        assert all(r.returncode == 0 for _, r in plans), plans[0][1].stdout
        drifts = [timed([*base, "drift", *host]) for _ in range(options.runs)]
        assert all(r.returncode == 0 for _, r in drifts), drifts[0][1].stdout
        changes = []
        for run in range(options.runs):
            partner = profiles / "partners" / f"p{run:05d}.yaml"
            doc = __import__("yaml").safe_load(partner.read_text())
            doc["peers"][0]["keepalive"] = 20
            doc["grants"] = doc["grants"][1:]
            partner.write_text(json.dumps(doc))
            elapsed, result = timed([*base, "apply", *host, "--yes"])
            assert result.returncode == 0, result.stderr
            touched = {line.split()[2].split("/")[0].rstrip(":") for line in result.stdout.splitlines() if line[:2] in ("+ ", "- ", "~ ")}
            changes.append((elapsed, touched))
        rows = {
            "partners": options.partners,
            "first_apply_s": round(first, 3),
            "plan_median_s": round(statistics.median(t for t, _ in plans), 3),
            "drift_median_s": round(statistics.median(t for t, _ in drifts), 3),
            "one_partner_apply_median_s": round(statistics.median(t for t, _ in changes), 3),
            "one_partner_apply_touched": sorted(set().union(*(t for _, t in changes))),
        }
        print(json.dumps(rows, indent=1))
    finally:
        pidfile = state / f"wireguard-go-wgb{token}.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
