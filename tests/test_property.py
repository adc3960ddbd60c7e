"""Property: over generated estates, the compiled ruleset loads into the kernel and accepts exactly
the flows the grants allow, each through one element that names every grant allowing it and stays
open until the latest of them ends.

Estates are drawn so that networks and port ranges overlap and touch: services share a small
address block and a narrow port band, grants narrow ports, partners hold several grants of one
service, and partner LANs sit next to each other. The reference is computed straight from the
generated profile data, not from the compiler's IR; the compiled side is read back from the
rendered nftables text, and every ruleset is checked by the kernel with `nft -c`.
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
from tests.test_intervals import nft_check

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Flow:
    """A rectangle of flows: source net, destination net, protocol, port range (0-0 for icmp); for a
    grant, its id and the seconds from AT until it ends; for an element, its grants and timeout."""

    src: Net
    dst: Net
    proto: str
    first: int
    last: int
    grants: frozenset[str] = frozenset()
    seconds: int | None = None

    def holds(self, src: Any, dst: Any, proto: str, port: int) -> bool:
        return (src in self.src and dst in self.dst and proto == self.proto
                and (proto == "icmp" or self.first <= port <= self.last))


ports = st.integers(8000, 8040)  # a narrow band: ranges of different services and grants overlap and touch
port_specs = st.lists(st.tuples(ports, st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1])), min_size=1, max_size=3)
EXPIRIES = ["2026-11-30", "2026-12-01", "2026-12-15", "2027-06-30", "2027-12-31", None]


@st.composite
def service_address(draw: st.DrawFn) -> str:
    """A network in a small shared block, so that services nest, overlap and sit side by side."""
    offset = draw(st.integers(0, 31))
    if draw(st.booleans()):
        return str(ipaddress.ip_network(f"10.1.0.{offset}/{draw(st.integers(27, 32))}", strict=False))
    return str(ipaddress.ip_network(f"fd00:10::{offset:x}/{draw(st.integers(123, 128))}", strict=False))


@st.composite
def estates(draw: st.DrawFn) -> dict[str, Any]:
    services = {}
    for i in range(draw(st.integers(1, 6))):
        proto = draw(st.sampled_from(["tcp", "tcp", "udp", "icmp"]))
        spec = draw(port_specs)
        services[f"s{i}"] = {"owner": "o", "classification": "internal",
                             "addresses": sorted(set(draw(st.lists(service_address(), min_size=1, max_size=2)))),
                             "protocol": proto, "ports": [] if proto == "icmp" else [f"{a}-{b}" for a, b in spec]}
    partners = []
    for p in range(draw(st.integers(1, 4))):
        peers: list[dict[str, Any]] = [{"name": f"peer{k}", "public_key": base64.b64encode(bytes([p * 4 + k + 1]) * 32).decode(),
                  "addresses": [f"100.64.{p + 1}.{k + 1}/32", f"fd00:64::{p + 1:x}:{k + 1}/128"][: draw(st.integers(1, 2))],
                  # LANs of one partner's peers and of the next partner are adjacent blocks
                  "networks": [f"203.0.113.{(p * 2 + k) * 16}/28", f"fd00:99:0:{p * 2 + k:x}::/64"][: draw(st.integers(0, 2))]}
                 for k in range(draw(st.integers(1, 2)))]
        agreement = draw(st.sampled_from(["2026-12-20", "2027-12-31"]))
        grants = []
        for _ in range(draw(st.integers(0, 5))):
            grant = _grant(draw, services, agreement)
            families = {ipaddress.ip_network(a).version for a in services[grant["service"]]["addresses"]}
            sources = {ipaddress.ip_network(a).version for peer in peers for a in peer["addresses"] + peer["networks"]}
            if families & sources:
                grants.append(grant)
        partners.append({"id": f"p{p}", "name": f"P{p}", "stage": "partner",
                         "contacts": [{"name": "n", "email": "n@p.example"}],
                         "agreement": {"reference": "r", "expires": agreement}, "peers": peers, "grants": grants})
    return {"services": services, "partners": partners}


def _grant(draw: st.DrawFn, services: dict[str, Any], agreement: str) -> dict[str, Any]:
    """A grant of a random service, maybe narrowed to parts of its port ranges, ending on or before the agreement."""
    name = draw(st.sampled_from(sorted(services)))
    svc = services[name]
    grant: dict[str, Any] = {"service": name}
    expires = draw(st.sampled_from([e for e in EXPIRIES if e is None or e <= agreement]))
    if expires is not None:
        grant["expires"] = expires
    if svc["protocol"] != "icmp" and draw(st.booleans()):
        narrowed = []
        for spec in draw(st.lists(st.sampled_from(svc["ports"]), min_size=1, max_size=2)):
            first, last = (int(x) for x in spec.split("-"))
            low = draw(st.integers(first, last))
            high = draw(st.integers(low, last))
            narrowed.append(low if low == high else f"{low}-{high}")
        grant["ports"] = narrowed
    return grant


def day_end(day: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time(), dt.UTC)


def reference_flows(estate: dict[str, Any]) -> list[Flow]:
    """Every grant in force as flow rectangles, with the grant's id (partner/service, `#n` for the
    n-th grant of a service in the file) and the seconds from AT until it ends."""
    flows = []
    for partner in estate["partners"]:
        sources = [ipaddress.ip_network(a) for peer in partner["peers"] for a in peer["addresses"] + peer["networks"]]
        counts: dict[str, int] = {}
        for grant in partner["grants"]:
            counts[grant["service"]] = n = counts.get(grant["service"], 0) + 1
            grant_id = f"{partner['id']}/{grant['service']}" + (f"#{n}" if n > 1 else "")
            ends = min(day_end(grant.get("expires") or partner["agreement"]["expires"]),
                       day_end(partner["agreement"]["expires"]))
            if ends <= AT:
                continue
            svc = estate["services"][grant["service"]]
            for spec in grant.get("ports", svc["ports"]) or ["0-0"]:
                first, last = (int(x) for x in str(spec).split("-")) if "-" in str(spec) else (int(spec), int(spec))
                for src in sources:
                    for dst in (ipaddress.ip_network(a) for a in svc["addresses"]):
                        if src.version == dst.version:
                            flows.append(Flow(src, dst, svc["protocol"], first, last, frozenset([grant_id]),
                                              int((ends - AT).total_seconds())))
    return flows


ELEMENT = re.compile(r"^\t\t\t(\S+) \. (\S+)(?: \. (\w+) \. (\d+)(?:-(\d+))?)?(?: timeout (\S+))? comment \"([^\"]*)\",?$")
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def compiled_flows(ruleset: str) -> list[Flow]:
    flows = []
    for line in ruleset.splitlines():
        match = ELEMENT.match(line)
        if match:
            src, dst, proto, first, last, timeout, comment = match.groups()
            lo = int(first) if first else 0
            seconds = sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)([dhms])", timeout)) if timeout else None
            flows.append(Flow(ipaddress.ip_network(src), ipaddress.ip_network(dst), proto or "icmp", lo,
                              int(last) if last else lo, frozenset(comment.split()), seconds))
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


def compiled_ruleset(estate: dict[str, Any], loaded_at: dt.datetime | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        write_estate(Path(tmp), estate)
        policy = compile_profiles(Path(tmp), AT).policy
    return render_ruleset(policy, make_environment(), loaded_at)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(estates())
def test_compiled_ruleset_accepts_exactly_the_granted_flows(estate: dict[str, Any]) -> None:
    # exact timeouts (as apply loads them): the seconds left at AT, so they compare with the grants' ends
    allowed, compiled = reference_flows(estate), compiled_flows(compiled_ruleset(estate, AT))
    for flow in compiled:  # every compiled element lies inside the grants: nothing widened
        assert justified(flow, allowed), f"unjustified element {flow}"
    for point in probes(allowed + compiled):  # and the two agree on every boundary probe
        granting = [r for r in allowed if r.holds(*point)]
        found = [f for f in compiled if f.holds(*point)]
        assert len(found) == (1 if granting else 0), (point, found)  # one element per flow: one counter
        if granting:
            assert found[0].grants == frozenset().union(*(r.grants for r in granting)), point
            assert found[0].seconds == max(r.seconds or 0 for r in granting), point  # the latest end


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(estate=estates())
def test_every_compiled_ruleset_loads_into_the_kernel(needs_root: None, estate: dict[str, Any]) -> None:
    for loaded_at in (None, AT):  # as built ahead (rounded timeouts) and as apply loads it
        result = nft_check(compiled_ruleset(estate, loaded_at))
        assert result.returncode == 0, result.stderr
