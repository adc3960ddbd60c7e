"""Overlapping grants compile to disjoint set elements that nft accepts, each naming every grant
behind it and open until the latest of them ends; a refused ruleset names the profile lines.

Expected values come from the test data: a point is allowed by the grants whose own networks and
ports hold it (worked out here), never by asking the compiler.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayctl.compile import nft as compile_nft
from gatewayctl.compile.intervals import cidrs, disjoint, sort_key
from gatewayctl.compile.ir import PortRange, SetElement
from gatewayctl.compile.origin import element_at, explain_refusal, grant_locator
from gatewayctl.pipeline import Compiled, compile_profiles
from gatewayctl.render.artifacts import render_ruleset
from gatewayctl.render.environment import element_text, exact_timeouts, make_environment
from gatewayctl.synth import gateway_doc
from gatewayctl.synth import write_estate as write_synth

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
V4 = ipaddress.IPv4Network


def nft_check(ruleset: str) -> subprocess.CompletedProcess[str]:
    """`nft -c -f` in a private network namespace: the kernel checks the batch, nothing is committed."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as handle:
        handle.write(ruleset)
        handle.flush()
        result = subprocess.run(["unshare", "--net", "nft", "-c", "-f", handle.name], capture_output=True, text=True,
                                check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout,
                                       result.stderr.replace(handle.name, "ruleset"))


# --- interval -> CIDR ----------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.sampled_from([4, 6]), st.data())
def test_cidrs_cover_exactly_the_interval_with_the_fewest_blocks(family: int, data: st.DataObject) -> None:
    width = 32 if family == 4 else 128
    first = data.draw(st.integers(0, (1 << width) - 1))
    last = data.draw(st.integers(first, min((1 << width) - 1, first + data.draw(st.sampled_from([0, 7, 300, 1 << 40])))))
    make = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    expected = [(int(n.network_address), n.prefixlen) for n in ipaddress.summarize_address_range(make(first), make(last))]
    assert cidrs(first, last, width) == expected


def test_cidrs_of_the_whole_space_is_one_block() -> None:
    assert cidrs(0, (1 << 32) - 1, 32) == [(0, 0)]


# --- splitting, on generated boxes ------------------------------------------------------------------

DAY = [None, dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
       dt.datetime(2027, 7, 1, tzinfo=dt.UTC)]
SOURCES = [V4("10.200.0.0/30"), V4("10.200.0.1/32"), V4("10.200.0.2/31"), V4("10.200.0.4/32")]  # nested on purpose


@st.composite
def element_sets(draw: st.DrawFn) -> list[SetElement]:
    """Elements over a small space where overlaps and adjacency are likely, sources nested or apart."""
    result = []
    for i in range(draw(st.integers(1, 8))):
        proto = draw(st.sampled_from(["tcp", "tcp", "udp", "icmp"]))
        dst = V4(f"10.30.1.{draw(st.integers(0, 15))}/{draw(st.integers(28, 32))}", strict=False)
        first = draw(st.integers(1, 20))
        ports = None if proto == "icmp" else PortRange(first, first + draw(st.integers(0, 10)))
        result.append(SetElement(4, draw(st.sampled_from(SOURCES)), dst, proto, ports, draw(st.sampled_from(DAY)),
                                 (f"g{i}",), draw(st.booleans()) if i % 3 == 0 else False))
    return result


def holds(e: SetElement, src: int, dst: int, proto: str, port: int, gated: bool) -> bool:
    """The test's own lookup: does element `e` hold this point?"""
    return (int(e.source.network_address) <= src <= int(e.source.broadcast_address)
            and int(e.destination.network_address) <= dst <= int(e.destination.broadcast_address)
            and e.protocol == proto and e.gated == gated and (e.ports is None or e.ports.first <= port <= e.ports.last))


def edges(e: SetElement) -> list[tuple[int, int, str, int, bool]]:
    """The corners of an element's box and the points just outside each face."""
    s0, s1 = int(e.source.network_address), int(e.source.broadcast_address)
    d0, d1 = int(e.destination.network_address), int(e.destination.broadcast_address)
    p0, p1 = (e.ports.first, e.ports.last) if e.ports else (0, 0)
    return [(s, d, e.protocol, p, e.gated) for s in (s0 - 1, s0, s1, s1 + 1) for d in (d0 - 1, d0, d1, d1 + 1)
            for p in (p0 - 1, p0, p1, p1 + 1)]


def latest_of(ends: list[dt.datetime | None]) -> dt.datetime | None:
    return None if None in ends else max(e for e in ends if e is not None)


@settings(max_examples=150, deadline=None)
@given(element_sets())
def test_split_pieces_are_disjoint_and_carry_the_grants_and_latest_end_of_every_point(elements: list[SetElement]) -> None:
    merged = {sort_key(e): e for e in elements}
    originals = list(merged.values())
    pieces = disjoint(merged)
    assert pieces == sorted(pieces, key=sort_key)
    for point in {p for e in originals + pieces for p in edges(e)}:
        covering = [e for e in originals if holds(e, *point)]
        found = [p for p in pieces if holds(p, *point)]
        assert len(found) == (1 if covering else 0), (point, found)  # no widening, no gap, no two elements
        if covering:
            assert set(found[0].grants) == {g for e in covering for g in e.grants}, point
            assert found[0].ends_at == latest_of([e.ends_at for e in covering]), point


def test_elements_that_do_not_overlap_come_back_as_they_were() -> None:
    src = V4("100.64.1.1/32")
    adjacent = [SetElement(4, src, V4("10.30.1.0/29"), "tcp", PortRange(8000, 8010), DAY[1], ("a",)),
                SetElement(4, src, V4("10.30.1.0/29"), "tcp", PortRange(8011, 8020), DAY[2], ("b",)),
                SetElement(4, src, V4("10.30.1.0/29"), "udp", PortRange(8000, 8020), DAY[2], ("c",)),
                SetElement(4, src, V4("10.30.1.8/29"), "tcp", PortRange(8000, 8010), DAY[2], ("d",)),
                SetElement(4, V4("100.64.1.2/32"), V4("10.30.1.0/29"), "tcp", PortRange(8000, 8010), DAY[2], ("e",))]
    out = disjoint({sort_key(e): e for e in adjacent})
    assert sorted(map(id, out)) == sorted(map(id, adjacent))


def test_the_issue_example_is_cut_into_six_pieces() -> None:
    src = V4("100.64.1.1/32")
    wide = SetElement(4, src, V4("10.30.1.0/29"), "tcp", PortRange(8000, 8010), DAY[1], ("p/db",))
    host = SetElement(4, src, V4("10.30.1.3/32"), "tcp", PortRange(8005, 8020), DAY[3], ("p/db-host",))
    out = [(e.key, e.grants, e.ends_at) for e in disjoint({sort_key(e): e for e in (wide, host)})]
    assert out == [
        ("100.64.1.1 . 10.30.1.0/31 . tcp . 8000-8010", ("p/db",), DAY[1]),
        ("100.64.1.1 . 10.30.1.2 . tcp . 8000-8010", ("p/db",), DAY[1]),
        ("100.64.1.1 . 10.30.1.3 . tcp . 8000-8004", ("p/db",), DAY[1]),
        ("100.64.1.1 . 10.30.1.3 . tcp . 8005-8010", ("p/db", "p/db-host"), DAY[3]),
        ("100.64.1.1 . 10.30.1.3 . tcp . 8011-8020", ("p/db-host",), DAY[3]),
        ("100.64.1.1 . 10.30.1.4/30 . tcp . 8000-8010", ("p/db",), DAY[1]),
    ]


# --- a whole estate: compile, load, and a refusal that names the grants ------------------------------------------------

SERVICES = {
    "db": {"owner": "o", "classification": "internal", "addresses": ["10.30.1.0/29"], "protocol": "tcp",
           "ports": ["8000-8010"]},
    "db-host": {"owner": "o", "classification": "internal", "addresses": ["10.30.1.3/32"], "protocol": "tcp",
                "ports": ["8005-8020"]},
    "ping-net": {"owner": "o", "classification": "internal", "addresses": ["10.30.1.0/29"], "protocol": "icmp"},
    "ping-host": {"owner": "o", "classification": "internal", "addresses": ["10.30.1.3/32"], "protocol": "icmp"},
}
GRANTS = [("db", "2027-01-31"), ("db-host", "2027-06-30"), ("ping-net", "2027-01-31"), ("ping-host", "2027-06-30")]


def overlap_estate(root: Path) -> Path:
    """One partner (a tunnel address and a LAN) holding grants that overlap, in block-style YAML."""
    (root / "partners").mkdir(parents=True)
    (root / "gateway.yaml").write_text(json.dumps(gateway_doc()))
    (root / "services.yaml").write_text(json.dumps({"services": SERVICES}))
    partner = {"id": "acme", "name": "ACME", "stage": "partner", "contacts": [{"name": "n", "email": "n@a.example"}],
               "agreement": {"reference": "r", "expires": "2027-12-31"},
               "peers": [{"name": "hq", "public_key": "Cde3Bv7UhN5UQF9/Zhf/gx3dDM8Pxtu7STKhSl6MoC4=",
                          "addresses": ["100.64.1.1/32"], "networks": ["203.0.113.0/24"]}],
               "grants": [{"service": s, "expires": e} for s, e in GRANTS]}
    (root / "partners" / "acme.yaml").write_text(yaml.safe_dump(partner, sort_keys=False))
    return root


def grant_lines(path: Path) -> dict[str, int]:
    """The line of each `- service: NAME` entry, read from the file the test wrote."""
    lines = path.read_text().splitlines()
    return {line.split(":", 1)[1].strip(): n for n, line in enumerate(lines, 1) if line.lstrip().startswith("- service:")}


def compiled(tmp_path: Path) -> Compiled:
    return compile_profiles(overlap_estate(tmp_path / "profiles"), AT)


def test_overlapping_grants_compile_to_pieces_with_the_right_grants_and_ends(tmp_path: Path) -> None:
    table = compiled(tmp_path).policy.table
    ends = {f"acme/{s}": dt.datetime.combine(dt.date.fromisoformat(e) + dt.timedelta(days=1), dt.time(), dt.UTC)
            for s, e in GRANTS}
    nets = {f"acme/{name}": V4(svc["addresses"][0]) for name, svc in SERVICES.items()}
    elements = table.grants4 + table.icmp4
    for src in (ipaddress.IPv4Address("100.64.1.1"), ipaddress.IPv4Address("203.0.113.77")):
        for dst in V4("10.30.1.0/28"):
            for proto, port in [("icmp", 0), *(("tcp", p) for p in range(7999, 8022))]:
                wanted = {g for g, net in nets.items() if dst in net and (SERVICES[g[5:]]["protocol"] == proto)
                          and (proto == "icmp" or _in_spec(port, SERVICES[g[5:]]["ports"][0]))}
                found = [e for e in elements if holds(e, int(src), int(dst), proto, port, False)]
                assert len(found) == (1 if wanted else 0), (src, dst, proto, port, found)
                if wanted:
                    assert set(found[0].grants) == wanted
                    assert found[0].ends_at == max(ends[g] for g in wanted)


def _in_spec(port: int, spec: str) -> bool:
    first, last = (int(x) for x in spec.split("-"))
    return first <= port <= last


def test_overlapping_grants_load_into_the_kernel(needs_root: None, tmp_path: Path) -> None:
    result = nft_check(render_ruleset(compiled(tmp_path).policy, make_environment()))
    assert result.returncode == 0, result.stderr


def test_a_refused_element_names_the_profile_lines_of_its_grants(needs_root: None, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The compiler as it was before splitting: identical keys merged, overlaps left in place.
    monkeypatch.setattr(compile_nft, "disjoint", lambda merged: [merged[k] for k in sorted(merged)])
    result = compiled(tmp_path)
    ruleset = render_ruleset(result.policy, make_environment())
    refused = nft_check(ruleset)
    assert refused.returncode != 0 and "File exists" in refused.stderr  # the bug this module fixes
    message = explain_refusal(refused.stderr.strip(), ruleset, result.policy.table,
                              grant_locator(result.estate, result.policy))
    path = tmp_path / "profiles" / "partners" / "acme.yaml"
    lines = grant_lines(path)
    shown = result.estate.partners[0].doc.shown_path
    assert f"grant acme/db-host ({shown}:{lines['db-host']})" in message, message
    assert f"grant acme/db ({shown}:{lines['db']})" in message, message  # the element it collides with


def test_a_refused_element_update_names_its_grants(needs_root: None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # apply's in-place path: an empty table, then `add element` commands (one a line, as apply writes them)
    monkeypatch.setattr(compile_nft, "disjoint", lambda merged: [merged[k] for k in sorted(merged)])
    result = compiled(tmp_path)
    table = result.policy.table
    empty = render_ruleset(dataclasses.replace(result.policy, table=table.without_elements()), make_environment())
    timeouts = exact_timeouts(AT)
    adds = [f"add element inet {table.name} ranges4 {{ {element_text(e, timeouts)} }}" for e in table.by_set()["ranges4"]
            if isinstance(e, SetElement)]
    text = empty + "\n".join(adds) + "\n"
    refused = nft_check(text)
    assert refused.returncode != 0 and "File exists" in refused.stderr
    message = explain_refusal(refused.stderr.strip(), text, table, grant_locator(result.estate, result.policy))
    lines = grant_lines(tmp_path / "profiles" / "partners" / "acme.yaml")
    shown = result.estate.partners[0].doc.shown_path
    assert "of set ranges4, from grant acme/" in message, message
    assert f"({shown}:{lines['db-host']})" in message and f"({shown}:{lines['db']})" in message, message


def test_element_at_finds_the_element_its_set_and_what_it_overlaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_nft, "disjoint", lambda merged: [merged[k] for k in sorted(merged)])
    result = compiled(tmp_path)
    ruleset = render_ruleset(result.policy, make_environment())
    lines = ruleset.splitlines()
    number = next(n for n, text in enumerate(lines, 1) if "10.30.1.3 . tcp . 8005-8020" in text and "203.0.113.0/24" in text)
    origin = element_at(ruleset, number, result.policy.table)
    assert origin is not None and origin.set_name == "ranges4" and origin.element.grants == ("acme/db-host",)
    assert [e.key for e in origin.overlapping] == ["203.0.113.0/24 . 10.30.1.0/29 . tcp . 8000-8010"]
    rule = next(n for n, text in enumerate(lines, 1) if "counter drop" in text)
    assert element_at(ruleset, rule, result.policy.table) is None
    assert explain_refusal(f"ruleset:{rule}:3-9: Error: x", ruleset, result.policy.table) == f"ruleset:{rule}:3-9: Error: x"


def test_estates_without_overlap_compile_to_the_same_elements_as_before(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_synth(tmp_path / "synth", 40, services=10, grants=4)
    now = compile_profiles(root, AT).policy.table
    monkeypatch.setattr(compile_nft, "disjoint", lambda merged: [merged[k] for k in sorted(merged)])
    before = compile_profiles(root, AT).policy.table
    assert now == before and len(now.grants4) == 160
