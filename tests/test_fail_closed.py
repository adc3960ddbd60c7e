"""No moment without the firewall: applies that fail at every fail point, on fresh and existing gateways,
while a prober sends real packets; not one passes beyond what both the old and the new policy allow.

The expected flows are written here from the lab's estate (tests/conftest.py PROFILES): acme
(10.250.1.1) is granted crm-api (10.1.0.5 tcp 443) and never port 22 of that host or the gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.apply.failpoints import POINTS, RULESET_POINTS
from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab

REPO = Path(__file__).resolve().parents[1]
ACME = "10.250.1.1"
GRANTED = {"src": ACME, "dst": "10.1.0.5", "proto": "tcp", "port": 443}  # in both policies
NEW_ONLY = {"src": ACME, "dst": "10.1.0.5", "proto": "tcp", "port": 22}  # granted by the new policy only
NEVER = [{"src": ACME, "dst": "10.250.0.1", "proto": "tcp", "port": 22},   # the gateway itself
         {"src": ACME, "dst": "10.1.0.20", "proto": "tcp", "port": 443}]   # a granted host, ungranted port


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("closed") / "lab", PROFILES) as handle:
        def service(doc: dict[str, Any]) -> None:
            doc["services"]["crm-ssh"] = {"description": "Fail-closed test.", "owner": "Test <t@example.com>",
                                          "classification": "internal", "addresses": ["10.1.0.5/32"], "protocol": "tcp",
                                          "ports": [22]}
        path = handle.profiles / "services.yaml"
        from gatewayctl.loader.yaml12 import read_document

        doc = read_document(path, path.name).data
        service(doc)
        path.write_text(json.dumps(doc, indent=1))
        yield handle


class Prober:
    """tests/prober.py in acme's namespace for the duration of a `with` block."""

    def __init__(self, lab: LabHandle, specs: list[dict[str, Any]]) -> None:
        self.ns, self.specs = lab.peer("acme")["ns"], specs
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Prober:
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "tests.prober",
                                      json.dumps(self.specs)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.result = json.loads(out)

    def passed(self, spec: dict[str, Any]) -> int:
        return int(self.result["passed"][self.specs.index(spec)])


def make_fresh(lab: LabHandle) -> None:
    """What a gateway looks like before its first apply: no table, no interface, no wireguard-go."""
    lab.gw_run("nft", "delete", "table", "inet", "gatewayctl")
    pidfile = lab.state / f"wireguard-go-{lab.ifname}.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    assert lab.ifname not in lab.gw_run("ip", "-o", "link")


def host_has_nothing(lab: LabHandle) -> None:
    assert lab.ifname not in lab.gw_run("ip", "-o", "link")
    tables = lab.gw_run("nft", "list", "tables")
    assert "gatewayctl" not in tables, tables


FAILURES = [f"{p}:raise" for p in POINTS if p != "after-widen"] + [f"{p}:corrupt" for p in RULESET_POINTS]


def test_failed_first_applies_leave_a_fresh_gateway_closed_and_say_so(lab: LabHandle) -> None:
    make_fresh(lab)
    for failpoint in FAILURES:
        with Prober(lab, [GRANTED, *NEVER]) as prober:
            result = lab.ctl("apply", "--yes", env={"GATEWAYCTL_FAILPOINT": failpoint})
        assert result.returncode == 1, (failpoint, result.stdout, result.stderr)
        assert "the host is as before: no interface" in result.stderr, (failpoint, result.stderr)
        host_has_nothing(lab)
        assert all(prober.passed(s) == 0 for s in [GRANTED, *NEVER]), (failpoint, prober.result)
        journal = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
        assert journal[-1]["event"] == "failed" and journal[-1]["rolled_back"] is True
    with Prober(lab, NEVER) as prober:
        result = lab.ctl("apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert prober.result["rounds"] > 0 and all(prober.passed(s) == 0 for s in NEVER), prober.result
    assert "gatewayctl_guard" not in lab.gw_run("nft", "list", "tables")
    assert lab.eventually_reach("acme", "10.1.0.5", 443)


def test_failed_applies_on_a_running_gateway_never_open_beyond_both_policies(lab: LabHandle) -> None:
    assert lab.eventually_reach("acme", "10.1.0.5", 443)

    def add(doc: dict[str, Any]) -> None:
        doc["stage"] = "strategic"  # established allows 4 services, which acme has
        doc["grants"].append({"service": "crm-ssh", "justification": "Fail-closed test (CHG-2).",
                              "approved_by": "Test Owner", "expires": "2027-06-30"})

    path = lab.profiles / "partners" / "acme.yaml"
    original = path.read_text()
    doc = json.loads(original)
    add(doc)
    changed = json.dumps(doc, indent=1)
    try:
        # each failing apply twice: partner-scoped (only acme's file changed since an apply that
        # succeeded: docs/operations.md "A change to some partners only"), then whole (a failed apply
        # leaves no basis for the next one to be scoped)
        for failpoint, scoped in [(f, s) for f in ("after-narrow:raise", "after-peers:raise", "before-widen:raise")
                                  for s in (True, False)]:
            if scoped:
                path.write_text(original)
                assert lab.ctl("apply", "--yes").returncode == 0
                path.write_text(changed)
            with Prober(lab, [GRANTED, NEW_ONLY, *NEVER]) as prober:
                result = lab.ctl("apply", "--yes", env={"GATEWAYCTL_FAILPOINT": failpoint})
            assert result.returncode == 1, (failpoint, result.stdout, result.stderr)
            failed = json.loads((lab.state / "journal.jsonl").read_text().splitlines()[-1])
            assert failed["event"] == "failed" and ("scope" in failed) == scoped, (failpoint, failed)
            assert "the host is as before: interface" in result.stderr, result.stderr
            assert prober.passed(NEW_ONLY) == 0 and all(prober.passed(s) == 0 for s in NEVER), (failpoint, prober.result)
            assert prober.passed(GRANTED) > 0, (failpoint, prober.result)  # the old policy stayed in force
        with Prober(lab, NEVER) as prober:
            result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(prober.passed(s) == 0 for s in NEVER), prober.result
        assert lab.reach("acme", "10.1.0.5", 22)
    finally:
        path.write_text(original)
        assert lab.ctl("apply", "--yes").returncode == 0


def test_a_renamed_interface_stays_filtered_and_apply_says_why(lab: LabHandle) -> None:
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    renamed = f"x{lab.ifname}"[:15]
    lab.gw_run("ip", "link", "set", lab.ifname, "name", renamed)
    try:
        with Prober(lab, [GRANTED, *NEVER]) as prober:
            time.sleep(2)
        # partner traffic is recognised by its addresses: grants still hold, nothing else passes
        assert prober.passed(GRANTED) > 0 and all(prober.passed(s) == 0 for s in NEVER), prober.result
        drift = lab.ctl("drift", "--format", "json")
        assert drift.returncode == 1, drift.stdout + drift.stderr
        kinds = {f["kind"] for f in json.loads(drift.stdout)["findings"]}
        assert "interface-renamed" in kinds, kinds
        with Prober(lab, NEVER) as prober:
            result = lab.ctl("apply", "--yes")
        assert result.returncode == 2 and "it was renamed or moved" in result.stderr, result.stdout + result.stderr
        assert all(prober.passed(s) == 0 for s in NEVER), prober.result
        pid = int((lab.state / f"wireguard-go-{lab.ifname}.pid").read_text())
        os.kill(pid, 0)  # the PID file still names the running wireguard-go
    finally:
        lab.gw_run("ip", "link", "set", renamed, "name", lab.ifname)
    assert lab.ctl("apply", "--yes").returncode == 0
    assert lab.ctl("drift").returncode == 0


def test_failed_table_replacing_applies_on_a_running_gateway_never_open_beyond_both_policies(lab: LabHandle) -> None:
    """A change of chains (shared deny logging) replaces the table: the kernel refusing the narrowed or the
    full ruleset, or a failure on the way, leaves the old policy in force and nothing beyond it."""
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    gateway, acme = lab.profiles / "gateway.yaml", lab.profiles / "partners" / "acme.yaml"
    saved = {gateway: gateway.read_text(), acme: acme.read_text()}
    doc = json.loads(saved[gateway])
    doc["deny_logging"]["per_partner"] = False
    gateway.write_text(json.dumps(doc, indent=1))
    doc = json.loads(saved[acme])
    doc["stage"] = "strategic"
    doc["grants"].append({"service": "crm-ssh", "justification": "Fail-closed test (CHG-3).", "approved_by": "Test Owner",
                          "expires": "2027-06-30"})
    acme.write_text(json.dumps(doc, indent=1))
    try:
        for failpoint in ("load-narrowed:corrupt", "load-full:corrupt", "after-narrow:raise", "before-widen:raise",
                          "after-widen:raise"):
            with Prober(lab, [GRANTED, NEW_ONLY, *NEVER]) as prober:
                result = lab.ctl("apply", "--yes", env={"GATEWAYCTL_FAILPOINT": failpoint})
            assert result.returncode == 1, (failpoint, result.stdout, result.stderr)
            assert "the host is as before: interface" in result.stderr, result.stderr
            assert all(prober.passed(s) == 0 for s in NEVER), (failpoint, prober.result)
            if failpoint != "after-widen:raise":  # after widening the new policy was in force until the rollback
                assert prober.passed(NEW_ONLY) == 0, (failpoint, prober.result)
            assert prober.passed(GRANTED) > 0, (failpoint, prober.result)
            assert not lab.reach("acme", "10.1.0.5", 22)  # the old policy is back
            assert "chain deny_acme" in lab.gw_run("nft", "list", "table", "inet", "gatewayctl")
    finally:
        for path, text in saved.items():
            path.write_text(text)
        assert lab.ctl("apply", "--yes").returncode == 0


def test_a_killed_first_apply_leaves_the_guard_and_the_next_apply_removes_it(lab: LabHandle) -> None:
    make_fresh(lab)
    command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "apply", "--yes",
               "--netns", lab.gw, "--state-dir", str(lab.state)]
    with Prober(lab, [GRANTED, *NEVER]) as prober:
        proc = subprocess.Popen(command, env={**os.environ, "GATEWAYCTL_FAILPOINT": "after-peers:sleep=30"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(4)
        proc.kill()
        proc.wait()
        time.sleep(2)
    assert all(prober.passed(s) == 0 for s in [GRANTED, *NEVER]), prober.result  # peers up, guard holding
    assert "gatewayctl_guard" in lab.gw_run("nft", "list", "tables")
    plan = lab.ctl("plan")
    assert plan.returncode == 1 and "guard table inet gatewayctl_guard" in plan.stdout, plan.stdout
    assert lab.ctl("apply", "--yes").returncode == 0
    assert "gatewayctl_guard" not in lab.gw_run("nft", "list", "tables")
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    assert lab.ctl("drift").returncode == 0


def test_a_refused_apply_on_an_unfiltered_gateway_closes_it(lab: LabHandle) -> None:
    """Renamed interface and no table: nothing filters partner traffic; apply refuses and closes it."""
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    renamed = f"x{lab.ifname}"[:15]
    lab.gw_run("ip", "link", "set", lab.ifname, "name", renamed)
    lab.gw_run("nft", "delete", "table", "inet", "gatewayctl")
    try:
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 2 and "blocked by the guard table inet gatewayctl_guard" in result.stderr, result.stderr
        with Prober(lab, [GRANTED, *NEVER]) as prober:
            time.sleep(2)
        assert all(prober.passed(s) == 0 for s in [GRANTED, *NEVER]), prober.result
        drift = lab.ctl("drift", "--format", "json")
        kinds = {f["kind"] for f in json.loads(drift.stdout)["findings"]}
        assert drift.returncode == 1 and {"interface-renamed", "table-missing", "guard-left"} <= kinds, kinds
    finally:
        lab.gw_run("ip", "link", "set", renamed, "name", lab.ifname)
    assert lab.ctl("apply", "--yes").returncode == 0
    assert "gatewayctl_guard" not in lab.gw_run("nft", "list", "tables")
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    assert lab.ctl("drift").returncode == 0


def test_apply_refuses_lint_errors_and_changes_nothing_but_applies_over_warnings(lab: LabHandle) -> None:
    """apply lints only for errors (lint_checked errors_only): an error refuses the whole change (the new
    grant of port 22 stays closed, the old access works), while a change with only a warning or info
    finding applies."""
    def unjustified_new_grant(doc: dict[str, Any]) -> None:
        # in place of lab-ping (acme's stage allows four services); no justification: GW301, an error
        doc["grants"][-1] = {"service": "crm-ssh", "approved_by": doc["grants"][0]["approved_by"],
                             "expires": doc["grants"][0]["expires"]}

    with lab.edited("acme", unjustified_new_grant):
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "GW301" in result.stderr and "refusing to apply: lint reports 1 error(s)" in result.stderr, result.stderr
        assert not lab.reach("acme", "10.1.0.5", 22) and lab.reach("acme", "10.1.0.5", 443)

    def justified_but_no_security_contact(doc: dict[str, Any]) -> None:
        unjustified_new_grant(doc)
        doc["grants"][-1]["justification"] = "Fail-closed test (CHG-1)."
        doc["contacts"] = [c for c in doc["contacts"] if c["role"] != "security"]  # GW605, info only

    with lab.edited("acme", justified_but_no_security_contact):
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stderr
        assert lab.reach("acme", "10.1.0.5", 22)
    assert not lab.reach("acme", "10.1.0.5", 22)
