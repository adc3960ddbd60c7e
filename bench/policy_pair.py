"""One seed, two policies: a gatewayctl estate and the equivalent Aerleon policy, and parsers that
read the flows back out of both compiled rulesets (so the comparison is of equal work)."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gatewayctl.synth import write_estate  # noqa: E402

Flow = tuple[str, str, str, int]


def write_pair(root: Path, partners: int, seed: int = 1) -> dict[str, Any]:
    """The estate (constant-size ruleset: per_partner deny logging off) and the Aerleon policy."""
    profiles = write_estate(root / "profiles", partners, seed=seed, per_partner_logging=False)
    catalogue = yaml.safe_load((profiles / "services.yaml").read_text())["services"]
    gateway = yaml.safe_load((profiles / "gateway.yaml").read_text())
    networks: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for name, svc in catalogue.items():
        key = name.upper().replace("-", "_")
        networks[key] = {"values": [{"address": a} for a in svc["addresses"]]}
        services[f"{key}_PORT"] = [{"port": int(p), "protocol": svc["protocol"]} for p in svc["ports"]]
    terms, flows = [], set()
    last: Flow | None = None
    for path in sorted((profiles / "partners").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        source = doc["peers"][0]["addresses"][0]
        networks[doc["id"].upper()] = {"values": [{"address": source}]}
        for grant in doc["grants"]:
            svc = catalogue[grant["service"]]
            key = grant["service"].upper().replace("-", "_")
            terms.append({"name": f"{doc['id']}-{grant['service']}", "source-address": doc["id"].upper(),
                          "destination-address": key, "destination-port": f"{key}_PORT", "protocol": "tcp",
                          "action": "accept"})
            for port in svc["ports"]:
                flow = (_host(source), _host(svc["addresses"][0]), "tcp", int(port))
                flows.add(flow)
                last = flow
    aerleon = root / "aerleon"
    (aerleon / "def").mkdir(parents=True)
    (aerleon / "pol").mkdir()
    (aerleon / "def" / "networks.yaml").write_text(yaml.safe_dump({"networks": networks}))
    (aerleon / "def" / "services.yaml").write_text(yaml.safe_dump({"services": services}))
    policy = {"filters": [{"header": {"targets": {"nftables": "inet forward"}}, "terms": terms}]}
    (aerleon / "pol" / "partners.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return {"profiles": profiles, "aerleon": aerleon, "flows": flows, "last_flow": last,
            "interface": gateway["wireguard"]["interface"]}


def _host(network: str) -> str:
    return str(ipaddress.ip_network(network).network_address)


def _ports(text: str) -> list[int]:
    ports: list[int] = []
    for item in text.strip("{} ").split(","):
        first, _, last = item.strip().partition("-")
        ports += range(int(first), int(last or first) + 1)
    return ports


def gatewayctl_flows(ruleset: str) -> set[Flow]:
    """(source, destination, protocol, port) of every element of the grant sets (IPv4; single hosts)."""
    block = ruleset.split("set grants4 {", 1)[1].split("\n\t}", 1)[0]
    flows = set()
    for match in re.finditer(r"^\s*(\S+) \. (\S+) \. (tcp|udp) \. (\S+?)(?: timeout| comment|,|$)", block, re.M):
        for port in _ports(match.group(4)):
            flows.add((_host(match.group(1)), _host(match.group(2)), match.group(3), port))
    assert "accept" in ruleset.split("chain partner_in", 1)[1].split("@grants4", 1)[1].split("\n", 1)[0]
    return flows


def aerleon_flows(ruleset: str) -> set[Flow]:
    """The accept rules of Aerleon's nftables output: ip saddr X ip daddr Y tcp dport P ... accept."""
    assert "policy drop;" in ruleset  # everything else is denied
    flows = set()
    pattern = r"ip saddr (\{[^}]*\}|\S+) ip daddr (\{[^}]*\}|\S+) (tcp|udp) dport (\{[^}]*\}|\S+) .*accept"
    for match in re.finditer(pattern, ruleset):
        for src in match.group(1).strip("{} ").split(","):
            for dst in match.group(2).strip("{} ").split(","):
                for port in _ports(match.group(4)):
                    flows.add((_host(src.strip()), _host(dst.strip()), match.group(3), port))
    return flows
