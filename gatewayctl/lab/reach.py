"""What should and should not get through, probed with real packets from each partner namespace."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from gatewayctl.compile.ir import CompiledPolicy, GrantIR, PartnerIR


@dataclass(frozen=True)
class Probe:
    peer: str
    ns: str
    src: str
    dst: str
    proto: str
    port: int
    expect: bool
    why: str

    def spec(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "proto": self.proto, "port": self.port}


def host_of(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address if net.prefixlen == net.max_prefixlen else next(net.hosts()))


def _flow(grant: GrantIR, version: int) -> tuple[str, int] | None:
    dst = next((d for d in grant.destinations if d.version == version), None)
    return (host_of(dst), grant.ports[0].first if grant.ports else 0) if dst else None


Catalogue = dict[str, tuple[str, str, int, int]]  # service -> (destination host, protocol, port, address family)


def plan_probes(policy: CompiledPolicy, lab_peers: list[dict[str, Any]], gateway_address: str,
                catalogue: Catalogue) -> list[Probe]:
    """Granted flows (must work) and the classic ways around a grant (must fail), per lab peer."""
    probes = []
    for lp in lab_peers:
        partner = policy.partner(lp["partner"])
        assert partner is not None
        tunnel = ipaddress.ip_network(lp["tunnel"][0])
        src = host_of(tunnel)
        label = f"{lp['partner']}/{lp['name']}"
        probes += _granted(partner, label, lp["ns"], src, tunnel.version)
        probes += _denied(policy, partner, label, lp["ns"], src, tunnel.version, gateway_address)
        for excluded in partner.excluded:
            dst, proto, port, family = catalogue[excluded.service]
            if family == tunnel.version:
                probes.append(Probe(label, lp["ns"], src, dst, proto, port, False, f"{excluded.service}: {excluded.reason}"))
        for net in lp["networks"]:
            lan_src = host_of(ipaddress.ip_network(net))
            probes += _granted(partner, f"{label} (LAN)", lp["ns"], lan_src, 4)[:1]
    return probes


def _granted(partner: PartnerIR, label: str, ns: str, src: str, version: int) -> list[Probe]:
    """Granted flows work; a partner whose grants wait for a smart-card session has none open yet."""
    found = []
    gated = partner.certificates is not None and partner.certificates.session_seconds is not None
    for grant in partner.grants:
        flow = _flow(grant, version)
        if flow:
            found.append(Probe(label, ns, src, flow[0], grant.protocol, flow[1], not gated,
                               f"granted by {grant.id}" + (", closed until a smart-card session opens" if gated else "")))
    return found


def _denied(policy: CompiledPolicy, partner: PartnerIR, label: str, ns: str, src: str, version: int,
            gateway_address: str) -> list[Probe]:
    found = [Probe(label, ns, src, gateway_address, "tcp", 22, False, "the gateway itself")]
    tcp = next((g for g in partner.grants if g.protocol == "tcp" and _flow(g, version)), None)
    if tcp:
        dst, _ = _flow(tcp, version)  # type: ignore[misc]
        found.append(Probe(label, ns, src, dst, "tcp", 2222, False, f"a port not granted on {tcp.service}'s host"))
    granted_dsts = {host_of(d) for g in partner.grants for d in g.destinations}
    for other in policy.partners:
        if other.id == partner.id:
            continue
        grant = next((g for g in other.grants if _flow(g, version) and _flow(g, version)[0] not in granted_dsts), None)  # type: ignore[index]
        if grant:
            dst, port = _flow(grant, version)  # type: ignore[misc]
            found.append(Probe(label, ns, src, dst, grant.protocol, port, False, f"{other.id}'s grant {grant.id}"))
            spoofed = next((s for s in other.peers[0].tunnel_addresses if s.version == version), None)
            if spoofed is not None:
                found.append(Probe(label, ns, host_of(spoofed), dst, grant.protocol, port, False,
                                   f"spoofing {other.id}'s address {host_of(spoofed)}"))
            break
    return found


def run(probes: list[Probe]) -> list[tuple[Probe, bool]]:
    """Run the probes, one process per namespace; spoofed sources are added to the namespace first."""
    results: list[tuple[Probe, bool]] = []
    for ns in dict.fromkeys(p.ns for p in probes):
        batch = [p for p in probes if p.ns == ns]
        for probe in {p.src for p in batch} - _own_addresses(ns):
            subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{probe}/32", "dev", "lo"], check=False,
                           capture_output=True)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "gatewayctl.lab.probe",
                              json.dumps([p.spec() for p in batch])], capture_output=True, text=True, check=True, timeout=300)
        results += list(zip(batch, json.loads(out.stdout), strict=True))
    return results


def _own_addresses(ns: str) -> set[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, "ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    return {a["local"] for link in json.loads(out) for a in link.get("addr_info", [])}
