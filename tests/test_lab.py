"""The live gateway on the lab: apply, plan, drift, tampering and faults, decided by real packets.

Needs root, nftables and wireguard-go (CI provides them). One lab for the module; every test
leaves it as the profiles say.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("lab") / "lab", PROFILES) as handle:
        yield handle


def test_lab_up_proves_every_grant_and_every_denial(lab: LabHandle) -> None:
    output = lab.up_output  # type: ignore[attr-defined]
    assert "FAIL" not in output
    counts = [line for line in output.splitlines() if line.endswith("probes as expected")]
    assert counts and counts[0].split()[0] == counts[0].split()[2], counts
    assert "in sync: the host matches the last apply and the profiles" in output


def test_granted_and_denied_flows_with_real_packets(lab: LabHandle) -> None:
    assert lab.reach("acme", "10.1.0.5", 443)                       # granted
    assert lab.reach("acme", "10.1.0.1", 0, "icmp")                 # granted ping
    assert not lab.reach("acme", "10.1.0.5", 2222)                  # ungranted port of a granted host
    assert not lab.reach("acme", "10.2.0.5", 5432)                  # another partner's service
    assert not lab.reach("acme", "10.250.0.1", 22)                  # the gateway itself
    assert not lab.reach("initech", "10.1.0.40", 443)               # an expired grant
    assert not lab.reach("acme", "10.2.0.5", 5432, src="10.250.2.1")  # a source acme does not own
    assert lab.reach("globex", "10.2.0.5", 5432, src="100.64.20.1")   # site-to-site from the partner LAN
    assert lab.reach("umbrella", "10.1.0.53", 53, "udp")


def test_query_agrees_with_real_packets(lab: LabHandle) -> None:
    """Differential check: for a sample of flows, `query`'s answer equals what the gateway does."""
    import datetime as dt
    import ipaddress

    from gatewayctl.lab import reach
    from gatewayctl.pipeline import compile_profiles
    from gatewayctl.policy.explain import flow
    from gatewayctl.policy.flows import Target

    compiled = compile_profiles(lab.profiles, dt.datetime.now(dt.UTC))
    catalogue: reach.Catalogue = {}
    for name, svc in compiled.estate.services.model.services.items():
        net = svc.addresses[0]
        catalogue[name] = (reach.host_of(net), svc.protocol, int(str(svc.ports[0]).split("-")[0]) if svc.ports else 0,
                           net.version)
    probes = reach.plan_probes(compiled.policy, lab.data["peers"], "10.250.0.1", catalogue)
    # and flows chosen to sit on the edges of grants: last port of a range, one past it, another protocol
    globex = lab.peer("globex")
    probes += [reach.Probe("globex", globex["ns"], "10.250.2.1", "10.1.0.21", "tcp", port, port <= 8003, "edge")
               for port in (8003, 8004, 8010)]
    probes.append(reach.Probe("umbrella", lab.peer("umbrella")["ns"], "10.250.4.1", "10.1.0.53", "tcp", 53, False, "udp only"))
    results = reach.run(probes)
    assert len(results) >= 30
    for probe, real in results:
        if probe.why.startswith("spoofing"):
            continue  # WireGuard drops a source the sending peer does not own before any rule: not query's question
        target = Target(ipaddress.ip_network(probe.dst), probe.proto, probe.port if probe.proto != "icmp" else None)
        answer = flow(compiled.policy, probe.src, target)
        deadline = time.monotonic() + 30
        while answer.allowed and not real and time.monotonic() < deadline:
            real = reach.run([probe])[0][1]  # a session still being re-established: WireGuard retries on its own
        assert answer.allowed == real, f"{probe}: query says {answer.reason}, the gateway {'passed' if real else 'dropped'} it"


def test_second_plan_is_empty(lab: LabHandle) -> None:
    result = lab.ctl("plan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no changes" in result.stdout
    assert lab.ctl("apply", "--yes").stdout.strip() == "no changes: the host matches the profiles"


def test_plan_names_partners_and_never_a_key(lab: LabHandle) -> None:
    def drop_grant(doc: dict) -> None:  # type: ignore[type-arg]
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "edi-sftp"]

    with lab.edited("acme", drop_grant):
        result = lab.ctl("plan", "--format", "json")
        assert result.returncode == 1
        plan = json.loads(result.stdout)
        assert plan["format"] == "gatewayctl-plan/1"
        assert {"sign": "-", "area": "firewall", "subject": "acme", "detail": "10.250.1.1 -> 10.1.0.20 tcp/22",
                "kind": "element-unexpected"} in plan["changes"]
        keys = [lab.peer_key(p) for p in ("acme", "globex", "initech", "umbrella")]
        assert not any(k in result.stdout for k in keys)
        assert lab.ctl("drift").returncode == 3  # profiles changed, not applied


def test_unrelated_change_keeps_other_peers_sessions(lab: LabHandle) -> None:
    assert lab.reach("acme", "10.1.0.5", 443)
    handshake, rx = lab.handshake_and_rx("acme")
    assert handshake > 0

    def longer_keepalive(doc: dict) -> None:  # type: ignore[type-arg]
        doc["peers"][0]["keepalive"] = 15

    with lab.edited("umbrella", longer_keepalive):
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stderr
        assert "~ peer umbrella/umbrella-london: keepalive 25 -> 15" in result.stdout
        assert "acme" not in result.stdout
        after_handshake, after_rx = lab.handshake_and_rx("acme")
        assert after_handshake == handshake  # no new handshake: the session was not reset
        assert after_rx >= rx                # counters kept, not zeroed
        assert lab.reach("acme", "10.1.0.5", 443)


TAMPERING = [
    ("rule added to our table", ["nft", "add", "rule", "inet", "gatewayctl", "partner_in", "accept"], "rule-changed"),
    ("set element added", ["nft", "add", "element", "inet", "gatewayctl", "grants4",
                           "{ 10.250.3.1 . 10.2.0.5 . tcp . 5432 }"], "element-unexpected"),
    ("peer removed", ["wg", "set", "{if}", "peer", "{acme}", "remove"], "peer-missing"),
    ("allowed IPs changed", ["wg", "set", "{if}", "peer", "{acme}", "allowed-ips", "10.250.1.1/32,10.99.0.0/16"],
     "allowed-ips-changed"),
    ("interface taken down", ["ip", "link", "set", "{if}", "down"], "interface-down"),
]


@pytest.mark.parametrize(("what", "command", "kind"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_detected_then_repaired(lab: LabHandle, what: str, command: list[str], kind: str) -> None:
    lab.gw_run(*[c.replace("{if}", lab.ifname).replace("{acme}", lab.peer_key("acme")) for c in command])
    drift = lab.ctl("drift", "--format", "json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    assert report["status"] == "host-changed"
    assert kind in {f["kind"] for f in report["findings"] if f["source"] == "host"}, report
    repaired = lab.ctl("apply", "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert lab.ctl("drift").returncode == 0
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    assert not lab.reach("initech", "10.2.0.5", 5432)


def test_foreign_accepting_base_chain_is_reported(lab: LabHandle) -> None:
    lab.gw_run("nft", "add", "table", "ip", "gwtest_foreign")
    lab.gw_run("nft", "add", "chain", "ip", "gwtest_foreign", "c_fwd",
               "{ type filter hook forward priority -10; policy accept; }")
    # an accept-only chain is not drift (accept does not skip ours); a drop of partner traffic is
    lab.gw_run("nft", "add", "rule", "ip", "gwtest_foreign", "c_fwd", "ip", "daddr", "10.99.99.99", "drop")
    try:
        drift = lab.ctl("drift", "--format", "json")
        assert drift.returncode == 1
        findings = json.loads(drift.stdout)["findings"]
        assert any(f["kind"] == "foreign-base-chain" and "gwtest_foreign c_fwd" in f["subject"] for f in findings)
        assert lab.ctl("apply", "--yes").returncode == 0  # apply never touches another table
        assert "gwtest_foreign" in lab.gw_run("nft", "list", "tables")
    finally:
        lab.gw_run("nft", "delete", "table", "ip", "gwtest_foreign")
    assert lab.ctl("drift").returncode == 0


def test_every_drift_format(lab: LabHandle, tmp_path: Path) -> None:
    for fmt, marker in [("text", "in sync"), ("json", '"status": "in-sync"'), ("markdown", "## Drift report: in-sync"),
                        ("junit", 'failures="0"'), ("prometheus", "gatewayctl_drift_status 0")]:
        result = lab.ctl("drift", "--format", fmt, "-o", str(tmp_path / f"drift.{fmt}"))
        assert result.returncode == 0
        assert marker in (tmp_path / f"drift.{fmt}").read_text(), fmt


def test_kernel_rejection_midway_leaves_previous_state(lab: LabHandle) -> None:
    """The new listen port is taken: wireguard-go refuses it after the firewall was narrowed."""
    blocker = subprocess.Popen(["ip", "netns", "exec", lab.gw, sys.executable, "-c",
                                "import socket,time;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);"
                                "s.bind(('::',51999));time.sleep(120)"])
    gateway = lab.profiles / "gateway.yaml"
    original = gateway.read_text()
    try:
        time.sleep(0.5)
        doc = json.loads(original)
        doc["wireguard"]["listen_port"] = 51999
        gateway.write_text(json.dumps(doc))
        acme = lab.profiles / "partners" / "acme.yaml"
        acme_original = acme.read_text()
        acme_doc = json.loads(acme_original)
        acme_doc["grants"] = [g for g in acme_doc["grants"] if g["service"] != "crm-api"]
        acme.write_text(json.dumps(acme_doc))
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "refused" in result.stderr and "previous firewall table and peers were restored" in result.stderr
        acme.write_text(acme_original)
        gateway.write_text(original)
        assert lab.ctl("drift").returncode == 0  # exactly the previous state
        assert lab.reach("acme", "10.1.0.5", 443)  # traffic as before, the grant that was to go still works
        journal = (lab.state / "journal.jsonl").read_text().splitlines()
        assert json.loads(journal[-1])["event"] == "failed" and json.loads(journal[-1])["rolled_back"] is True
    finally:
        gateway.write_text(original)
        blocker.kill()
        blocker.wait()


def test_sigkill_midway_then_rerun_converges(lab: LabHandle) -> None:
    def drop(doc: dict) -> None:  # type: ignore[type-arg]
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "crm-api"]
        doc["peers"][0]["keepalive"] = 20

    with lab.edited("globex", drop):
        command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "apply", "--yes",
                   "--netns", lab.gw, "--state-dir", str(lab.state)]
        proc = subprocess.Popen(command, env={**os.environ, "GATEWAYCTL_FAILPOINT": "after-narrow:sleep=60"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # wait until the narrowed firewall is live: the crm-api element is gone
            if "10.250.2.1 . 10.1.0.5" not in lab.gw_run("nft", "list", "set", "inet", "gatewayctl", "grants4"):
                break
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not lab.reach("globex", "10.1.0.5", 443)  # killed while narrowed: closed, never wider
        rerun = lab.ctl("apply", "--yes")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr  # the lock died with the process
        assert lab.ctl("plan").returncode == 0
        assert lab.ctl("drift").returncode == 0
        assert lab.reach("globex", "10.2.0.5", 5432)


def test_two_applies_cannot_interleave(lab: LabHandle) -> None:
    def drop(doc: dict) -> None:  # type: ignore[type-arg]
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "dns"]

    with lab.edited("umbrella", drop):
        command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "apply", "--yes",
                   "--netns", lab.gw, "--state-dir", str(lab.state)]
        first = subprocess.Popen(command, env={**os.environ, "GATEWAYCTL_FAILPOINT": "after-narrow:sleep=4"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        second = lab.ctl("apply", "--yes")
        assert second.returncode == 2
        assert f"holds the lock {lab.state / 'lock'} (pid {first.pid})" in second.stderr
        assert first.wait(timeout=60) == 0
        assert lab.ctl("plan").returncode == 0


def test_confirm_timeout_rolls_back_without_confirm(lab: LabHandle) -> None:
    def drop(doc: dict) -> None:  # type: ignore[type-arg]
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "intranet-web"]

    with lab.edited("initech", drop):
        result = lab.ctl("apply", "--yes", "--confirm-timeout", "10")
        assert result.returncode == 0, result.stderr
        assert not lab.reach("initech", "10.1.0.10", 443)
        for _ in range(60):
            time.sleep(0.5)
            if not (lab.state / "pending-confirm.json").exists():
                break
        assert lab.reach("initech", "10.1.0.10", 443)  # rolled back by itself
        events = [json.loads(line)["event"] for line in (lab.state / "journal.jsonl").read_text().splitlines()]
        assert events[-1] == "rolled-back"
        assert lab.ctl("confirm").returncode == 1  # too late


def test_confirm_keeps_the_change(lab: LabHandle) -> None:
    def drop(doc: dict) -> None:  # type: ignore[type-arg]
        doc["grants"] = [g for g in doc["grants"] if g["service"] != "intranet-web"]

    with lab.edited("initech", drop):
        assert lab.ctl("apply", "--yes", "--confirm-timeout", "10").returncode == 0
        assert lab.ctl("confirm").returncode == 0
        time.sleep(11)
        assert not lab.reach("initech", "10.1.0.10", 443)
        assert lab.ctl("drift").returncode == 0


def test_apply_refuses_when_forwarding_is_off(lab: LabHandle) -> None:
    lab.gw_run("sysctl", "-qw", "net.ipv4.ip_forward=0")
    try:
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 2
        assert "IPv4 forwarding is off" in result.stderr
        assert lab.ctl("drift", "--format", "json").returncode == 1
    finally:
        lab.gw_run("sysctl", "-qw", "net.ipv4.ip_forward=1")


def test_stopped_wireguard_go_gives_a_clear_error(lab: LabHandle) -> None:
    pidfile = lab.state / f"wireguard-go-{lab.ifname}.pid"
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    time.sleep(0.5)
    result = lab.ctl("plan")
    assert result.returncode == 2
    assert f"wireguard-go for {lab.ifname} is not running" in result.stdout + result.stderr
    Path(f"/var/run/wireguard/{lab.ifname}.sock").unlink()
    repaired = lab.ctl("apply", "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "+ interface" in repaired.stdout
    assert lab.ctl("drift").returncode == 0
    assert lab.eventually_reach("acme", "10.1.0.5", 443)


def test_journal_records_who_applied_which_revision(lab: LabHandle) -> None:
    subprocess.run(["git", "-C", str(lab.profiles), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(lab.profiles), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(lab.profiles), "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm",
                    "lab profiles"], check=True)
    head = subprocess.run(["git", "-C", str(lab.profiles), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()

    def keepalive(doc: dict) -> None:  # type: ignore[type-arg]
        doc["peers"][0]["keepalive"] = 21

    with lab.edited("acme", keepalive):
        assert lab.ctl("apply", "--yes").returncode == 0
        entry = json.loads((lab.state / "journal.jsonl").read_text().splitlines()[-1])
        assert entry["event"] == "applied" and entry["revision"] == head and entry["dirty"] is True
        assert entry["user"] and len(entry["digest"]) == 64 and entry["time"].endswith("Z")
    lines = (lab.state / "journal.jsonl").read_text().splitlines()
    assert all(json.loads(line)["time"] for line in lines)  # append-only: earlier entries are all still there


def test_report_on_the_lab_after_traffic(lab: LabHandle, tmp_path: Path) -> None:
    assert lab.reach("acme", "10.1.0.5", 443)                 # accepted traffic
    assert not lab.reach("acme", "10.1.0.5", 2222)            # denied traffic
    args = ("report", "--netns", lab.gw, "--state-dir", str(lab.state))
    result = lab.ctl(*args, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    doc = json.loads(result.stdout)
    assert doc["live"]["available"] and doc["drift"]["status"] == "in-sync"
    acme = next(p for p in doc["partners"] if p["id"] == "acme")
    crm = next(g for g in acme["grants"] if g["id"] == "acme/crm-api")
    assert crm["counters"]["packets"] > 0 and crm["counters"]["bytes"] > 0
    assert acme["accepted"]["packets"] >= crm["counters"]["packets"]
    assert acme["denied"]["packets"] > 0
    live = acme["peers"][0]["live"]
    assert live["last_handshake"] > 0 and live["rx_bytes"] > 0 and live["tx_bytes"] > 0
    checks = {c["id"]: c for c in doc["checks"]}
    for passing in ("default-deny", "live-matches-approved", "access-monitored"):
        assert checks[passing]["status"] == "pass", checks[passing]
    # the lab's profiles are not in git: the journal records applies without a revision, and the report says so
    assert checks["changes-recorded"]["status"] == "fail" and "revision" in checks["changes-recorded"]["detail"]
    page = tmp_path / "lab.html"
    result = lab.ctl(*args, "-o", str(page))
    assert result.returncode in (0, 1), result.stderr
    text = page.read_text()
    assert "acme: " in text and " accepted (" in text  # a traffic bar for acme
