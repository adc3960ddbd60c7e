"""Access ends when it ends: open connections stop within a second of their grant ending, by real packets.

On the lab, long-lived flows (a TCP connection and a UDP exchange, each sending every 50 ms in both
directions: tests/flowtool.py) run while a grant is removed, narrowed, times out in the kernel, its
agreement ends, its partner goes, its stage is lowered, a session ends, or an operator revokes it.
Expectations come from this file's own estate: which flow stands on which grant is written here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab
from tests.netns import sh

REPO = Path(__file__).resolve().parents[1]
HOST = "10.1.0.10"  # routed into the tunnel by acme's and umbrella's configs (intranet-web)
SERVICES = {
    "stream-tcp": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": ["9000-9003"], "classification": "internal"},
    "stream-udp": {"addresses": [f"{HOST}/32"], "protocol": "udp", "ports": ["9100-9103"], "classification": "internal"},
    "keep-tcp": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": [9010], "classification": "internal"},
    "stream-conf": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": [9020], "classification": "confidential"},
}
GRANTS = {"acme": ["stream-tcp", "stream-udp", "keep-tcp", "stream-conf"], "umbrella": ["stream-tcp"]}
SERVER_TCP = "9000,9001,9002,9003,9010,9020"
SERVER_UDP = "9100,9101"
CUT_S = 1.0  # the promise: a flow whose access ended passes nothing later than this after the end


def grant(service: str) -> dict[str, Any]:
    return {"service": service, "justification": "Long-lived flow test (CHG-1).", "approved_by": "Test Owner",
            "expires": "2027-06-30"}


@dataclass
class Flow:
    partner: str
    proto: str
    port: int
    src: str
    dst: str
    log: Path
    pid: int

    def client_rx(self) -> list[float]:
        return [float(line.split()[0]) for line in self.log.read_text().splitlines()]


class Flows:
    """The flow server in the services namespace and the clients in partner namespaces."""

    def __init__(self, lab: LabHandle, root: Path) -> None:
        self.lab, self.root = lab, root
        self.server_log = root / "server.log"
        self.server_log.touch()
        self.server = _spawn(lab.data["services_ns"], ["serve", "--tcp", SERVER_TCP, "--udp", SERVER_UDP,
                                                       "--udp-on", HOST, "--log", str(self.server_log)])
        self.clients: list[Flow] = []
        time.sleep(0.5)

    def start(self, partner: str, proto: str, port: int, dst: str = HOST) -> Flow:
        peer = self.lab.peer(partner)
        src = peer["tunnel"][0].split("/")[0]
        log = self.root / f"client-{partner}-{proto}-{port}-{len(self.clients)}.log"
        log.touch()
        pid = _spawn(peer["ns"], ["client", "--src", src, "--dst", dst, "--proto", proto, "--port", str(port),
                                  "--log", str(log)])
        flow = Flow(partner, proto, port, src, dst, log, pid)
        self.clients.append(flow)
        return flow

    def server_rx(self, flow: Flow) -> list[float]:
        times = []
        for line in self.server_log.read_text().splitlines():
            t, _, proto, peer, port = line.split()
            if (proto, peer, int(port)) == (flow.proto, flow.src, flow.port):
                times.append(float(t))
        return times

    def wait_flowing(self, *flows: Flow, timeout_s: float = 30.0) -> None:
        """Until data passes both ways for every flow (a partner peer may still be handshaking)."""
        deadline = time.time() + timeout_s
        start = time.time()
        while time.time() < deadline:
            if all(any(t > start for t in f.client_rx()) and any(t > start for t in self.server_rx(f)) for f in flows):
                return
            time.sleep(0.2)
        raise AssertionError(f"flows not passing before the change: {[self.describe(f) for f in flows]}")

    def describe(self, flow: Flow) -> str:
        client, server = flow.client_rx(), self.server_rx(flow)
        return (f"{flow.partner} {flow.proto}/{flow.port}: client rx {len(client)} (last {client[-1] if client else '-'}), "
                f"server rx {len(server)} (last {server[-1] if server else '-'})")

    def last_both(self, flow: Flow) -> float:
        return max([0.0, *flow.client_rx(), *self.server_rx(flow)])

    def assert_stopped_by(self, flow: Flow, end: float) -> None:
        """Nothing passed in either direction later than CUT_S after `end`, and something passed before."""
        client, server = flow.client_rx(), self.server_rx(flow)
        assert client and server, f"the flow never passed: {self.describe(flow)}"
        late = [t - end for t in client + server if t > end + CUT_S]
        assert not late, f"{len(late)} message(s) passed up to {max(late):.2f} s after the end: {self.describe(flow)}"

    def assert_flowing_after(self, flow: Flow, moment: float) -> None:
        assert any(t > moment for t in flow.client_rx()), f"no reply after the change: {self.describe(flow)}"
        assert any(t > moment for t in self.server_rx(flow)), f"nothing reached the service: {self.describe(flow)}"

    def stop_clients(self) -> None:
        for flow in self.clients:
            _stop(flow.pid)
        self.clients = []


def _spawn(ns: str, args: list[str]) -> int:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.flowtool", *args], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    return proc.pid


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    from gatewayctl.loader.yaml12 import read_document

    doc = read_document(path, path.name).data  # services.yaml is the example's YAML, partner files the lab's JSON
    change(doc)
    path.write_text(json.dumps(doc, indent=1))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    root = tmp_path_factory.mktemp("ends")
    with running_lab(root / "lab", PROFILES) as handle:
        def services(doc: dict[str, Any]) -> None:
            for name, spec in SERVICES.items():
                doc["services"][name] = {"description": "Long-lived flow test.", "owner": "Test <t@example.com>", **spec}

        _edit(handle.profiles / "services.yaml", services)
        for partner, names in GRANTS.items():
            def grants(doc: dict[str, Any], names: list[str] = names) -> None:
                doc["grants"] += [grant(n) for n in names]
                if doc["id"] == "acme":
                    doc["stage"] = "strategic"
            _edit(handle.profiles / "partners" / f"{partner}.yaml", grants)
        result = handle.ctl("apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        yield handle


@pytest.fixture
def flows(lab: LabHandle, tmp_path: Path) -> Iterator[Flows]:
    running = Flows(lab, tmp_path)
    try:
        yield running
    finally:
        running.stop_clients()
        _stop(running.server)


def apply(lab: LabHandle, *args: str) -> float:
    """Apply; return the instant it finished (the change is in force by then)."""
    result = lab.ctl("apply", "--yes", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return time.time()


def last_scope(lab: LabHandle) -> list[str] | None:
    """The partners the last apply planned alone (docs/operations.md "A change to some partners only")."""
    entries = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
    found = [e for e in entries if e["event"] == "applied"][-1].get("scope")
    return list(found) if found is not None else None


def tracked(lab: LabHandle) -> str:
    return lab.gw_run("conntrack", "-L")


def has_flow(listing: str, src: str, dport: int, proto: str) -> bool:
    return any(line.startswith(proto) and f"src={src} " in line and f"dport={dport} " in line.split("src=", 2)[1]
               for line in listing.splitlines())


@contextmanager
def edited(lab: LabHandle, partner: str, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    with lab.edited(partner, change):
        yield


def without(*services: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["grants"] = [g for g in doc["grants"] if g["service"] not in services]
    return change


def test_removed_grant_stops_its_open_connections_and_no_other(lab: LabHandle, flows: Flows) -> None:
    tcp, udp = flows.start("acme", "tcp", 9000), flows.start("acme", "udp", 9100)
    other_grant, other_partner = flows.start("acme", "tcp", 9010), flows.start("umbrella", "tcp", 9001)
    flows.wait_flowing(tcp, udp, other_grant, other_partner)
    with edited(lab, "acme", without("stream-tcp", "stream-udp")):
        end = apply(lab)
        listing = tracked(lab)
        assert last_scope(lab) == ["acme"]  # planned from acme's file alone: the scoped apply is the one measured
        time.sleep(2.5)
        flows.assert_stopped_by(tcp, end)
        flows.assert_stopped_by(udp, end)
        flows.assert_flowing_after(other_grant, end + 1.5)
        flows.assert_flowing_after(other_partner, end + 1.5)
        # apply removed the conntrack entries of the flows that lost their grant, and only those
        assert not has_flow(listing, tcp.src, 9000, "tcp") and not has_flow(listing, udp.src, 9100, "udp"), listing
        assert has_flow(listing, other_grant.src, 9010, "tcp") and has_flow(listing, other_partner.src, 9001, "tcp"), listing


def test_narrowed_ports_stop_only_the_removed_port(lab: LabHandle, flows: Flows) -> None:
    kept, removed = flows.start("acme", "tcp", 9000), flows.start("acme", "tcp", 9002)
    flows.wait_flowing(kept, removed)

    def narrow(doc: dict[str, Any]) -> None:
        next(g for g in doc["grants"] if g["service"] == "stream-tcp")["ports"] = ["9000-9001"]

    with edited(lab, "acme", narrow):
        end = apply(lab, "--whole")  # the whole apply's cut is measured here (the one above is scoped)
        assert last_scope(lab) is None
        time.sleep(2.5)
        flows.assert_stopped_by(removed, end)
        flows.assert_flowing_after(kept, end + 1.5)


def _tomorrow_end() -> dt.datetime:
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), dt.UTC)  # end of tomorrow (day_end)


def test_grant_expiry_in_the_kernel_stops_open_connections(lab: LabHandle, flows: Flows) -> None:
    """The grant's end falls 5 s after the apply; nothing of gatewayctl runs when it comes."""
    tcp, udp, keep = flows.start("acme", "tcp", 9000), flows.start("acme", "udp", 9100), flows.start("acme", "tcp", 9010)
    flows.wait_flowing(tcp, udp, keep)
    end = _tomorrow_end()
    tomorrow = (end - dt.timedelta(days=1)).date().isoformat()

    def expire(doc: dict[str, Any]) -> None:
        for g in doc["grants"]:
            if g["service"] in ("stream-tcp", "stream-udp"):
                g["expires"] = tomorrow

    with edited(lab, "acme", expire):
        at = end - dt.timedelta(seconds=5)
        done = apply(lab, "--at", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        kernel_end = done + 5
        time.sleep(8)
        flows.assert_stopped_by(tcp, kernel_end)
        flows.assert_stopped_by(udp, kernel_end)
        assert flows.last_both(tcp) > done, "the flow should pass until its grant ends"
        flows.assert_flowing_after(keep, kernel_end + 1.5)


def test_agreement_end_stops_every_flow_of_the_partner(lab: LabHandle, flows: Flows) -> None:
    acme, umbrella = flows.start("acme", "tcp", 9010), flows.start("umbrella", "tcp", 9001)
    flows.wait_flowing(acme, umbrella)
    end = _tomorrow_end()

    def agreement(doc: dict[str, Any]) -> None:
        doc["agreement"]["expires"] = (end - dt.timedelta(days=1)).date().isoformat()
        for g in doc["grants"]:
            g.pop("expires", None)
        doc.pop("review_by", None)

    with edited(lab, "acme", agreement):
        done = apply(lab, "--at", (end - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(8)
        flows.assert_stopped_by(acme, done + 5)
        flows.assert_flowing_after(umbrella, done + 6.5)


def test_removed_partner_and_lowered_stage_stop_their_flows(lab: LabHandle, flows: Flows) -> None:
    umbrella, conf, acme = flows.start("umbrella", "tcp", 9001), flows.start("acme", "tcp", 9020), flows.start("acme", "tcp", 9000)
    flows.wait_flowing(umbrella, conf, acme)

    def lower(doc: dict[str, Any]) -> None:
        doc["stage"] = "pilot"  # pilot reaches no confidential data: stream-conf is beyond the stage

    path = lab.profiles / "partners" / "umbrella.yaml"
    saved = path.read_text()
    path.unlink()
    try:
        with edited(lab, "acme", lower):
            end = apply(lab)
            time.sleep(2.5)
            flows.assert_stopped_by(umbrella, end)
            flows.assert_stopped_by(conf, end)
    finally:
        path.write_text(saved)
        apply(lab)


def test_revoke_closes_at_once_and_stays_until_lifted(lab: LabHandle, flows: Flows) -> None:
    tcp, keep, other = flows.start("acme", "tcp", 9000), flows.start("acme", "tcp", 9010), flows.start("umbrella", "tcp", 9001)
    flows.wait_flowing(tcp, keep, other)
    result = lab.ctl("revoke", "acme", "--grant", "stream-tcp", "--reason", "INC-42 credentials leaked",
                     "--netns", lab.gw, "--state-dir", str(lab.state))
    end = time.time()
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        closed = re.search(r"revoked acme/stream-tcp: 1 firewall element\(s\) removed, (\d+) open connection", result.stdout)
        assert closed and int(closed.group(1)) >= 1, result.stdout  # this test's flow, and any left from earlier ones
        time.sleep(2.5)
        flows.assert_stopped_by(tcp, end)
        flows.assert_flowing_after(keep, end + 1.5)
        flows.assert_flowing_after(other, end + 1.5)
        journal = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
        entry = next(e for e in reversed(journal) if e["event"] == "revoked")
        assert entry["reason"] == "INC-42 credentials leaked" and entry["user"] and entry["time"]
        plan = lab.ctl("plan")
        assert plan.returncode == 0 and "revoked on this gateway" in plan.stdout and "acme/stream-tcp" in plan.stdout, plan.stdout
        drift = lab.ctl("drift")
        assert drift.returncode == 0 and "revoked on this gateway: acme/stream-tcp" in drift.stdout, drift.stdout
        apply(lab)  # a later apply keeps it closed
        assert not lab.reach("acme", HOST, 9001)
        assert lab.reach("umbrella", HOST, 9002) and lab.reach("acme", HOST, 9010)
    finally:
        lift = lab.ctl("revoke", "--lift", "acme", "--grant", "stream-tcp", "--netns", lab.gw, "--state-dir", str(lab.state))
        assert lift.returncode == 0, lift.stdout + lift.stderr
    assert not lab.reach("acme", HOST, 9001)  # lifting alone reopens nothing
    apply(lab)
    assert lab.reach("acme", HOST, 9001)


def test_drift_reports_a_flow_left_alive_and_apply_ends_it(lab: LabHandle) -> None:
    src = lab.peer("acme")["tunnel"][0].split("/")[0]
    sh("ip", "netns", "exec", lab.gw, "conntrack", "-I", "-p", "tcp", "-s", src, "-d", HOST, "--sport", "40999",
       "--dport", "9999", "-r", HOST, "-q", src, "--reply-port-src", "9999", "--reply-port-dst", "40999",
       "--state", "ESTABLISHED", "-t", "600", "-u", "SEEN_REPLY,ASSURED")
    drift = lab.ctl("drift", "--format", "json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    found = [f for f in json.loads(drift.stdout)["findings"] if f["kind"] == "flow-not-allowed"]
    assert [(f["partner"], f["subject"]) for f in found] == [("acme", f"flow {src} -> {HOST}:9999/tcp")], found
    result = lab.ctl("apply", "--yes")
    assert result.returncode == 0 and "closed 1 open connection" in result.stdout, result.stdout + result.stderr
    assert not has_flow(tracked(lab), src, 9999, "tcp")
    drift = lab.ctl("drift")
    assert drift.returncode == 0, drift.stdout
