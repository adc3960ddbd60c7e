"""The table record (apply/tablerecord.py): apply and plan plan against the state folder's record of
gatewayctl's table instead of listing it, only while the kernel's nftables generation proves the table
unchanged since.

The reference is always the kernel itself: a plan computed from the record must be the plan computed
from a fresh listing (the same command with the record file moved away), and what a hand change opens
is probed with real packets until an apply closes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.apply.tablerecord import FILE, load
from gatewayctl.host import nftrecord
from gatewayctl.host.nftstate import NftChain, NftSet, NftTableState
from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab

ACME = "10.250.1.1"
BY_HAND = f"{ACME} . 10.1.0.20 . tcp . 443"  # acme reaches 10.1.0.20 on port 22 only (edi-sftp)


# pure: the record's encoding ------------------------------------------------------------------------

def table(elements: dict[str, int | None], comments: dict[str, str] | None = None) -> NftTableState:
    expires = {k: v for k, v in elements.items() if v is not None}
    sets = {"grants4": NftSet("grants4", "set", ("ipv4_addr",), ("timeout",), frozenset(elements), {}, expires, comments or {})}
    return NftTableState("gatewayctl", sets, {"fwd": NftChain("fwd", "forward", 0, "drop", ("r1", "r2"))})


def test_a_record_decodes_as_the_listing_would_show_it_later() -> None:
    state = table({"a": 100, "b": None, "c": 5}, {"a": "acme/crm", "c": "acme/old"})
    data = nftrecord.encode(state, listed_at=1000.0)
    assert nftrecord.decode(data, 1000.0) == state
    later = nftrecord.decode(data, 1010.0)  # c ended at 1005: the kernel dropped it
    assert later.sets["grants4"].elements == {"a", "b"} and later.sets["grants4"].expires == {"a": 90}
    assert later.sets["grants4"].comments == {"a": "acme/crm"} and later.chains == state.chains
    assert nftrecord.decode(data, 1100.0).sets["grants4"].elements == {"b"}  # a's end is not after 1100


def test_a_record_follows_an_element_change() -> None:
    data = nftrecord.encode(table({"a": 100, "b": None, "c": 5}), listed_at=1000.0)
    after = nftrecord.changed(data, {"grants4": ["b"]}, {"grants4": [("d", 1500.0, "initech/erp"), ("e", None, None)]}, 1008.0)
    state = nftrecord.decode(after, 1010.0).sets["grants4"]
    assert state.elements == {"a", "d", "e"} and state.expires == {"a": 90, "d": 490} and state.comments == {"d": "initech/erp"}
    assert "c" not in after["sets"][0][4]  # ended before the change: not kept
    with pytest.raises(KeyError):
        nftrecord.changed(data, {"grants6": ["x"]}, {}, 1008.0)
    with pytest.raises(ValueError, match="version"):
        nftrecord.decode({**data, "version": 0}, 1000.0)


def test_a_damaged_record_file_is_not_used(tmp_path: Path) -> None:
    (tmp_path / FILE).write_bytes(b"not marshal")
    assert load(tmp_path) is None
    import marshal

    (tmp_path / FILE).write_bytes(marshal.dumps({"generation": "x", "record": {}}))
    assert load(tmp_path) is None


# real nftables, in the lab --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("record") / "lab", PROFILES) as handle:
        yield handle


def read_by_last_apply(lab: LabHandle) -> str:
    """How the last apply read the table: from the "record", or "listed"."""
    entries = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
    return str([e for e in entries if e["event"] == "applied"][-1]["table_read"])


def plan_json(lab: LabHandle, *extra: str) -> dict[str, Any]:
    result = lab.ctl("plan", "--format", "json", *extra)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def plan_by_listing(lab: LabHandle, *extra: str) -> dict[str, Any]:
    """The plan from a fresh listing of the table: the same command with the record moved away."""
    record = lab.state / FILE
    aside = lab.state / "record-aside"
    if record.exists():
        shutil.move(record, aside)
    try:
        return plan_json(lab, *extra)
    finally:
        if aside.exists():
            shutil.move(aside, record)


def comparable(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k not in ("generated_at", "now")}


def nft(lab: LabHandle, command: str) -> None:
    subprocess.run(["ip", "netns", "exec", lab.gw, "nft", command], check=True)


def record_matches_the_kernel(lab: LabHandle) -> None:
    """The record, decoded now, is what `nft -j list table` shows (element timers within 2 s)."""
    script = ("import json,sys,time;from pathlib import Path;from gatewayctl.apply.tablerecord import load;"
              "from gatewayctl.host import nft,nftrecord;from gatewayctl.host.nftstate import parse_table;"
              f"r=load(Path({str(lab.state)!r}));t=time.time();"
              "live=parse_table(nft.list_json('list table inet gatewayctl'),'gatewayctl');mine=nftrecord.decode(r['record'],t);"
              "print(json.dumps({'equal':live==mine,'timers':max([abs(s.expires[k]-mine.sets[n].expires.get(k,-99)) "
              "for n,s in live.sets.items() for k in s.expires] or [0]),"
              "'comments':all(s.comments==mine.sets[n].comments for n,s in live.sets.items() if n not in ('seen4','seen6'))}))")
    out = subprocess.run(["ip", "netns", "exec", lab.gw, sys.executable, "-c", script], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found == {"equal": True, "timers": found["timers"], "comments": True} and found["timers"] <= 2, found


def test_after_an_element_change_the_record_is_the_table_and_the_next_apply_uses_it(lab: LabHandle) -> None:
    assert lab.ctl("apply", "--yes").returncode == 0  # after the lab's first apply (a whole table): listed, then recorded
    assert (lab.state / FILE).exists()
    with lab.edited("acme", lambda doc: doc["grants"].pop()):
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0 and "- firewall acme" in result.stdout, result.stdout + result.stderr
        assert read_by_last_apply(lab) == "record"
        record_matches_the_kernel(lab)
        assert comparable(plan_json(lab)) == comparable(plan_by_listing(lab))
    assert read_by_last_apply(lab) == "record"  # edited() put the grant back with an apply
    record_matches_the_kernel(lab)
    drift = lab.ctl("drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr


def test_a_grant_added_by_hand_is_seen_and_closed_by_the_next_apply(lab: LabHandle) -> None:
    assert lab.ctl("apply", "--yes").returncode == 0 and (lab.state / FILE).exists()
    assert not lab.reach("acme", "10.1.0.20", 443)
    nft(lab, f'add element inet gatewayctl grants4 {{ {BY_HAND} comment "by hand" }}')
    assert lab.reach("acme", "10.1.0.20", 443), "the element added by hand should open the flow (else this test proves nothing)"
    plan = plan_json(lab)
    assert comparable(plan) == comparable(plan_by_listing(lab))
    assert {"sign": "-", "detail": f"{ACME} -> 10.1.0.20 tcp/443"} in [{"sign": c["sign"], "detail": c["detail"]}
                                                                   for c in plan["changes"]], plan["changes"]
    result = lab.ctl("apply", "--yes")
    assert result.returncode == 0, result.stderr
    assert read_by_last_apply(lab) == "listed"  # the generation moved: the record was not believed
    assert not lab.reach("acme", "10.1.0.20", 443)
    record_matches_the_kernel(lab)


def test_a_commit_by_someone_else_during_an_apply_drops_the_record(lab: LabHandle) -> None:
    assert lab.ctl("apply", "--yes").returncode == 0 and (lab.state / FILE).exists()
    with lab.edited("acme", lambda doc: doc["grants"].pop()):
        command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "apply", "--yes",
                   "--netns", lab.gw, "--state-dir", str(lab.state)]
        proc = subprocess.Popen(command, env={**os.environ, "GATEWAYCTL_FAILPOINT": "after-peers:sleep=3"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        time.sleep(1.5)  # the apply has read the table and narrowed it; someone else commits meanwhile
        nft(lab, f'add element inet gatewayctl grants4 {{ {BY_HAND} comment "by hand" }}')
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert not (lab.state / FILE).exists(), "the apply cannot vouch for a table someone else changed"
        assert lab.reach("acme", "10.1.0.20", 443)  # this apply did not know of it
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0 and read_by_last_apply(lab) == "listed", result.stderr
        assert not lab.reach("acme", "10.1.0.20", 443)
    record_matches_the_kernel(lab)


def test_an_element_that_ends_while_nothing_runs_leaves_the_record_as_the_kernel_does(lab: LabHandle) -> None:
    """After a kernel timeout ran out with nothing running, the plan from the record is the plan from a
    listing: the record drops the element when the kernel does."""
    today = dt.datetime.now(dt.UTC).date()
    end = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), dt.UTC)  # the end of a grant expiring tomorrow

    def expire(doc: dict[str, Any]) -> None:
        for g in doc["grants"]:
            if g["service"] == "crm-api":
                g["expires"] = (end - dt.timedelta(days=1)).date().isoformat()

    assert lab.ctl("apply", "--yes").returncode == 0
    with lab.edited("acme", expire):
        result = lab.ctl("apply", "--yes", "--at", (end - dt.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert (lab.state / FILE).exists() and read_by_last_apply(lab) == "record", result.stdout
        time.sleep(6)  # the element's timer ran out in the kernel
        from_record = plan_json(lab)
        assert comparable(from_record) == comparable(plan_by_listing(lab))
        assert any(c["sign"] == "+" and c["detail"].startswith(f"{ACME} -> 10.1.0.5 tcp/443") for c in from_record["changes"]), \
            from_record["changes"]
        record_matches_the_kernel(lab)


def test_a_revocation_keeps_the_record_true_and_the_next_apply_keeps_it_closed(lab: LabHandle) -> None:
    assert lab.ctl("apply", "--yes").returncode == 0 and (lab.state / FILE).exists()
    assert lab.reach("acme", "10.1.0.5", 443)
    host = ["--netns", lab.gw, "--state-dir", str(lab.state)]
    result = lab.ctl("revoke", "acme", "--reason", "test: record", *host)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (lab.state / FILE).exists(), "revoke knows exactly what it changed"
    record_matches_the_kernel(lab)
    assert not lab.reach("acme", "10.1.0.5", 443)
    result = lab.ctl("apply", "--yes")
    assert result.returncode == 0 and read_by_last_apply(lab) == "record", result.stdout + result.stderr
    assert not lab.reach("acme", "10.1.0.5", 443)
    assert comparable(plan_json(lab)) == comparable(plan_by_listing(lab))
    assert lab.ctl("revoke", "--lift", "acme", *host).returncode == 0
    assert lab.ctl("apply", "--yes").returncode == 0
    assert lab.reach("acme", "10.1.0.5", 443)
    record_matches_the_kernel(lab)


def test_apply_format_json_reports_the_plan_it_carried_out_and_the_outcome(lab: LabHandle) -> None:
    """`apply --format json` (what the Ansible module reads): one object on stdout, the plan it carried out."""
    assert lab.ctl("apply", "--yes").returncode == 0
    with lab.edited("acme", lambda doc: doc["grants"].pop()):
        result = lab.ctl("apply", "--yes", "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["format"] == "gatewayctl-apply/1" and report["outcome"] == "applied"
        assert report["applied_changes"] == len(report["plan"]["changes"]) > 0
        assert [c["subject"] for c in report["plan"]["changes"] if c["area"] == "firewall"] == ["acme"]
        assert any(m.startswith("applied ") for m in report["messages"])
        again = json.loads(lab.ctl("apply", "--yes", "--format", "json").stdout)
        assert again["outcome"] == "nothing-to-do" and again["plan"]["changes"] == [] and again["applied_changes"] == 0
    with lab.edited("acme", lambda doc: doc["grants"].pop()):
        broken = lab.ctl("apply", "--yes", "--format", "json", env={"GATEWAYCTL_FAILPOINT": "after-peers:raise"})
        report = json.loads(broken.stdout)
        assert broken.returncode == 1 and report["outcome"] == "failed" and report["applied_changes"] == 0, broken.stderr
        assert report["plan"]["changes"] and "apply failed" in broken.stderr


def test_an_apply_planned_from_the_record_that_fails_never_opens_beyond_both_policies(lab: LabHandle) -> None:
    """Real packets all through a failing apply that planned from the record, and after it: the flows
    no policy grants never pass, the old grant holds once the apply has rolled back, and the record
    is dropped so that the next apply lists the table."""
    from tests.test_fail_closed import Prober

    granted = {"src": ACME, "dst": "10.1.0.5", "proto": "tcp", "port": 443}  # crm-api, removed by the edit
    never = [{"src": ACME, "dst": "10.1.0.20", "proto": "tcp", "port": 443},  # a granted host, ungranted port
             {"src": ACME, "dst": "10.250.0.1", "proto": "tcp", "port": 22}]  # the gateway itself
    assert lab.ctl("apply", "--yes").returncode == 0 and (lab.state / FILE).exists()

    def drop_crm(doc: dict[str, Any]) -> None:
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "crm-api"]

    with lab.edited("acme", drop_crm):
        with Prober(lab, [granted, *never]) as prober:
            result = lab.ctl("apply", "--yes", env={"GATEWAYCTL_FAILPOINT": "after-peers:raise"})
        assert result.returncode == 1, result.stdout + result.stderr
        entries = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
        assert entries[-1]["event"] == "failed" and entries[-1]["table_read"] == "record", entries[-1]
        assert all(prober.passed(s) == 0 for s in never), prober.result
        assert prober.passed(granted) > 0, prober.result  # the old policy was in force before and after
        assert not (lab.state / FILE).exists()
        assert lab.reach("acme", "10.1.0.5", 443)  # rolled back: the old policy is in force
        with Prober(lab, never) as prober:
            result = lab.ctl("apply", "--yes")
        assert result.returncode == 0 and read_by_last_apply(lab) == "listed", result.stderr
        assert all(prober.passed(s) == 0 for s in never), prober.result
        assert not lab.reach("acme", "10.1.0.5", 443)
    record_matches_the_kernel(lab)
