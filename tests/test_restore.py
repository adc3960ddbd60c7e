"""Reboot and crash come back closed, then right (issue 16.0): real namespaces, wireguard-go, nft, packets.

A reboot is simulated without systemd: the gateway's processes are killed (SIGKILL, as power loss),
its namespace is deleted and made again with its links (so table, interface, wireguard-go, addresses
and routes are gone, the state folder stays), then the boot units' two commands run in their order:
`restore --guard-only` (gatewayctl-guard.service) and `restore` (gatewayctl-restore.service).

The expected flows are written here from the lab's estate (profiles/partners/globex.yaml and
services.yaml): globex (10.250.2.1) is granted crm-api (10.1.0.5 tcp 443), erp-db (10.2.0.5 tcp 5432)
and file-drop (10.1.0.21 tcp 8000-8010); never the gateway itself, acme's edi-sftp host (10.1.0.20
tcp 22) or a port that listens but nobody is granted (10.1.0.5 tcp 2222). globex's peer has an
endpoint and a keepalive, so the restored gateway starts the handshake itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

from gatewayctl.lab import core
from tests.conftest import PROFILES
from tests.lab_helpers import LabHandle, running_lab
from tests.netns import sh

REPO = Path(__file__).resolve().parents[1]
GLOBEX = "10.250.2.1"
CRM = {"src": GLOBEX, "dst": "10.1.0.5", "proto": "tcp", "port": 443}
ERP = {"src": GLOBEX, "dst": "10.2.0.5", "proto": "tcp", "port": 5432}
FILE_DROP = {"src": GLOBEX, "dst": "10.1.0.21", "proto": "tcp", "port": 8000}
GRANTED = [CRM, ERP, FILE_DROP]
NEVER = [{"src": GLOBEX, "dst": "10.250.0.1", "proto": "tcp", "port": 22},   # the gateway itself
         {"src": GLOBEX, "dst": "10.1.0.20", "proto": "tcp", "port": 22},    # acme's grant, not globex's
         {"src": GLOBEX, "dst": "10.1.0.5", "proto": "tcp", "port": 2222}]   # listening, never granted
FLOWS = GRANTED + NEVER


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("restore") / "lab", PROFILES) as handle:
        yield handle


def ctl_host(lab: LabHandle, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A host command (restore, revoke) against the lab gateway."""
    return lab.ctl(*args, "--netns", lab.gw, "--state-dir", str(lab.state), env=env)


def boot_guard(lab: LabHandle) -> subprocess.CompletedProcess[str]:
    """What gatewayctl-guard.service runs (templates/systemd/gatewayctl-guard.service.j2)."""
    return ctl_host(lab, "restore", "--guard-only", "--interface", lab.ifname, "--table", "gatewayctl")


def access(lab: LabHandle) -> dict[str, bool]:
    return {key(f): lab.reach("globex", f["dst"], int(f["port"])) for f in FLOWS}


def key(flow: dict[str, Any]) -> str:
    return f"{flow['dst']}:{flow['port']}"


AS_BEFORE = {**{key(f): True for f in GRANTED}, **{key(f): False for f in NEVER}}


def journal(lab: LabHandle) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]


def tables(lab: LabHandle) -> set[str]:
    return {line.split()[-1] for line in lab.gw_run("nft", "list", "tables").splitlines()}


class TimedProber:
    """tests/timed_prober.py in globex's namespace for the duration of a `with` block."""

    def __init__(self, lab: LabHandle, specs: list[dict[str, Any]]) -> None:
        self.ns, self.specs = lab.peer("globex")["ns"], specs
        self.result: dict[str, Any] = {}

    def __enter__(self) -> TimedProber:
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "tests.timed_prober",
                                      json.dumps(self.specs)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.result = json.loads(out)

    def times(self, spec: dict[str, Any]) -> list[float]:
        return [float(t) for t in self.result["passed_at"][self.specs.index(spec)]]


def _in_namespace(pid: int, ns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.02)


def crash_wireguard_go(lab: LabHandle) -> None:
    """SIGKILL the gateway's wireguard-go (its socket file is left behind, as after a crash)."""
    _kill(int((lab.state / f"wireguard-go-{lab.ifname}.pid").read_text()))
    for _ in range(100):
        if lab.ifname not in lab.gw_run("ip", "-o", "link"):
            return
        time.sleep(0.05)
    raise AssertionError("the interface outlived its wireguard-go")


def reboot(lab: LabHandle) -> None:
    """Power loss and boot of the gateway: its processes killed, its namespace and links made again
    (as gatewayctl/lab/core.py made them), sysctl forwarding on (as /etc/sysctl.d would), the state
    folder kept; nothing of gatewayctl's in the kernel."""
    data, gw, t = lab.data, lab.gw, lab.data["id"]
    pids = [int((lab.state / f"wireguard-go-{lab.ifname}.pid").read_text())]
    pids += [p for p in data["pids"] if _in_namespace(p, gw)]  # the gateway's own responder
    for pid in pids:
        _kill(pid)
    sh("ip", "netns", "del", gw)
    # the kernel tears a deleted namespace down later, in a work queue: until then the other ends of its
    # veths are still there (under load for a while), and making them again would fail with "File exists"
    ends = [(data["services_ns"], f"vl{t}S")] + [(peer["ns"], f"vl{t}p{peer['index']}") for peer in data["peers"]]
    deadline = time.monotonic() + 30
    while any(sh("ip", "-n", ns, "link", "show", name, check=False).returncode == 0 for ns, name in ends):
        assert time.monotonic() < deadline, "the old gateway namespace's links did not go"
        time.sleep(0.05)
    sh("ip", "netns", "add", gw)
    run = lambda *a: sh("ip", "netns", "exec", gw, *a)  # noqa: E731
    run("ip", "link", "set", "lo", "up")
    run("ip", "link", "add", f"brl{t}", "type", "bridge")
    run("ip", "addr", "add", f"{core.UNDERLAY[1]}/24", "dev", f"brl{t}")
    run("ip", "link", "set", f"brl{t}", "up")
    run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    svc = data["services_ns"]
    sh("ip", "link", "add", f"vl{t}s", "netns", gw, "type", "veth", "peer", "name", f"vl{t}S", "netns", svc)
    run("ip", "addr", "add", "10.255.255.1/30", "dev", f"vl{t}s")
    run("ip", "addr", "add", "fd00:ffff::1/64", "dev", f"vl{t}s", "nodad")
    run("ip", "link", "set", f"vl{t}s", "up")
    for args in (("addr", "add", "10.255.255.2/30", "dev", f"vl{t}S"), ("addr", "add", "fd00:ffff::2/64", "dev", f"vl{t}S", "nodad"),
                 ("link", "set", f"vl{t}S", "up"), ("route", "add", "default", "via", "10.255.255.1"),
                 ("-6", "route", "add", "default", "via", "fd00:ffff::1")):
        sh("ip", "netns", "exec", svc, "ip", *args)
    for net in data["internal_networks"]:
        run("ip", "route", "add", net, "via", "fd00:ffff::2" if ":" in net else "10.255.255.2")
    for peer in data["peers"]:
        n = peer["index"]
        sh("ip", "link", "add", f"vl{t}g{n}", "netns", gw, "type", "veth", "peer", "name", f"vl{t}p{n}", "netns", peer["ns"])
        run("ip", "link", "set", f"vl{t}g{n}", "master", f"brl{t}", "up")
        sh("ip", "netns", "exec", peer["ns"], "ip", "addr", "add", f"{peer['underlay']}/24", "dev", f"vl{t}p{n}")
        sh("ip", "netns", "exec", peer["ns"], "ip", "link", "set", f"vl{t}p{n}", "up")
    handle = core.load(lab.root)
    assert handle is not None
    handle.spawn(gw, [sys.executable, "-m", "gatewayctl.lab.responder", "--tcp", "22,443," + core.EXTRA_TCP_PORTS])
    assert lab.ifname not in lab.gw_run("ip", "-o", "link") and "gatewayctl" not in tables(lab)


def rx_from_globex(lab: LabHandle) -> int:
    """Bytes the gateway received from globex's peer through the tunnel (0 when no interface)."""
    if lab.ifname not in lab.gw_run("ip", "-o", "link"):
        return 0
    for line in lab.gw_run("wg", "show", lab.ifname, "transfer").splitlines():
        peer, received, _ = line.split("\t")
        if peer == lab.peer_key("globex"):
            return int(received)
    return 0


def test_a_reboot_comes_back_closed_then_right(lab: LabHandle) -> None:
    assert lab.eventually_reach("globex", "10.1.0.5", 443)
    assert access(lab) == AS_BEFORE
    reboot(lab)
    with TimedProber(lab, FLOWS) as prober:
        guard = boot_guard(lab)
        assert guard.returncode == 0 and "gatewayctl_guard" in tables(lab), guard.stdout + guard.stderr
        # hold restore before the table while interface, key and peers are up: packets arrive, none may pass
        command = [sys.executable, "-m", "gatewayctl", "-q", "restore", "--netns", lab.gw, "--state-dir", str(lab.state)]
        proc = subprocess.Popen(command, env={**os.environ, "GATEWAYCTL_FAILPOINT": "restore-before-table:sleep=4"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        deadline, arrived = time.monotonic() + 3.5, 0
        while time.monotonic() < deadline and not arrived:
            arrived = rx_from_globex(lab)
            time.sleep(0.1)
        untabled = "gatewayctl" not in tables(lab)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert lab.eventually_reach("globex", "10.1.0.5", 443, seconds=10)
        time.sleep(2)  # every flow probed again under the restored table
    assert arrived > 0 and untabled, "globex's packets should have reached the gateway before its table was there"
    steps = journal(lab)[-1]
    at = steps["steps"]
    assert steps["event"] == "restored" and at["guard"] < at["table"] < at["verified"] < at["guard_lifted"]
    # nothing passed before the guard began to go ("verified": the table was loaded and read back); the kernel
    # drops the guard somewhere inside the nft call that ends at "guard_lifted", so a packet may pass just before it
    for flow in FLOWS:
        assert [t for t in prober.times(flow) if t < steps["steps"]["verified"]] == [], (key(flow), steps)
    assert all(prober.times(f) for f in GRANTED) and not any(prober.times(f) for f in NEVER), prober.result
    assert access(lab) == AS_BEFORE
    assert "gatewayctl_guard" not in tables(lab)
    drift = lab.ctl("drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr


def _rule_handles(lab: LabHandle) -> list[str]:
    return [ln.rsplit("# handle ", 1)[1] for ln in lab.gw_run("nft", "-a", "list", "table", "inet", "gatewayctl").splitlines()
            if "# handle " in ln]


def test_restore_on_a_healthy_gateway_changes_nothing(lab: LabHandle) -> None:
    assert lab.eventually_reach("globex", "10.1.0.5", 443)
    handles, entries = _rule_handles(lab), len(journal(lab))
    pid = (lab.state / f"wireguard-go-{lab.ifname}.pid").read_text()
    handshake = lab.handshake_and_rx("globex")[0]
    result = ctl_host(lab, "restore")
    assert result.returncode == 0 and "nothing to restore" in result.stdout, result.stdout + result.stderr
    assert _rule_handles(lab) == handles and len(journal(lab)) == entries  # the table was not reloaded, nothing journaled
    assert (lab.state / f"wireguard-go-{lab.ifname}.pid").read_text() == pid
    assert lab.handshake_and_rx("globex")[0] == handshake  # the peer was not touched: its session stands
    assert "gatewayctl_guard" not in tables(lab)


def test_a_crashed_wireguard_go_is_brought_back(lab: LabHandle) -> None:
    assert lab.eventually_reach("globex", "10.1.0.5", 443)
    crash_wireguard_go(lab)
    assert "gatewayctl" in tables(lab)  # the table outlives the process
    assert not lab.reach("globex", "10.1.0.5", 443)
    result = ctl_host(lab, "restore")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"interface {lab.ifname}: create" in result.stdout and "firewall" not in result.stdout, result.stdout
    assert lab.eventually_reach("globex", "10.1.0.5", 443, seconds=10)
    assert access(lab) == AS_BEFORE
    assert lab.ctl("drift").returncode == 0


def _tomorrow_end() -> dt.datetime:
    """The end of a grant that expires tomorrow (its last day is inclusive)."""
    return dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2), dt.time(), dt.UTC)


def test_an_ended_grant_and_a_revocation_stay_closed_after_a_reboot(lab: LabHandle) -> None:
    end = _tomorrow_end()

    def ends_tomorrow(doc: dict[str, Any]) -> None:
        next(g for g in doc["grants"] if g["service"] == "file-drop")["expires"] = (end - dt.timedelta(days=1)).date().isoformat()

    with lab.edited("globex", ends_tomorrow):
        assert lab.ctl("apply", "--yes").returncode == 0
        revoked = ctl_host(lab, "revoke", "globex", "--grant", "erp-db", "--reason", "restore test (CHG-16)")
        assert revoked.returncode == 0, revoked.stderr
        assert lab.eventually_reach("globex", "10.1.0.21", 8000) and not lab.reach("globex", "10.2.0.5", 5432)
        reboot(lab)
        with TimedProber(lab, FLOWS) as prober:
            assert boot_guard(lab).returncode == 0
            # the host was down past file-drop's end: restore as of one second after it
            result = ctl_host(lab, "restore", "--at", (end + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
            assert result.returncode == 0, result.stdout + result.stderr
            assert lab.eventually_reach("globex", "10.1.0.5", 443, seconds=10)
            time.sleep(2)
        assert prober.times(CRM) and not prober.times(ERP) and not prober.times(FILE_DROP), prober.result
        assert not any(prober.times(f) for f in NEVER), prober.result
        assert not lab.reach("globex", "10.1.0.21", 8000) and not lab.reach("globex", "10.2.0.5", 5432)
        sets = lab.gw_run("nft", "list", "table", "inet", "gatewayctl")
        assert "10.250.2.1 . 10.1.0.21" not in sets and "10.250.2.1 . 10.2.0.5" not in sets
        assert journal(lab)[-1]["revoked_kept"] == 1
        assert ctl_host(lab, "revoke", "--lift", "globex", "--grant", "erp-db").returncode == 0
    assert lab.eventually_reach("globex", "10.2.0.5", 5432, seconds=10)  # lifted and applied: open again


def test_a_broken_state_leaves_the_guard_and_says_why(lab: LabHandle) -> None:
    applied = lab.state / "applied.json"
    saved = applied.read_text()
    reboot(lab)
    applied.write_text(saved[: len(saved) // 2])  # cut short, as by a full disk
    try:
        guard = boot_guard(lab)
        assert guard.returncode == 0 and "applied.json" in guard.stderr, guard.stdout + guard.stderr
        result = ctl_host(lab, "restore", "--interface", lab.ifname, "--table", "gatewayctl")  # as the restore unit runs it
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(applied) in result.stderr and "blocked by the guard table inet gatewayctl_guard" in result.stderr
        assert journal(lab)[-1]["event"] == "restore-failed"
        assert "gatewayctl_guard" in tables(lab)
    finally:
        applied.write_text(saved)
    # a failure with the tunnel and the table up: the guard still holds every packet
    with TimedProber(lab, FLOWS) as prober:
        failed = ctl_host(lab, "restore", env={"GATEWAYCTL_FAILPOINT": "restore-before-lift:raise"})
        time.sleep(3)
    assert failed.returncode == 1 and "partner traffic stays blocked by the guard table" in failed.stderr, failed.stderr
    assert {"gatewayctl", "gatewayctl_guard"} <= tables(lab) and rx_from_globex(lab) > 0
    assert not any(prober.times(f) for f in FLOWS), prober.result
    assert journal(lab)[-1]["event"] == "restore-failed"
    result = ctl_host(lab, "restore")
    assert result.returncode == 0 and "guard table" in result.stdout, result.stdout + result.stderr
    assert lab.eventually_reach("globex", "10.1.0.5", 443, seconds=10)
    assert access(lab) == AS_BEFORE


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found.setdefault(name, []).extend(value.split() if name in ("Before", "After", "Wants", "Requires") else [value])
    return found


def test_the_boot_units_order_the_guard_before_the_network_and_pass_systemd_analyze(tmp_path: Path) -> None:
    from tests.conftest import AT, run_cli

    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(tmp_path), "--at", AT)
    assert result.exit_code == 0, result.stderr
    names = ("gatewayctl-guard.service", "gatewayctl-wireguard-go.service", "gatewayctl-restore.service")
    units = {n: _directives((tmp_path / "systemd" / n).read_text()) for n in names}
    guard, wggo, restore = (units[n] for n in names)
    ifname = "wg-partners"  # profiles/gateway.yaml
    assert guard["DefaultDependencies"] == ["no"] and "network-pre.target" in guard["Before"] + guard["Wants"]
    assert "network-pre.target" in guard["Wants"] and "nftables.service" in guard["After"]
    assert guard["ExecStart"] == [f"/usr/local/bin/gatewayctl -q restore --guard-only --interface {ifname} --table gatewayctl"]
    assert "gatewayctl-guard.service" in wggo["Requires"] and "gatewayctl-guard.service" in wggo["After"]
    assert "gatewayctl-restore.service" in wggo["Before"] and wggo["ExecStart"] == [f"/usr/bin/wireguard-go -f {ifname}"]
    assert "gatewayctl-guard.service" in restore["Requires"]
    assert {"gatewayctl-guard.service", "gatewayctl-wireguard-go.service"} <= set(restore["After"])
    assert {"network-pre.target", "systemd-networkd.service", f"wg-quick@{ifname}.service"} <= set(restore["Before"])
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(tmp_path / "systemd" / n) for n in names)],
                            capture_output=True, text=True, timeout=60)
    complaints = verify.stderr.splitlines()
    if not os.access("/usr/local/bin/gatewayctl", os.X_OK):  # where the units expect it installed; not on every test host
        complaints = [c for c in complaints if not c.endswith("Command /usr/local/bin/gatewayctl is not executable: "
                                                              "No such file or directory")]
    assert complaints == [], verify.stderr
