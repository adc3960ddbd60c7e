"""bench/results.md from the results of compare.py."""

from __future__ import annotations

from typing import Any

TARGETS = """Targets (issue 8): compile at least 10x faster than Aerleon at 1,000 and 5,000 partners with at most
half its memory; kernel rules constant in N; new-connection cost at 5,000 partners within 10% of the
cost at 10 partners and within 20% of the no-ruleset floor."""


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value} MiB"


def _s(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def render(results: dict[str, Any]) -> str:
    v = results["versions"]
    lines = ["# Benchmark results", "",
             "Written by `make bench` (bench/compare.py); do not edit by hand.", "",
             f"- date: {v['date']}", f"- machine: {v['machine']}; kernel {v['kernel']}; {v['os']}",
             f"- versions: {v['gatewayctl']}; Aerleon {v['aerleon'].split('Version: ')[-1]}; Python {v['python']}; {v['nft']}",
             "", TARGETS, "",
             "## Control plane", "",
             "Whole processes, median of the runs; `gatewayctl build` and Aerleon's `aclgen` ran in turn (ours,",
             "theirs, ours, ...) so that the machine's speed changing during the measurement weighs on both alike.",
             "Memory: the largest max-RSS of the main process, and the peak of a memory cgroup holding the whole",
             "process tree (gatewayctl forks a helper that parses partner files on the second core; the cgroup",
             "counts it, and also the page cache a run fills). gatewayctl's estate and Aerleon's policy come from",
             "the same seed, and both compiled rulesets were parsed and found to allow exactly the same flows",
             "before anything was timed. plan, drift and the applies ran on a gateway namespace with wireguard-go",
             "(bench_gateway.py); diff between two git revisions (bench_diff.py).", "",
             "| partners | flows | validate | build | lint | test | plan | drift | diff | Aerleon compile | Aerleon / build "
             "| build max-RSS | Aerleon max-RSS | ratio | build tree peak | Aerleon tree peak | ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["control_plane"]:
        g, d = r["gateway"], r["diff"]
        ours_tree, theirs_tree = r["build"].get("tree_peak_mib"), r["aerleon_compile"].get("tree_peak_mib")
        lines.append(f"| {r['partners']} | {r['flows']} | {_s(r['validate']['median_s'])} | {_s(r['build']['median_s'])} | "
                     f"{_s(r['lint']['median_s'])} | {_s(r['test']['median_s'])} | {_s(g['plan_median_s'])} | "
                     f"{_s(g['drift_median_s'])} | {_s(d['median_s'])} | {_s(r['aerleon_compile']['median_s'])} | "
                     f"**{r['ratio_build_vs_aerleon']}x** | {r['build']['peak_mib']} MiB | "
                     f"{r['aerleon_compile']['peak_mib']} MiB | {r['memory_build_vs_aerleon']} | "
                     f"{_mib(ours_tree)} | {_mib(theirs_tree)} | {r.get('tree_memory_build_vs_aerleon', 'n/a')} |")
    runs = [r["build"].get("runs_s") for r in results["control_plane"]]
    if all(runs):
        lines += ["", "Every build and Aerleon run, in the order they ran (seconds):", ""]
        lines += [f"- {r['partners']} partners: build {r['build']['runs_s']}; Aerleon {r['aerleon_compile']['runs_s']}"
                  for r in results["control_plane"]]
    lines += ["", "## Output", "",
              "Each tool's ruleset loaded with `nft -f` into a fresh network namespace (median of 5 loads), then",
              "counted by the kernel (`nft -j list ruleset`).", "",
              "| partners | gatewayctl size | gatewayctl rules | gatewayctl load | Aerleon size | Aerleon rules | Aerleon load |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["control_plane"]:
        o, a = r["output"]["gatewayctl"], r["output"]["aerleon"]
        lines.append(f"| {r['partners']} | {o['size_kib']} KiB | {o['kernel_rules']} | {_s(o['load_median_s'])} | "
                     f"{a['size_kib']} KiB | {a['kernel_rules']} | {_s(a['load_median_s'])} |")
    lines += ["", "## Data plane", "",
              "One router namespace loaded in turn with each ruleset, a client namespace with the source address",
              "of the partner that is last in each policy, a server namespace. Time to open new TCP connections",
              "one after another through the router (each new flow is where rule evaluation happens; connections",
              "are closed with a reset so no TIME_WAIT piles up), median of the rounds; the floor is the same flow",
              "with no ruleset. The rounds interleave every ruleset and size, so the machine's speed changing",
              "during the run affects them alike.", ""
              "\"conntrack only\" is a ruleset that switches connection tracking on and accepts every new flow:",
              "the cost of being stateful, which both tools' rulesets pay (replies pass as established).",
              "A port the partner was not granted is probed too: `timeout` means the router dropped it.", "",
              "| partners | connections | no ruleset (floor) | conntrack only | gatewayctl | vs floor | vs conntrack "
              "| Aerleon | vs floor | vs conntrack | ungranted port: gatewayctl / Aerleon / none |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["data_plane"]:
        g, a, c, f = r["gatewayctl"], r["aerleon"], r["conntrack"], r["none"]
        lines.append(f"| {r['partners']} | {r['connections']} | {_s(f['median_s'])} ({f['per_connection_us']} µs each) | "
                     f"{_s(c['median_s'])} ({c['per_connection_us']} µs) | {_s(g['median_s'])} ({g['per_connection_us']} µs) | "
                     f"{g['vs_floor']} | {g['vs_conntrack']} | {_s(a['median_s'])} ({a['per_connection_us']} µs) | "
                     f"{a['vs_floor']} | {a['vs_conntrack']} | {g['ungranted_port']} / {a['ungranted_port']} / {f['ungranted_port']} |")
    dp = {r["partners"]: r for r in results["data_plane"]}
    if len(dp) >= 2:
        small, large = dp[min(dp)], dp[max(dp)]
        lines += ["", f"New-connection cost at {max(dp)} partners against {min(dp)}: gatewayctl "
                  f"{large['gatewayctl']['median_s'] / small['gatewayctl']['median_s']:.3f}x, Aerleon "
                  f"{large['aerleon']['median_s'] / small['aerleon']['median_s']:.3f}x (same router, same rounds)."]
    lines += ["", "## Apply", "", "On the gateway namespace (bench_gateway.py), whole processes:", "",
              "| partners | first apply | one-partner change (median) | touched |", "|---:|---:|---:|---|"]
    for r in results["control_plane"]:
        g = r["gateway"]
        lines.append(f"| {r['partners']} | {_s(g['first_apply_s'])} | {_s(g['one_partner_apply_median_s'])} | "
                     f"{len(g['one_partner_apply_touched'])} partners, one per run |")
    if "per_packet" in results:
        lines += per_packet(results["per_packet"])
    if "failover" in results:  # bench/bench_failover.py (issue 16)
        from bench.bench_failover import section

        lines += section(results["failover"])
    return "\n".join(lines) + "\n"


# (key, label, unit, scale): rates are higher-is-better, the connection time is lower-is-better
_TESTS = (("tcp_up", "one TCP stream, partner to service", "Gbit/s", 1e-9),
          ("tcp_down", "one TCP stream, service to partner", "Gbit/s", 1e-9),
          ("tcp_up_range", "one TCP stream, partner to service, a port-range grant (interval set)", "Gbit/s", 1e-9),
          ("udp_up", "64-byte UDP, partner to service", "kpps", 1e-3),
          ("udp_down", "64-byte UDP, service to partner", "kpps", 1e-3),
          ("connections", "new TCP connection", "µs each", 1e6))


def per_packet(section: dict[str, Any]) -> list[str]:
    """The section of bench/bench_dataplane.py and bench/bench_revoke.py (issue 13.7), with its own date."""
    lines = ["", f"## Every partner packet checked (issue 13), measured {section['date']}", "",
             "Written by bench/bench_dataplane.py (also part of `make bench`). \"old\" is the ruleset of commit",
             f"{section['old_ruleset']} (only a connection's first packet meets the grant sets: `ct state established,related",
             "accept` first), \"new\" today's (every packet from a partner is looked up in the grant sets, every packet",
             "toward a partner must be a reply of a granted flow), both built from the same synthetic estate with the",
             "measured flows granted to its last partner; \"none\" is the router with no ruleset at all (no connection",
             "tracking either). Partner, router and services namespaces joined by veths (the router's end toward the",
             "partner has the WireGuard interface's name); iperf3 from Debian. Medians of the rounds; each round ran",
             "the three rulesets of one size back to back (the order rotating) and the sizes in alternating order.",
             "The measured grants are single host-to-host-port hash-set elements, but for the port-range row (an",
             "interval-set element). UDP: datagrams per second out of the router (the",
             "receiving veth's counter; the one sender core is the limit). Connections: opened one after another.", "",
             "Ratios of the medians, and in brackets the median of the ratios within each round (paired: the",
             "rulesets of one size ran back to back, so a change in the machine's speed between rounds weighs less).",
             "For rates, below 1 is slower; for the connection time, above 1 is slower.", "",
             "| partners | test | none | old | new | new/old | old/none | new/none | rounds (new) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in section["data_plane"]:
        for key, label, unit, scale in _TESTS:
            if key == "connections":
                values = [row[m][key]["median"] * scale / row["connections"] for m in ("none", "old", "new")]
                rounds = [round(v * scale / row["connections"], 1) for v in row["new"][key]["rounds"]]
            else:
                values = [row[m][key]["median"] * scale for m in ("none", "old", "new")]
                rounds = [round(v * scale, 2 if unit == "Gbit/s" else 1) for v in row["new"][key]["rounds"]]
            digits = 2 if unit == "Gbit/s" else 1
            r, p = row["ratios"][key], row["paired"][key]
            lines.append(f"| {row['partners']} | {label} ({unit}) | " + " | ".join(f"{v:.{digits}f}" for v in values)
                         + f" | **{r['new/old']}** ({p['new/old']}) | {r['old/none']} ({p['old/none']}) | "
                         f"{r['new/none']} ({p['new/none']}) | {rounds} |")
    lines += ["", "Ungranted port (tcp, same partner and service): " + "; ".join(
        f"{r['partners']} partners: " + ", ".join(f"{m} {r[m]['ungranted_port']}" for m in ("none", "old", "new"))
        for r in section["data_plane"]) + "."]
    dp = {r["partners"]: r for r in section["data_plane"]}
    if len(dp) >= 2:
        small, large = dp[min(dp)], dp[max(dp)]
        growth = large["new"]["connections"]["median"] / small["new"]["connections"]["median"]
        lines += ["", f"New-connection cost with the new ruleset at {max(dp)} partners against {min(dp)}: {growth:.3f}x "
                  f"(target within 10%); against no ruleset at {max(dp)}: {large['ratios']['connections']['new/none']}x "
                  "(target within 20%)."]
    if "gateway" in section:
        lines += gateway_ops(section["gateway"])
    return lines


def gateway_ops(g: dict[str, Any]) -> list[str]:
    """revoke and one-partner apply on a gateway namespace, and where their time goes if over target."""
    listed = _s(g["one_partner_apply_listed_s"]) if "one_partner_apply_listed_s" in g else "not measured"
    measured = f", measured {g['date']} on its own" if "date" in g else ""
    lines = ["", f"### revoke and one-partner apply, {g['partners']} partners", "",
             f"Whole processes on a gateway namespace with wireguard-go (bench/bench_revoke.py{measured}), each run of a",
             f"different partner. Target: under {g['target_s']:g} s each."
             + (f" The machine ran the reference loop (bench/common.py REFERENCE_LOOP) in {g['reference_s']} s that day."
                if "reference_s" in g else ""), "",
             "| partners | first apply | one-partner apply, table listed | one-partner apply, table record (median) | runs "
             "| revoke (median) | runs |",
             "|---:|---:|---:|---:|---|---:|---|",
             f"| {g['partners']} | {_s(g['first_apply_s'])} | {listed} | "
             f"{_s(g['one_partner_apply_s']['median'])} | "
             f"{g['one_partner_apply_s']['runs']} | {_s(g['revoke_s']['median'])} | {g['revoke_s']['runs']} |"]
    for key, name in (("apply_profile", "apply"), ("revoke_profile", "revoke")):
        if key not in g:
            continue
        prof = g[key]
        lines += ["", f"Where {name}'s time goes (one more run under cProfile, main process, {prof['total_s']} s with the "
                  "profiler's overhead; seconds are cumulative):", ""]
        for caller, steps in prof["steps"].items():
            named = ", ".join(f"`{s['function'].split(':')[0].split('/')[-1]}:{s['function'].split('(')[-1].rstrip(')')}` "
                              f"{s['cumulative_s']}" for s in steps if s["cumulative_s"] >= 0.03)
            if named:
                lines.append(f"- `{caller.split('(')[-1].rstrip(')')}` ({caller.split(':')[0]}): {named}")
    return [*lines, ""]
