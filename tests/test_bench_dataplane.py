"""The per-packet benchmark's own logic (bench/bench_dataplane.py, bench/bench_revoke.py): the two
rulesets it compares are the kinds it says, the measured flows are granted to one partner only, its
ratios come from the rounds, and its profile reader finds a command's steps."""

from __future__ import annotations

import cProfile
import time
from pathlib import Path

import yaml

from bench.bench_dataplane import (
    BENCH_SERVICES,
    RANGE,
    SERVICE,
    SINK_PORT,
    Estate,
    grant_elements,
    old_templates,
    set_elements,
    summarise,
    write_bench_estate,
)
from bench.bench_revoke import hot_spots
from bench.results_md import per_packet
from tests.conftest import AT, run_cli


def test_old_and_new_rulesets_of_the_bench_estate(tmp_path: Path) -> None:
    profiles, source, interface = write_bench_estate(tmp_path, 12)
    assert (source, interface) == ("100.64.1.11", "wg-synth")  # partner 11 of synth's 100.64.1.0 + index
    granted = {p.stem for p in (profiles / "partners").glob("*.yaml")
               if "bench-udp" in {g["service"] for g in yaml.safe_load(p.read_text())["grants"]}}
    assert granted == {"p00011"}
    for name, extra in (("new", []), ("old", ["--templates", str(old_templates(tmp_path))])):
        result = run_cli("-q", "-p", str(profiles), "build", "-o", str(tmp_path / name), "--at", AT, *extra)
        assert result.exit_code == 0, result.output
    old, new = ((tmp_path / n / "nftables" / "gatewayctl.nft").read_text() for n in ("old", "new"))
    assert "ct state established,related accept" in old and "partner_out" not in old
    assert "ct state established" not in new and "chain partner_out" in new
    for text in (old, new):  # each measured flow is a hash-set element of its own (no range, no wider match)
        hashed = grant_elements(text)
        assert {e for e in hashed if SERVICE in e} == {f"{source} . {SERVICE} . {proto} . {port}"
                                                       for _, proto, port in BENCH_SERVICES}
        assert f"{source} . {SERVICE} . tcp . {RANGE}" in set_elements(text, "ranges4")
        assert f"{SERVICE} . tcp . {SINK_PORT}-" not in text and f"tcp . {SINK_PORT + 1}" not in text  # probed: ungranted


def test_ratios_are_of_medians_and_paired_rounds() -> None:
    def rounds(tcp: list[float], conn: list[float]) -> list[dict[str, float]]:
        return [{"tcp_up": t, "tcp_down": t, "tcp_up_range": t, "udp_up": t, "udp_down": t, "connections": c}
                for t, c in zip(tcp, conn, strict=True)]

    found = {(10, "none"): rounds([10.0, 20.0, 40.0], [1.0, 1.0, 1.0]),
             (10, "old"): rounds([10.0, 20.0, 40.0], [2.0, 2.0, 2.0]),
             (10, "new"): rounds([9.0, 20.0, 30.0], [2.0, 3.0, 2.0])}
    estate = Estate(10, "100.64.1.9", "wg-synth", {})
    row = summarise(estate, found, {(10, m): "timeout" for m in ("none", "old", "new")}, 3, 2, 100)
    assert row["new"]["tcp_up"]["median"] == 20.0
    assert row["ratios"]["tcp_up"]["new/old"] == 1.0  # 20 / 20
    assert row["paired"]["tcp_up"]["new/old"] == 0.9  # median of 0.9, 1.0, 0.75
    assert row["ratios"]["connections"]["new/none"] == 2.0
    text = "\n".join(per_packet({"date": "d", "old_ruleset": "abc", "data_plane": [row]}))
    assert "| 10 | new TCP connection (µs each) | 10000.0 | 20000.0 | 20000.0 | **1.0** (1.0) |" in text


def _inner() -> None:
    time.sleep(0.05)


def _outer() -> None:
    _inner()
    sum(range(1000))


def test_hot_spots_name_a_commands_steps(tmp_path: Path) -> None:
    profile = cProfile.Profile()
    profile.runcall(_outer)
    profile.dump_stats(str(tmp_path / "p.prof"))
    found = hot_spots(tmp_path / "p.prof", ("test_bench_dataplane.py(_outer)",))
    (caller, steps), = found["steps"].items()
    assert caller.endswith("(_outer)")
    assert steps[0]["function"].endswith("(_inner)") and steps[0]["cumulative_s"] >= 0.05
    assert found["total_s"] >= 0.05
