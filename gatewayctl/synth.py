"""Synthetic estates for benchmarks and tests: N partners with K grants over a service catalogue.

Deterministic for a seed. Keys are random 32-byte values (public keys only; nothing secret).
"""

from __future__ import annotations

import base64
import ipaddress
import random
from pathlib import Path
from typing import Any

import yaml

GATEWAY_KEY = base64.b64encode(bytes(range(1, 33))).decode()


def gateway_doc(per_partner_logging: bool = True) -> dict[str, Any]:
    return {
        "name": "gw-synth",
        "wireguard": {
            "interface": "wg-synth", "listen_port": 51820,
            "addresses": ["100.64.0.1/10", "fd00:64::1/64"], "pool": ["100.64.0.0/10", "fd00:64::/64"],
            "endpoint": "gw.example.net:51820", "public_key": GATEWAY_KEY,
            "private_key_file": "/etc/gatewayctl/wg-synth.key",
        },
        # 10.128.0.0/9 stays outside: generated partner LANs (tests/test_property.py) live there
        "internal_networks": ["10.0.0.0/9", "fd00:10::/48"],
        "classifications": ["public", "internal", "confidential", "restricted"],
        "stages": {"partner": {"classifications": ["public", "internal", "confidential", "restricted"]}},
        "deny_logging": {"per_partner": per_partner_logging},
    }


def services_doc(count: int, rng: random.Random) -> dict[str, Any]:
    services = {}
    for index in range(count):
        host = ipaddress.IPv4Address("10.1.0.0") + index + 10
        services[f"svc-{index:03d}"] = {
            "owner": "Platform <platform@example.com>",
            "classification": rng.choice(["public", "internal", "confidential", "restricted"]),
            "addresses": [f"{host}/32"],
            "protocol": "tcp",
            "ports": [rng.choice([22, 443, 1433, 3306, 5432, 8080, 8443, 9000])],
        }
    return {"services": services}


def partner_doc(index: int, services: list[str], grants: int, rng: random.Random) -> dict[str, Any]:
    address = ipaddress.IPv4Address("100.64.0.0") + 256 + index
    return {
        "id": f"p{index:05d}",
        "name": f"Partner {index}",
        "stage": "partner",
        "contacts": [{"name": "NOC", "email": f"noc@p{index}.example"}],
        "agreement": {"reference": f"AGR-{index}", "expires": "2030-12-31"},
        "peers": [{
            "name": "site", "public_key": base64.b64encode(rng.randbytes(32)).decode(),
            "addresses": [f"{address}/32"],
        }],
        "grants": [
            {"service": name, "justification": "synthetic", "approved_by": "bench", "expires": "2030-06-30"}
            for name in rng.sample(services, grants)
        ],
    }


def write_estate(root: Path, partners: int, services: int = 50, grants: int = 5, seed: int = 1,
                 per_partner_logging: bool = True) -> Path:
    """Write a synthetic estate under `root` in block-style YAML and return `root`."""
    rng = random.Random(seed)
    (root / "partners").mkdir(parents=True, exist_ok=True)
    (root / "gateway.yaml").write_text(_dump(gateway_doc(per_partner_logging)))
    catalogue = services_doc(services, rng)
    (root / "services.yaml").write_text(_dump(catalogue))
    names = sorted(catalogue["services"])
    for index in range(partners):
        doc = partner_doc(index, names, grants, rng)
        (root / "partners" / f"{doc['id']}.yaml").write_text(_dump(doc))
    return root


def _dump(doc: dict[str, Any]) -> str:
    # Every string is quoted so that no reader, YAML 1.1 or 1.2, can reinterpret it.
    return yaml.safe_dump(doc, sort_keys=False, default_style=None, allow_unicode=True)
