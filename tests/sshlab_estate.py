"""The estate of the SSH lab (tests/sshlab.py), written from scratch with keys made at run time, and the
git helper the lab and its tests use. What the estate holds is described in tests/sshlab.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

GATEWAYS = ("gw-a", "gw-b", "gw-c")


def underlay(index: int) -> str:
    return f"192.0.2.{11 + index}"


def keypair() -> tuple[str, str]:
    """A WireGuard key pair (private, public), base64."""
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    return private, base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def keypair_public(private_file: Path) -> str:
    """The public key of a private key file (base64 in, base64 out)."""
    raw = base64.b64decode(private_file.read_text().strip())
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def gateway_keys(profiles: Path) -> dict[str, str]:
    doc = json.loads((profiles / "gateway.yaml").read_text())
    return {name: str(gw["wireguard"]["public_key"]) for name, gw in doc["gateways"].items()}


def wait_socket(ifname: str) -> None:
    for _ in range(100):
        if Path(f"/var/run/wireguard/{ifname}.sock").exists():
            return
        time.sleep(0.05)
    raise RuntimeError(f"wireguard-go did not start for {ifname}")


def _secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    path.chmod(0o600)


STAGES = {"established": {"description": "Agreement in force.", "max_services": 4,
                          "classifications": ["public", "internal"], "max_grant_days": 365}}


def _grant(service: str) -> dict[str, str]:
    return {"service": service, "justification": f"Test access to {service} (CHG-1).",
            "approved_by": "Test Owner (service owner)", "expires": "2027-09-30"}


def _partner(pid: str, gateways: Any, addresses: list[str], services: list[str], public_key: str) -> dict[str, Any]:
    return {"id": pid, "name": f"{pid.title()} Ltd", "stage": "established",
            "contacts": [{"name": "Ops", "email": f"ops@{pid}.example", "role": "technical"},
                         {"name": "Security", "email": f"security@{pid}.example", "role": "security"}],
            "agreement": {"reference": f"AGR-{pid}", "expires": "2027-12-31"}, "review_by": "2027-06-30",
            "gateways": gateways,
            "peers": [{"name": f"{pid}-hq", "public_key": public_key, "addresses": addresses, "keepalive": 25}],
            "grants": [_grant(s) for s in services]}


def write_estate(profiles: Path, keys: Path, ifnames: dict[str, str]) -> None:
    """The three-gateway estate described in the module docstring, with keys made now."""
    (profiles / "partners").mkdir(parents=True)
    (profiles / "tests").mkdir()
    gateways = {}
    for i, name in enumerate(GATEWAYS):
        private, public = keypair()
        _secret(keys / f"{name}.key", private)
        n = 201 + i
        gateways[name] = {"description": f"Test gateway {name}.",
                          "wireguard": {"interface": ifnames[name], "listen_port": 51820 + i, "addresses": [f"10.{n}.0.1/16"],
                                        "pool": [f"10.{n}.0.0/16"], "endpoint": f"{underlay(i)}:{51820 + i}",
                                        "public_key": public, "private_key_file": str(keys / f"{name}.key")},
                          "internal_networks": [f"10.{11 + i}.0.0/16"]}
    gateway = {"owner": "Network Engineering <netops@example.com>", "classifications": ["public", "internal", "confidential"],
               "stages": STAGES, "gateways": gateways}
    services = {f"app-{c}": {"description": f"Application {c}.", "owner": "Apps <apps@example.com>", "classification": "internal",
                             "addresses": [f"10.{11 + i}.0.5/32"], "protocol": "tcp", "ports": [443]}
                for i, c in enumerate("abc")}
    write_json(profiles / "gateway.yaml", gateway)
    write_json(profiles / "services.yaml", {"services": services})
    acme_private, acme_public = keypair()
    _secret(keys / "acme.key", acme_private)  # the partner side of the lab (SshLab.partner) uses it
    write_json(profiles / "partners" / "acme.yaml", _partner("acme", "all", ["10.201.1.1/32", "10.202.1.1/32", "10.203.1.1/32"],
                                                         ["app-a", "app-b", "app-c"], acme_public))
    write_json(profiles / "partners" / "globex.yaml", _partner("globex", ["gw-c"], ["10.203.2.1/32"], ["app-c"], keypair()[1]))
    tests = [{"name": f"acme reaches app-{c}", "partner": "acme", "can_reach": {"service": f"app-{c}"}} for c in "abc"]
    tests += [{"name": "globex reaches app-c", "partner": "globex", "can_reach": {"service": "app-c"}},
              {"name": "globex never reaches app-a", "partner": "globex", "cannot_reach": {"service": "app-a"}}]
    write_json(profiles / "tests" / "access.yaml", {"tests": tests})


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML: gatewayctl reads it with line numbers


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env, timeout=60).stdout.strip()
