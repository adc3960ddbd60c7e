"""Property: over generated estates, the compiled ruleset accepts exactly the flows the grants allow.

The reference is computed straight from the generated profile data, not from the compiler's IR;
the compiled side is read back from the rendered nftables text.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayctl.pipeline import compile_profiles
from gatewayctl.render.artifacts import render_ruleset
from gatewayctl.render.environment import make_environment
from gatewayctl.synth import gateway_doc

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Flow:
    """A rectangle of flows: source net, destination net, protocol, port range (0-0 for icmp)."""

    src: Net
    dst: Net
    proto: str
    first: int
    last: int

    def holds(self, src: Any, dst: Any, proto: str, port: int) -> bool:
        return (src in self.src and dst in self.dst and proto == self.proto
                and (proto == "icmp" or self.first <= port <= self.last))


ports = st.integers(1, 65535)
port_specs = st.lists(st.tuples(ports, st.integers(0, 50)).map(lambda t: (t[0], min(65535, t[0] + t[1]))),
                      min_size=1, max_size=3)


@st.composite
def estates(draw: st.DrawFn) -> dict[str, Any]:
    services = {}
    for i in range(draw(st.integers(1, 5))):
        v6 = draw(st.booleans())
        prefix = draw(st.integers(120, 128) if v6 else st.integers(24, 32))
        base = ipaddress.ip_network(f"fd00:10::{i:x}00/{prefix}" if v6 else f"10.1.{i}.0/{prefix}", strict=False)
        proto = draw(st.sampled_from(["tcp", "udp", "icmp"]))
        spec = draw(port_specs)
        services[f"s{i}"] = {"owner": "o", "classification": "internal", "addresses": [str(base)], "protocol": proto,
                             "ports": [] if proto == "icmp" else [f"{a}-{b}" for a, b in spec]}
    partners = []
    for p in range(draw(st.integers(1, 4))):
        peers = [{"name": f"peer{k}", "public_key": base64.b64encode(bytes([p * 4 + k + 1]) * 32).decode(),
                  "addresses": [f"100.64.{p + 1}.{k + 1}/32", f"fd00:64::{p + 1:x}:{k + 1}/128"][: draw(st.integers(1, 2))],
                  "networks": [f"10.200.{p * 4 + k}.0/24"] if draw(st.booleans()) else []}
                 for k in range(draw(st.integers(1, 2)))]
        grants = []
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.sampled_from(sorted(services)))
            svc = services[name]
            grant: dict[str, Any] = {"service": name, "expires": draw(st.sampled_from(
                ["2026-11-30", "2026-12-01", "2027-06-30"]))}
            if svc["protocol"] != "icmp" and draw(st.booleans()):
                first, last = (int(x) for x in svc["ports"][0].split("-"))
                grant["ports"] = [first if first == last else f"{first}-{draw(st.integers(first, last))}"]
            families = {ipaddress.ip_network(a).version for a in svc["addresses"]}
            sources = {ipaddress.ip_network(a).version for peer in peers for a in peer["addresses"] + peer["networks"]}
            if families & sources:
                grants.append(grant)
        partners.append({"id": f"p{p}", "name": f"P{p}", "stage": "partner",
                         "contacts": [{"name": "n", "email": "n@p.example"}],
                         "agreement": {"reference": "r", "expires": "2027-12-31"}, "peers": peers, "grants": grants})
    return {"services": services, "partners": partners}


def reference_flows(estate: dict[str, Any]) -> list[Flow]:
    flows = []
    for partner in estate["partners"]:
        sources = [ipaddress.ip_network(a) for peer in partner["peers"] for a in peer["addresses"] + peer["networks"]]
        for grant in partner["grants"]:
            if dt.date.fromisoformat(grant["expires"]) < AT.date():
                continue
            svc = estate["services"][grant["service"]]
            specs = grant.get("ports", svc["ports"]) or ["0-0"]
            for spec in specs:
                first, last = (int(x) for x in str(spec).split("-")) if "-" in str(spec) else (int(spec), int(spec))
                for src in sources:
                    for dst in (ipaddress.ip_network(a) for a in svc["addresses"]):
                        if src.version == dst.version:
                            flows.append(Flow(src, dst, svc["protocol"], first, last))
    return flows


ELEMENT = re.compile(r"^\t\t\t(\S+) \. (\S+)(?: \. (\w+) \. (\d+)(?:-(\d+))?)?(?: timeout \S+)? comment \"[^\"]*\",?$")


def compiled_flows(ruleset: str) -> list[Flow]:
    flows = []
    for line in ruleset.splitlines():
        match = ELEMENT.match(line)
        if match:
            src, dst, proto, first, last = match.groups()
            lo = int(first) if first else 0
            flows.append(Flow(ipaddress.ip_network(src), ipaddress.ip_network(dst), proto or "icmp", lo,
                              int(last) if last else lo))
    return flows


def justified(flow: Flow, allowed: list[Flow]) -> bool:
    """The element's addresses lie inside grants of its protocol whose port ranges together cover its ports."""
    covering = sorted((r.first, r.last) for r in allowed if r.proto == flow.proto and r.src.version == flow.src.version
                      and flow.src.subnet_of(r.src) and flow.dst.subnet_of(r.dst))  # type: ignore[arg-type]
    reach = flow.first - 1
    for first, last in covering:
        if first <= reach + 1:
            reach = max(reach, last)
    return bool(covering) and reach >= flow.last


def probes(flows: list[Flow]) -> list[tuple[Any, Any, str, int]]:
    """Corner points of every flow rectangle and points just outside each edge."""
    points = []
    for f in flows:
        for src in (f.src.network_address, f.src.broadcast_address, f.src.network_address - 1,
                    f.src.broadcast_address + 1):
            for dst in (f.dst.network_address, f.dst.broadcast_address, f.dst.network_address - 1,
                        f.dst.broadcast_address + 1):
                for port in {f.first - 1, f.first, f.last, f.last + 1}:
                    for proto in ("tcp", "udp", "icmp"):
                        points.append((src, dst, proto, port))
    return points


def write_estate(root: Path, estate: dict[str, Any]) -> None:
    (root / "partners").mkdir(parents=True)
    (root / "gateway.yaml").write_text(json.dumps(gateway_doc()))
    (root / "services.yaml").write_text(json.dumps({"services": estate["services"]}))
    for partner in estate["partners"]:
        (root / "partners" / f"{partner['id']}.yaml").write_text(json.dumps(partner))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(estates())
def test_compiled_ruleset_accepts_exactly_the_granted_flows(estate: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_estate(Path(tmp), estate)
        policy = compile_profiles(Path(tmp), AT).policy
    ruleset = render_ruleset(policy, make_environment())
    allowed, compiled = reference_flows(estate), compiled_flows(ruleset)
    for flow in compiled:  # every compiled element lies inside the grants: nothing widened
        assert justified(flow, allowed), f"unjustified element {flow}"
    for point in probes(allowed + compiled):  # and the two agree on every boundary probe
        assert any(f.holds(*point) for f in compiled) == any(r.holds(*point) for r in allowed), point
