"""A test estate of two gateways, made from the example estate (tests/conftest.py PROFILES).

gw-fra-1 keeps the example's settings but fronts only 10.1.0.0/16 and fd00:1::/48; gw-dal-1 (pool
10.251.0.0/16, interface wg-dal) fronts 10.1.0.0/16 and 10.2.0.0/16. So, written out by hand:
- acme: gateways [gw-fra-1]: all its grants through fra;
- globex: gateways [gw-fra-1, gw-dal-1], peer addresses 10.250.2.1 and 10.251.2.1: crm-api (10.1.0.5)
  and file-drop (10.1.0.21) through fra (first in its order), erp-db (10.2.0.5) through dal (only dal
  fronts it);
- initech: gateways all, addresses 10.250.3.1 and 10.251.3.1: its grants through fra (first of all);
- umbrella: gateways [gw-fra-1].
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from gatewayctl.loader.yaml12 import read_document

DAL_KEY = "mA9ltJmdlOqkqMl2bUt1zlYYkbHsCTEcMZ6uLzCq1m8="  # a public key (of no private key kept anywhere)


def _doc(path: Path) -> Any:
    return read_document(path, path.name).data


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str))


def make_fleet(source: Path, target: Path) -> Path:
    """Copy the estate at `source` to `target` and turn it into the two-gateway estate above."""
    shutil.copytree(source, target)
    gateway = _doc(target / "gateway.yaml")
    fra = {k: gateway.pop(k) for k in ("description", "wireguard", "internal_networks")}
    gateway.pop("name")
    fra["internal_networks"] = ["10.1.0.0/16", "fd00:1::/48"]
    dal = {"description": "Partner access gateway, Dallas.",
           "wireguard": {**fra["wireguard"], "interface": "wg-dal", "listen_port": 51821,
                         "addresses": ["10.251.0.1/16"], "pool": ["10.251.0.0/16"],
                         "endpoint": "gw-dal-1.example.net:51821", "public_key": DAL_KEY,
                         "private_key_file": "/etc/gatewayctl/wg-dal.key"},
           "internal_networks": ["10.1.0.0/16", "10.2.0.0/16"]}
    gateway["gateways"] = {"gw-fra-1": fra, "gw-dal-1": dal}
    _write(target / "gateway.yaml", gateway)
    for partner, gateways, extra in (("acme", ["gw-fra-1"], None), ("globex", ["gw-fra-1", "gw-dal-1"], "10.251.2.1/32"),
                                     ("initech", "all", "10.251.3.1/32"), ("umbrella", ["gw-fra-1"], None)):
        path = target / "partners" / f"{partner}.yaml"
        doc = _doc(path)
        doc["gateways"] = gateways
        if extra:
            doc["peers"][0]["addresses"].append(extra)
        _write(path, doc)
    return target
