"""Every benchmark, side by side with Aerleon: control plane, output, data plane, apply.

    make bench                              # as root; writes bench/results.md and bench/results.json
    .venv/bin/python bench/compare.py [--runs 5] [--sizes 100,1000,5000] [--dataplane 10,5000]

Aerleon (PyPI `aerleon`) is installed into its own throwaway virtual environment under
bench/work/; it is never a dependency of gatewayctl and none of its code enters the project.

One seed makes both policies (bench/policy_pair.py): N partners, each a /32 source allowed 5 tcp
services out of a catalogue of 50 host:port pairs, everything else denied. Both compiled outputs
are parsed and their flow sets compared before anything is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import ENV, WORK, precompile, timed_process, tree_process  # noqa: E402
from bench.policy_pair import aerleon_flows, gatewayctl_flows, write_pair  # noqa: E402

precompile()
from bench.common import GATEWAYCTL  # noqa: E402

AERLEON_VERSION = "1.18.0"
AERLEON_VENV = WORK / "aerleon-venv"
AT = "2026-12-01"
# The cost of statefulness alone: connection tracking switched on, every new flow accepted. Both tools'
# rulesets are stateful (replies pass as established), so this is their floor too.
CONNTRACK_ONLY = """table inet ctfloor {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        ct state new accept
    }
}
"""


def aerleon() -> Path:
    """aclgen from a throwaway virtual environment (created on first use)."""
    aclgen = AERLEON_VENV / "bin" / "aclgen"
    if not aclgen.exists():
        subprocess.run([sys.executable, "-m", "venv", str(AERLEON_VENV)], check=True)
        subprocess.run([str(AERLEON_VENV / "bin" / "pip"), "install", "-q", f"aerleon=={AERLEON_VERSION}"], check=True)
    return aclgen


def compile_both(root: Path, pair: dict[str, Any]) -> tuple[Path, Path, list[str], list[str]]:
    """Build the gatewayctl estate and compile the Aerleon policy under `root`: (our ruleset, Aerleon's ruleset,
    the build command, the Aerleon command)."""
    build = [GATEWAYCTL, "-q", "-p", str(pair["profiles"]), "build", "-o", str(root / "out"), "--at", AT]
    compile_ = [str(aerleon()), "--base_directory", str(pair["aerleon"] / "pol"), "--definitions_directory",
                str(pair["aerleon"] / "def"), "--output_directory", str(root / "aerleon-out"), "--policy_file",
                str(pair["aerleon"] / "pol" / "partners.yaml"), "--logtostderr=false"]
    subprocess.run(build, check=True, env=ENV, capture_output=True)
    subprocess.run(compile_, check=True, capture_output=True)
    return root / "out" / "nftables" / "gatewayctl.nft", root / "aerleon-out" / "partners.nft", build, compile_


def median_run(args: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
    results = [timed_process(args) for _ in range(runs)]
    codes = {code for _, code, _ in results}
    assert codes <= set(ok), f"{args[:6]}... exited {codes}"
    return {"median_s": round(statistics.median(t for t, _, _ in results), 3),
            "peak_mib": round(max(m for _, _, m in results) / 1024, 1)}


def paired_runs(ours: list[str], theirs: list[str], runs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both tools run in turn (ours, theirs, ours, ...), so a change in the machine's speed during the
    measurement weighs on both alike; with the peak memory of each whole process tree too."""
    results: tuple[list[tuple[float, int, int, int | None]], list[tuple[float, int, int, int | None]]] = ([], [])
    for _ in range(runs):
        for args, found in zip((ours, theirs), results, strict=True):
            found.append(tree_process(args))
            assert found[-1][1] == 0, f"{args[:6]}... exited {found[-1][1]}"

    def summary(found: list[tuple[float, int, int, int | None]]) -> dict[str, Any]:
        trees = [tree for *_, tree in found if tree is not None]
        return {"median_s": round(statistics.median(t for t, *_ in found), 3), "runs_s": [round(t, 3) for t, *_ in found],
                "peak_mib": round(max(m for _, _, m, _ in found) / 1024, 1),
                "tree_peak_mib": round(max(trees) / 1024, 1) if trees else None}

    return summary(results[0]), summary(results[1])


def ns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, *args], capture_output=True, text=True, check=check)


def kernel(ruleset: Path, runs: int) -> dict[str, Any]:
    """Load a ruleset into fresh namespaces: median load time, and the rules the kernel holds."""
    times, rules = [], 0
    for _ in range(runs):
        name = f"gwc{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            start = time.perf_counter()
            ns(name, "nft", "-f", str(ruleset))
            times.append(time.perf_counter() - start)
            listing = json.loads(ns(name, "nft", "-j", "list", "ruleset").stdout)
            rules = sum(1 for item in listing["nftables"] if "rule" in item)
        finally:
            subprocess.run(["ip", "netns", "del", name], check=False)
    return {"load_median_s": round(statistics.median(times), 3), "kernel_rules": rules,
            "size_kib": round(ruleset.stat().st_size / 1024, 1)}


def control_plane(n: int, runs: int) -> dict[str, Any]:
    root = WORK / f"compare-{n}"
    shutil.rmtree(root, ignore_errors=True)
    pair = write_pair(root, n, seed=1)
    base = [GATEWAYCTL, "-q", "-p", str(pair["profiles"])]
    # the compiled outputs first: both must allow exactly the same flows
    ours_file, theirs_file, _, aerleon_args = compile_both(root, pair)
    ours, theirs = gatewayctl_flows(ours_file.read_text()), aerleon_flows(theirs_file.read_text())
    assert ours == theirs == pair["flows"], (len(ours), len(theirs), len(pair["flows"]))
    row: dict[str, Any] = {"partners": n, "flows": len(ours), "flow_sets_equal": True}
    row["validate"] = median_run([*base, "validate", "--at", AT], runs)
    build = [*base, "build", "-o", str(root / "out2"), "--at", AT]
    subprocess.run(build, check=True, env=ENV, capture_output=True)  # the output folder exists, as on a rebuild
    row["build"], row["aerleon_compile"] = paired_runs(build, aerleon_args, runs)
    row["lint"] = median_run([*base, "lint", "--at", AT], runs, ok=(0, 1))
    row["test"] = median_run([*base, "test", "--at", AT], runs)
    for name, script in (("gateway", "bench_gateway.py"), ("diff", "bench_diff.py")):
        result = subprocess.run([sys.executable, str(REPO / "bench" / script), "--partners", str(n), "--runs", str(runs)],
                                capture_output=True, text=True, env=ENV, check=True)
        row[name] = json.loads(result.stdout)
    row["ratio_build_vs_aerleon"] = round(row["aerleon_compile"]["median_s"] / row["build"]["median_s"], 1)
    row["memory_build_vs_aerleon"] = round(row["build"]["peak_mib"] / row["aerleon_compile"]["peak_mib"], 2)
    if row["build"]["tree_peak_mib"] and row["aerleon_compile"]["tree_peak_mib"]:
        row["tree_memory_build_vs_aerleon"] = round(row["build"]["tree_peak_mib"] / row["aerleon_compile"]["tree_peak_mib"], 2)
    row["output"] = {"gatewayctl": kernel(ours_file, runs), "aerleon": kernel(theirs_file, runs)}
    return row


def data_plane(sizes: list[int], rounds: int, connections: int) -> list[dict[str, Any]]:
    """One router namespace, loaded in turn with each ruleset (and with none), a client namespace
    holding the source address of the partner that is last in each policy, a server namespace: the
    time to open `connections` new TCP connections through the router. Rounds interleave every
    ruleset and size, so a change in the machine's speed affects them all alike."""
    flows: dict[int, tuple[str, str, int]] = {}
    rulesets: dict[tuple[int, str], Path | None] = {}
    interface = ""
    for n in sizes:
        root = WORK / f"dataplane-{n}"
        shutil.rmtree(root, ignore_errors=True)
        pair = write_pair(root, n, seed=1)
        ours_file, theirs_file, _, _ = compile_both(root, pair)
        src, dst, _, port = pair["last_flow"]
        flows[n] = (src, dst, port)
        interface = pair["interface"]
        (root / "conntrack-only.nft").write_text(CONNTRACK_ONLY)
        rulesets.update({(n, "none"): None, (n, "conntrack"): root / "conntrack-only.nft",
                         (n, "gatewayctl"): ours_file, (n, "aerleon"): theirs_file})
    token = secrets.token_hex(2)
    router, client, server = f"gwd{token}-r", f"gwd{token}-c", f"gwd{token}-s"
    names = [router, client, server]
    sinks: list[subprocess.Popen[str]] = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            ns(name, "ip", "link", "set", "lo", "up")
        # the client faces the router on the interface name the gatewayctl ruleset matches
        subprocess.run(["ip", "link", "add", "vc", "netns", client, "type", "veth", "peer", "name", interface,
                        "netns", router], check=True)
        subprocess.run(["ip", "link", "add", "vs", "netns", server, "type", "veth", "peer", "name", "vrs", "netns", router],
                       check=True)
        ns(client, "ip", "link", "set", "vc", "up")
        ns(client, "ip", "route", "add", "100.64.0.1/32", "dev", "vc")
        ns(client, "ip", "route", "add", "default", "via", "100.64.0.1")
        ns(router, "ip", "addr", "add", "100.64.0.1/32", "dev", interface)
        ns(router, "ip", "link", "set", interface, "up")
        ns(router, "ip", "addr", "add", "10.255.0.1/30", "dev", "vrs")
        ns(router, "ip", "link", "set", "vrs", "up")
        ns(router, "ip", "route", "add", "10.1.0.0/24", "via", "10.255.0.2")
        ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ns(server, "ip", "addr", "add", "10.255.0.2/30", "dev", "vs")
        ns(server, "ip", "link", "set", "vs", "up")
        ns(server, "ip", "route", "add", "default", "via", "10.255.0.1")
        for src, dst, port in set(flows.values()):
            ns(client, "ip", "addr", "add", f"{src}/32", "dev", "vc")
            ns(router, "ip", "route", "add", f"{src}/32", "dev", interface)
            if dst not in ns(server, "ip", "-4", "addr", "show", "dev", "lo").stdout:
                ns(server, "ip", "addr", "add", f"{dst}/32", "dev", "lo")
            sink = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, str(REPO / "bench" / "tcp_sink.py"),
                                    dst, str(port)], stdout=subprocess.PIPE, text=True)
            sinks.append(sink)
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        times: dict[tuple[int, str], list[float]] = {key: [] for key in rulesets}
        probes: dict[tuple[int, str], str] = {}
        for _ in range(rounds):
            for (n, mode), ruleset in rulesets.items():
                ns(router, "nft", "flush", "ruleset")  # the router namespace is ours alone
                if ruleset is not None:
                    ns(router, "nft", "-f", str(ruleset))
                src, dst, port = flows[n]
                out = ns(client, sys.executable, str(REPO / "bench" / "tcp_open.py"), dst, str(port), str(connections), src)
                times[(n, mode)].append(float(out.stdout))
                if (n, mode) not in probes:  # a port the partner was not granted
                    probes[(n, mode)] = ns(client, sys.executable, str(REPO / "bench" / "tcp_open.py"), dst, str(port + 1),
                                           "1", src, "--probe").stdout.strip()
        rows = []
        for n in sizes:
            src, dst, port = flows[n]
            row: dict[str, Any] = {"partners": n, "connections": connections, "rounds": rounds, "flow": f"{src} -> {dst}:{port}"}
            for mode in ("none", "conntrack", "gatewayctl", "aerleon"):
                median = statistics.median(times[(n, mode)])
                row[mode] = {"median_s": round(median, 4), "per_connection_us": round(1e6 * median / connections, 1),
                             "ungranted_port": probes[(n, mode)], "rounds_s": [round(t, 4) for t in times[(n, mode)]]}
            for mode in ("conntrack", "gatewayctl", "aerleon"):
                row[mode]["vs_floor"] = round(row[mode]["median_s"] / row["none"]["median_s"], 3)
                row[mode]["vs_conntrack"] = round(row[mode]["median_s"] / row["conntrack"]["median_s"], 3)
            rows.append(row)
        return rows
    finally:
        for sink in sinks:  # stopped by its PID
            sink.terminate()
            sink.wait(timeout=10)
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def versions() -> dict[str, str]:
    def out(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{cpu}, {os.cpu_count()} cores",
            "kernel": platform.release(), "os": out("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
            "python": platform.python_version(), "gatewayctl": out(GATEWAYCTL, "--version"),
            "aerleon": out(str(AERLEON_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('aerleon'))"),
            "nft": out("nft", "--version")}


def output_folder(folder: Path) -> None:
    """Create the results folder (and its parents) and prove it writable, before twenty minutes of
    measuring; exit 2 naming it when it cannot be. Returns nothing: the folder is then there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".compare-{os.getpid()}.tmp"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        print(f"compare.py: --output {str(folder)!r}: cannot write results there ({exc.strerror or exc})", file=sys.stderr)
        raise SystemExit(2) from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--dataplane", default="10,5000")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--per-packet-rounds", type=int, default=9, help="rounds of bench_dataplane.py (0: skip it)")
    parser.add_argument("--output", type=Path, default=REPO / "bench")
    options = parser.parse_args()
    output_folder(options.output)
    if os.geteuid() != 0:
        sys.exit("compare.py needs root (network namespaces, nftables, wireguard-go)")
    aerleon()
    results: dict[str, Any] = {"versions": versions(), "control_plane": [], "data_plane": []}
    for n in (int(s) for s in options.sizes.split(",") if s):
        print(f"control plane, {n} partners ...", file=sys.stderr)
        results["control_plane"].append(control_plane(n, options.runs))
    sizes = [int(s) for s in options.dataplane.split(",") if s]
    print(f"data plane, {sizes} partners ...", file=sys.stderr)
    results["data_plane"] = data_plane(sizes, options.runs, options.connections)
    if options.per_packet_rounds:  # issue 13: the cost of checking every partner packet; revoke and apply
        from bench.bench_dataplane import section

        results["per_packet"] = section(sizes, options.per_packet_rounds, 1, options.connections, max(sizes))
    from bench.results_md import render

    (options.output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (options.output / "results.md").write_text(render(results))
    print(f"wrote {options.output / 'results.md'} and results.json", file=sys.stderr)


if __name__ == "__main__":
    main()
