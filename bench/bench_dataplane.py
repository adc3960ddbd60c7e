"""The cost of checking every partner packet (issue 13.7): bulk TCP, small-UDP packet rate and new
connections through a router namespace, for the ruleset before issue 13, the current one, and none.

    .venv/bin/python bench/bench_dataplane.py [--sizes 10,5000] [--rounds 9] [--seconds 1] [--write]

As root. "old" is the ruleset rendered by the template of commit 1a8c38a (its partner chain begins
with `ct state established,related accept`: only a connection's first packet meets the grant sets);
"new" is today's (every packet from a partner is looked up in the grant sets, every packet toward a
partner must be a reply of a granted flow). Both are compiled from the same synthetic estate
(gatewayctl/synth.py, as bench/compare.py builds it) with the flows under test granted to the
partner that is last in the estate, so its elements sit among all the others in the sets.

A partner namespace (the partner's tunnel address, on a veth whose router end has the name the
ruleset matches, as compare.py's data plane does: WireGuard is not what is measured), a router
namespace, a services namespace running iperf3 (Debian) and a TCP sink. Each round loads each
ruleset in turn (the order rotating from round to round) and runs: one TCP stream each way
(`iperf3 -t S`; and one to a port of a grant of a port range, whose element is in the interval
set rather than the hash set), 64-byte UDP datagrams each way as fast as the sender can (`-u -l 64 -b 0`,
counting the datagrams that arrive), and opening new TCP connections one after another
(bench/tcp_open.py). Medians over the rounds; --write adds them to bench/results.json under
"per_packet" and renders bench/results.md again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import ENV, GATEWAYCTL, WORK  # noqa: E402
from gatewayctl.synth import write_estate  # noqa: E402

OLD_COMMIT = "1a8c38a"
AT = "2026-12-01"
SERVICE = "10.1.1.1"  # inside the synthetic estate's internal networks, outside its catalogue (10.1.0.10-59)
IPERF_PORT, SINK_PORT, RANGE_PORT = 5201, 5202, 5210
# one port each: single host-to-host-port grants, in the hash sets like every grant of the synthetic estate
# (a port range would sit in the interval set, a different lookup)
BENCH_SERVICES = (("bench-tcp", "tcp", IPERF_PORT), ("bench-udp", "udp", IPERF_PORT), ("bench-conn", "tcp", SINK_PORT))
# and one grant of a port range (a second iperf3 listens on its first port): an interval-set element
RANGE = f"{RANGE_PORT}-{RANGE_PORT + 9}"
MODES = ("none", "old", "new")
TESTS = ("tcp_up", "tcp_down", "tcp_up_range", "udp_up", "udp_down", "connections")


@dataclass(frozen=True)
class Estate:
    partners: int
    source: str  # the tunnel address of the partner whose flows are measured
    interface: str
    rulesets: dict[str, Path | None]


def ns(name: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def old_templates(root: Path) -> Path:
    """A template folder holding the ruleset template of OLD_COMMIT (it overrides the built-in one by name)."""
    folder = root / "old-templates"
    (folder / "nftables").mkdir(parents=True, exist_ok=True)
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:templates/nftables/ruleset.nft.j2"],
                          capture_output=True, text=True, check=True).stdout
    (folder / "nftables" / "ruleset.nft.j2").write_text(text)
    return folder


def write_bench_estate(root: Path, n: int) -> tuple[Path, str, str]:
    """The synthetic estate plus a tcp service (iperf3's port and the sink's) and a udp one on SERVICE,
    granted to the last partner: (profiles, that partner's source address, the WireGuard interface)."""
    profiles = write_estate(root / "profiles", n, seed=1, per_partner_logging=False)
    catalogue = yaml.safe_load((profiles / "services.yaml").read_text())
    for name, protocol, port in (*BENCH_SERVICES, ("bench-range", "tcp", RANGE)):
        catalogue["services"][name] = {"owner": "Bench <bench@example.com>", "classification": "internal",
                                       "addresses": [f"{SERVICE}/32"], "protocol": protocol, "ports": [port]}
    (profiles / "services.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    last = profiles / "partners" / f"p{n - 1:05d}.yaml"
    doc = yaml.safe_load(last.read_text())
    doc["grants"] += [{"service": s, "justification": "bench", "approved_by": "bench", "expires": "2030-06-30"}
                      for s in (*(name for name, _, _ in BENCH_SERVICES), "bench-range")]
    last.write_text(yaml.safe_dump(doc, sort_keys=False))
    gateway = yaml.safe_load((profiles / "gateway.yaml").read_text())
    return profiles, doc["peers"][0]["addresses"][0].split("/")[0], gateway["wireguard"]["interface"]


def build_estate(n: int) -> Estate:
    """Both rulesets of one estate, each checked to be the kind it claims to be."""
    root = WORK / f"per-packet-{n}"
    shutil.rmtree(root, ignore_errors=True)
    profiles, source, interface = write_bench_estate(root, n)
    base = [GATEWAYCTL, "-q", "-p", str(profiles), "build", "--at", AT]
    subprocess.run([*base, "-o", str(root / "new")], check=True, env=ENV, capture_output=True)
    subprocess.run([*base, "-o", str(root / "old"), "--templates", str(old_templates(root))], check=True, env=ENV,
                   capture_output=True)
    new, old = (root / kind / "nftables" / "gatewayctl.nft" for kind in ("new", "old"))
    assert "ct state established,related accept" in old.read_text() and "partner_out" not in old.read_text()
    assert "ct state established" not in new.read_text() and "chain partner_out" in new.read_text()
    for path in (new, old):  # the measured flows are elements of the hash sets, not matched by something wider
        hashed = grant_elements(path.read_text())
        assert all(f"{source} . {SERVICE} . {proto} . {port}" in hashed for _, proto, port in BENCH_SERVICES), path
        assert f"{source} . {SERVICE} . tcp . {RANGE}" in set_elements(path.read_text(), "ranges4"), path
    return Estate(n, source, interface, {"none": None, "old": old, "new": new})


def grant_elements(ruleset: str) -> set[str]:
    """The elements of set grants4 (the hash set of single host-to-host-port grants), without options."""
    return set_elements(ruleset, "grants4")


def set_elements(ruleset: str, name: str) -> set[str]:
    """The elements of a set of concatenated keys in a rendered ruleset, without their options."""
    block = ruleset.split(f"set {name} {{", 1)[1].split("\n\t}", 1)[0]
    return {line.strip().split(" timeout")[0].split(" comment")[0].rstrip(",") for line in block.splitlines()
            if " . " in line}


@dataclass(frozen=True)
class Lab:
    router: str
    partner: str
    services: str


@contextmanager
def lab(estates: list[Estate]) -> Iterator[Lab]:
    """Three namespaces wired partner - router - services, iperf3 and the sink running; removed after."""
    token = secrets.token_hex(3)
    names = Lab(f"gwp{token}-r", f"gwp{token}-p", f"gwp{token}-s")
    servers: list[subprocess.Popen[str]] = []
    try:
        for name in (names.router, names.partner, names.services):
            subprocess.run(["ip", "netns", "add", name], check=True)
            ns(name, "ip", "link", "set", "lo", "up")
        _wire(names, estates)
        for port in (IPERF_PORT, RANGE_PORT):
            servers.append(subprocess.Popen(["ip", "netns", "exec", names.services, "iperf3", "-s", "-B", SERVICE, "-p",
                                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        sink = subprocess.Popen(["ip", "netns", "exec", names.services, sys.executable, str(REPO / "bench" / "tcp_sink.py"),
                                 SERVICE, str(SINK_PORT)], stdout=subprocess.PIPE, text=True)
        servers.append(sink)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        yield names
    finally:
        for server in servers:  # stopped by PID
            server.terminate()
            server.wait(timeout=10)
        for name in (names.router, names.partner, names.services):
            subprocess.run(["ip", "netns", "del", name], check=False)


def _wire(names: Lab, estates: list[Estate]) -> None:
    interface = estates[0].interface
    assert all(e.interface == interface for e in estates)
    subprocess.run(["ip", "link", "add", "vp", "netns", names.partner, "type", "veth", "peer", "name", interface,
                    "netns", names.router], check=True)
    subprocess.run(["ip", "link", "add", "vs", "netns", names.services, "type", "veth", "peer", "name", "vrs",
                    "netns", names.router], check=True)
    ns(names.partner, "ip", "link", "set", "vp", "up")
    ns(names.partner, "ip", "route", "add", "100.64.0.1/32", "dev", "vp")
    ns(names.partner, "ip", "route", "add", "default", "via", "100.64.0.1")
    for address, dev in (("100.64.0.1/32", interface), ("10.255.0.1/30", "vrs")):
        ns(names.router, "ip", "addr", "add", address, "dev", dev)
        ns(names.router, "ip", "link", "set", dev, "up")
    ns(names.router, "ip", "route", "add", "10.1.0.0/16", "via", "10.255.0.2")
    ns(names.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    ns(names.services, "ip", "addr", "add", "10.255.0.2/30", "dev", "vs")
    ns(names.services, "ip", "link", "set", "vs", "up")
    ns(names.services, "ip", "addr", "add", f"{SERVICE}/32", "dev", "lo")
    ns(names.services, "ip", "route", "add", "default", "via", "10.255.0.1")
    for estate in estates:
        ns(names.partner, "ip", "addr", "add", f"{estate.source}/32", "dev", "vp")
        ns(names.router, "ip", "route", "add", f"{estate.source}/32", "dev", interface)


def load(names: Lab, ruleset: Path | None) -> None:
    ns(names.router, "nft", "flush", "ruleset")  # the router namespace is ours alone
    if ruleset is not None:
        ns(names.router, "nft", "-f", str(ruleset))


def iperf(names: Lab, source: str, seconds: int, udp: bool, reverse: bool, port: int = IPERF_PORT) -> float:
    """One iperf3 test from the partner: bits per second received (TCP), or datagrams per second that
    came out of the router (UDP: the receiving end's veth counter, which counts what the router forwarded
    even when the receiving iperf3 cannot keep up and its socket drops some)."""
    args = ["iperf3", "-c", SERVICE, "-p", str(port), "-B", source, "-t", str(seconds), "--json"]
    args += ["-u", "-l", "64", "-b", "0"] if udp else []
    far = (names.partner, "vp") if reverse else (names.services, "vs")
    before = rx_packets(*far)
    result = json.loads(ns(names.partner, *args, *(["-R"] if reverse else []), timeout=seconds + 30).stdout)
    end = result["end"]
    if not udp:
        return float(end["sum_received"]["bits_per_second"])
    return (rx_packets(*far) - before) / float(end["sum_sent"]["seconds"])


def rx_packets(name: str, device: str) -> int:
    return int(ns(name, "cat", f"/sys/class/net/{device}/statistics/rx_packets").stdout)


def connections(names: Lab, source: str, count: int) -> float:
    """Seconds to open `count` new TCP connections one after another."""
    out = ns(names.partner, sys.executable, str(REPO / "bench" / "tcp_open.py"), SERVICE, str(SINK_PORT), str(count), source)
    return float(out.stdout)


def probe(names: Lab, source: str) -> str:
    """A port the partner was not granted: open, refused or timeout (dropped)."""
    return ns(names.partner, sys.executable, str(REPO / "bench" / "tcp_open.py"), SERVICE, str(SINK_PORT + 1), "1",
              source, "--probe").stdout.strip()


def one_round(names: Lab, estate: Estate, mode: str, seconds: int, count: int) -> dict[str, float]:
    load(names, estate.rulesets[mode])
    return {"tcp_up": iperf(names, estate.source, seconds, udp=False, reverse=False),
            "tcp_down": iperf(names, estate.source, seconds, udp=False, reverse=True),
            "tcp_up_range": iperf(names, estate.source, seconds, udp=False, reverse=False, port=RANGE_PORT),
            "udp_up": iperf(names, estate.source, seconds, udp=True, reverse=False),
            "udp_down": iperf(names, estate.source, seconds, udp=True, reverse=True),
            "connections": connections(names, estate.source, count)}


def measure(sizes: list[int], rounds: int, seconds: int, count: int) -> list[dict[str, Any]]:
    """Rows per size: per mode and test the median and every round, the ratios new/old, old/none, new/none."""
    estates = [build_estate(n) for n in sizes]
    found: dict[tuple[int, str], list[dict[str, float]]] = {(e.partners, m): [] for e in estates for m in MODES}
    probes: dict[tuple[int, str], str] = {}
    with lab(estates) as names:
        for index in range(rounds):
            # the rulesets of one size run back to back (their ratios are taken per round), in an order
            # that rotates from round to round, and the sizes alternate, so none is always first or last
            modes = MODES[index % len(MODES):] + MODES[:index % len(MODES)]
            for estate in estates if index % 2 == 0 else estates[::-1]:
                for mode in modes:
                    found[(estate.partners, mode)].append(one_round(names, estate, mode, seconds, count))
                    probes.setdefault((estate.partners, mode), probe(names, estate.source))
    return [summarise(e, found, probes, rounds, seconds, count) for e in estates]


def summarise(estate: Estate, found: dict[tuple[int, str], list[dict[str, float]]], probes: dict[tuple[int, str], str],
              rounds: int, seconds: int, count: int) -> dict[str, Any]:
    n = estate.partners
    row: dict[str, Any] = {"partners": n, "rounds": rounds, "seconds": seconds, "connections": count,
                           "flow": f"{estate.source} -> {SERVICE} " + ", ".join(f"{p}/{n}" for _, p, n in BENCH_SERVICES)}
    for mode in MODES:
        runs = found[(n, mode)]
        row[mode] = {test: {"median": statistics.median(r[test] for r in runs), "rounds": [r[test] for r in runs]}
                     for test in TESTS}
        row[mode]["ungranted_port"] = probes[(n, mode)]
    pairs = (("new", "old"), ("old", "none"), ("new", "none"))
    for test in TESTS:
        # for connections the value is a time (lower is better); for the others a rate (higher is better).
        # "ratios": of the medians; "paired": the median of the ratios within each round, which a change in
        # the machine's speed between rounds (others share its two cores) moves less
        row.setdefault("ratios", {})[test] = {f"{a}/{b}": round(row[a][test]["median"] / row[b][test]["median"], 3)
                                              for a, b in pairs}
        row.setdefault("paired", {})[test] = {
            f"{a}/{b}": round(statistics.median(x / y for x, y in zip(row[a][test]["rounds"], row[b][test]["rounds"],
                                                                      strict=True)), 3) for a, b in pairs}
    return row


def write(per_packet: dict[str, Any], output: Path) -> None:
    """Add the section to results.json (other keys as they were) and render results.md from it."""
    from bench.results_md import render

    results = json.loads((output / "results.json").read_text())
    results.update(per_packet=per_packet)
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (output / "results.md").write_text(render(results))


def section(sizes: list[int], rounds: int, seconds: int, count: int, gateway: int) -> dict[str, Any]:
    """The whole measurement, dated: the data plane at `sizes`, then revoke and apply at `gateway` partners."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"per-packet data plane, {sizes} partners ...", file=sys.stderr)
    found: dict[str, Any] = {"date": date, "old_ruleset": OLD_COMMIT, "data_plane": measure(sizes, rounds, seconds, count)}
    if gateway:
        from bench.bench_revoke import gateway_ops

        print(f"revoke and one-partner apply, {gateway} partners ...", file=sys.stderr)
        found["gateway"] = gateway_ops(gateway, runs=3, profile=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,5000")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--gateway", type=int, default=5000, help="partners for revoke and apply (0: skip)")
    parser.add_argument("--write", action="store_true", help="add the results to bench/results.json and results.md")
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_dataplane.py needs root (network namespaces, nftables)")
    if shutil.which("iperf3") is None:
        sys.exit("bench_dataplane.py needs iperf3 (Debian package iperf3; setup.sh installs it)")
    sizes = [int(s) for s in options.sizes.split(",") if s]
    per_packet = section(sizes, options.rounds, options.seconds, options.connections, options.gateway)
    print(json.dumps(per_packet, indent=1))
    if options.write:
        write(per_packet, REPO / "bench")


if __name__ == "__main__":
    main()
