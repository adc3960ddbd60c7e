"""A pair's lab with flows running, failures made on the active node, and what the partners saw measured.

Used by tests/test_failover.py and bench/bench_failover.py. The estate is this file's own: services on
10.1.0.10 (tcp 9000-9003 granted, 9010 granted then revoked on both nodes), 2222 listening but never
granted. Every measurement comes from the partners' side: probe logs (tests/ha_probe.py) and the
long-lived flow's logs (tests/flowtool.py), all stamped by the one clock of this machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewayctl.lab import core, ha

REPO = Path(__file__).resolve().parents[1]
HOST = "10.1.0.10"
SERVICES = {
    "stream-tcp": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": ["9000-9003"], "classification": "internal"},
    "keep-tcp": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": [9010], "classification": "internal"},
}
GRANTS = {"umbrella": ["stream-tcp", "keep-tcp"], "acme": ["stream-tcp"]}
REVOKED = ("umbrella", "keep-tcp")  # granted in the profiles, revoked with `gatewayctl revoke` on both nodes
LONG_PORT, NEW_PORT, REVOKED_PORT, UNGRANTED_PORT = 9000, 9001, 9010, 2222
# probe indexes in the prober's log
NEW_UMBRELLA, UNGRANTED, REVOKED_PROBE, NEW_ACME = 0, 1, 2, 3
KINDS = ("keepalived", "underlay", "wireguard")


def grant(service: str) -> dict[str, Any]:
    return {"service": service, "justification": "Failover test (CHG-16).", "approved_by": "Test Owner",
            "expires": "2027-06-30"}


@dataclass
class Event:
    """One failure (or failback) and what the partners saw."""

    kind: str
    node: str  # the node it was made on
    took_over: str | None  # the node active afterwards
    t0: float
    t1: float
    new_conn_s: float | None  # until a new connection from the endpoint partner worked again (0: never failed)
    roaming_new_conn_s: float | None  # the same for the roaming partner (no endpoint in its profile)
    long_gap_s: float  # the longest silence of the long-lived flow (either direction) around t0
    long_resume_s: float | None  # from t0 until data passed both ways again
    long_alive: bool  # the long-lived connection's client still runs (no reset, no close)
    later_failures: int = 0  # new-connection failures after the first recovery, in the window
    took_s: float | None = None  # from t0 until the expected node held the floating address
    outage_s: float | None = None  # new connections: from the first failed probe until the first success after it

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Pair:
    root: Path
    lab: core.Lab = field(init=False)
    pids: list[int] = field(default_factory=list)

    def up(self, profiles: Path, roaming: bool = False) -> str:
        """`gatewayctl lab up --ha`, then this file's estate applied (standby first) and the revocation made."""
        done = subprocess.run([sys.executable, "-m", "gatewayctl", "--profiles", str(profiles), "lab", "up", "--ha",
                               "--dir", str(self.root)], capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        loaded = core.load(self.root)
        if loaded is None:
            raise AssertionError(f"lab up --ha made no lab: {done.stdout}{done.stderr}")
        self.lab = loaded
        if done.returncode != 0:
            raise AssertionError(f"lab up --ha failed: {done.stdout[-3000:]}{done.stderr}")
        self._estate(roaming)
        self.apply_pair()
        for name in self.standby_first():
            result = ha.gatewayctl(self.lab, name, "revoke", REVOKED[0], "--grant", REVOKED[1], "--reason",
                                   "Failover test: revoked before the failover")
            assert result.returncode == 0, result.stdout + result.stderr
        return done.stdout

    def _estate(self, roaming: bool) -> None:
        profiles = Path(self.lab.data["profiles"])
        services = json.loads(json.dumps(_read(profiles / "services.yaml")))
        for name, spec in SERVICES.items():
            services["services"][name] = {"description": "Failover test.", "owner": "Test <t@example.com>", **spec}
        (profiles / "services.yaml").write_text(json.dumps(services, indent=1))
        for partner, names in GRANTS.items():
            if partner == "acme" and not roaming:
                continue
            path = profiles / "partners" / f"{partner}.yaml"
            doc = _read(path)
            doc["grants"] += [grant(n) for n in names]
            doc["stage"] = "strategic"  # room for the test's grants under the stage's ceiling
            path.write_text(json.dumps(doc, indent=1))

    def standby_first(self) -> list[str]:
        active = ha.active(self.lab)
        return sorted(ha.node_names(), key=lambda n: n == active)

    def apply_pair(self) -> None:
        for name in self.standby_first():
            result = ha.gatewayctl(self.lab, name, "apply", "--yes")
            assert result.returncode == 0, f"apply on {name}: {result.stdout}{result.stderr}"

    def peer(self, partner: str) -> dict[str, Any]:
        return next(p for p in self.lab.data["peers"] if p["partner"] == partner)

    def src(self, partner: str) -> str:
        return str(self.peer(partner)["tunnel"][0].split("/")[0])

    # -- the partners' traffic
    def start_traffic(self, roaming: bool = False) -> None:
        self.server_log, self.client_log, self.probe_log = (self.root / n for n in ("server.log", "client.log", "probe.log"))
        for log in (self.server_log, self.client_log, self.probe_log):
            log.touch()
        self.server = self._spawn(self.lab.data["services_ns"], "tests.flowtool", "serve", "--tcp", "9000,9001,9010",
                                  "--udp-on", HOST, "--log", str(self.server_log))
        time.sleep(0.5)
        umbrella = self.peer("umbrella")
        self.client = self._spawn(umbrella["ns"], "tests.flowtool", "client", "--src", self.src("umbrella"), "--dst", HOST,
                                  "--proto", "tcp", "--port", str(LONG_PORT), "--log", str(self.client_log))
        specs = [{"src": self.src("umbrella"), "dst": HOST, "proto": "tcp", "port": port}
                 for port in (NEW_PORT, UNGRANTED_PORT, REVOKED_PORT)]
        self._spawn(umbrella["ns"], "tests.ha_probe", str(self.probe_log), json.dumps(specs))
        if roaming:
            acme = [{"src": self.src("acme"), "dst": HOST, "proto": "tcp", "port": NEW_PORT}]
            self._spawn(self.peer("acme")["ns"], "tests.ha_probe", str(self.root / "probe-acme.log"), json.dumps(acme))

    def _spawn(self, ns: str, module: str, *args: str) -> int:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", module, *args], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.pids.append(proc.pid)
        return proc.pid

    def tcp_loose(self, loose: bool) -> None:
        """nf_conntrack_tcp_loose on both nodes: 0 makes a mid-stream TCP packet with no tracked flow invalid
        (the ruleset drops it), so a long-lived connection survives a failover only with its synced state."""
        for node in self.lab.data["ha"]["nodes"].values():
            core.sh("ip", "netns", "exec", node["ns"], "sysctl", "-qw", f"net.netfilter.nf_conntrack_tcp_loose={int(loose)}")

    def synced(self, name: str) -> list[str]:
        """The long-lived flow's entries in node `name`'s conntrackd external cache (the other node's state)."""
        node = self.lab.data["ha"]["nodes"][name]
        listing = core.sh("ip", "netns", "exec", node["ns"], "conntrackd", "-C", f"{node['dir']}/conntrackd.conf", "-e",
                          check=False).stdout
        found = []
        for line in listing.splitlines():
            if "src=" not in line:
                continue
            original = "src=" + line.split("src=", 2)[1]  # the first tuple: the direction the flow was opened in
            if original.startswith(f"src={self.src('umbrella')} dst={HOST} ") and f"dport={LONG_PORT} " in original:
                found.append(line)
        return found

    def new_long_flow(self) -> None:
        """Replace the long-lived connection with a new one (a flow neither node has synchronised yet)."""
        self._stop(self.client)
        self.client_log = self.root / f"client-{time.time():.0f}.log"
        self.client_log.touch()
        self.client = self._spawn(self.peer("umbrella")["ns"], "tests.flowtool", "client", "--src", self.src("umbrella"),
                                  "--dst", HOST, "--proto", "tcp", "--port", str(LONG_PORT), "--log", str(self.client_log))

    def _stop(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if pid in self.pids:
            self.pids.remove(pid)

    def stop_traffic(self) -> None:
        for pid in list(self.pids):
            self._stop(pid)

    def down(self) -> None:
        self.stop_traffic()
        subprocess.run([sys.executable, "-m", "gatewayctl", "lab", "down", "--dir", str(self.root)], capture_output=True,
                       timeout=120, check=False)

    # -- what the partners saw
    def probes(self, log: Path | None = None) -> list[tuple[float, float, int, bool]]:
        lines = (log or self.probe_log).read_text().splitlines()
        return [(float(a), float(b), int(c), d == "1") for a, b, c, d in (line.split() for line in lines if line.count(" ") == 3)]

    def long_rx(self) -> tuple[list[float], list[float]]:
        """(what the partner received, what the service received) of the long-lived flow."""
        client = [float(line.split()[0]) for line in self.client_log.read_text().splitlines()]
        src = self.src("umbrella")
        server = [float(t) for t, _, proto, peer, port in (line.split() for line in self.server_log.read_text().splitlines())
                  if (proto, peer, port) == ("tcp", src, str(LONG_PORT))]
        return client, server

    def long_alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.client}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def wait_flowing(self, since: float, timeout_s: float = 40.0) -> bool:
        """Until, after `since`, a new connection worked and the long-lived flow passed data both ways."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            client, server = self.long_rx()
            new_ok = any(ok and s > since for s, _, i, ok in self.probes() if i == NEW_UMBRELLA)
            if new_ok and any(t > since for t in client) and any(t > since for t in server):
                return True
            time.sleep(0.2)
        return False

    # -- failures and failbacks
    def fail(self, kind: str, node: str) -> None:
        {"keepalived": lambda: ha.stop(self.lab, node, "keepalived"),
         "underlay": lambda: ha.underlay(self.lab, node, False),
         "wireguard": lambda: ha.kill_wireguard(self.lab, node)}[kind]()

    def restore(self, kind: str, node: str) -> None:
        def reapply() -> None:
            # what apply's refusal tells the operator after a crash: remove the dead process's socket, apply
            Path(self.lab.data["ha"]["nodes"][node]["wg_dir"], f"{self.lab.data['ifname']}.sock").unlink(missing_ok=True)
            result = ha.gatewayctl(self.lab, node, "apply", "--yes")
            assert result.returncode == 0, f"apply on {node}: {result.stdout}{result.stderr}"
        actions: dict[str, Callable[[], object]] = {"keepalived": lambda: ha.start_keepalived(self.lab, node),
                                                    "underlay": lambda: ha.underlay(self.lab, node, True),
                                                    "wireguard": reapply}
        actions[kind]()

    def event(self, kind: str, node: str, action: Callable[[], None], expect_active: str, roaming: bool = False,
              settle_s: float = 2.0, flow_timeout_s: float = 40.0) -> Event:
        """Make the failure (or failback), wait for `expect_active` to hold the floating address and the
        partners' traffic to pass again; measure the window."""
        t0 = time.time()
        action()
        deadline = t0 + 30.0
        while time.time() < deadline and ha.active(self.lab) != expect_active:
            time.sleep(0.05)
        took, took_s = ha.active(self.lab), time.time() - t0
        self.wait_flowing(time.time(), flow_timeout_s)
        if roaming:
            self._wait_roaming(t0, 30.0)
        time.sleep(settle_s)
        t1 = time.time()
        return dataclasses.replace(self.measure(kind, node, took, t0, t1, roaming), took_s=took_s)

    def _wait_roaming(self, t0: float, timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        log = self.root / "probe-acme.log"
        while time.time() < deadline:
            seen = [p for p in self.probes(log) if p[0] >= t0]
            if recovery(seen, 0, t0, time.time())[0] is not None and seen and seen[-1][3]:
                return
            time.sleep(0.2)

    def measure(self, kind: str, node: str, took: str | None, t0: float, t1: float, roaming: bool) -> Event:
        new_s, later = recovery(self.probes(), NEW_UMBRELLA, t0, t1)
        outage = outage_of(self.probes(), NEW_UMBRELLA, t0, t1)
        roaming_s = recovery(self.probes(self.root / "probe-acme.log"), 0, t0, t1)[0] if roaming else None
        client, server = self.long_rx()
        gap, resume = long_gap(client, server, t0, t1)
        return Event(kind, node, took, t0, t1, new_s, roaming_s, gap, resume, self.long_alive(), later, outage_s=outage)

    def leaks(self) -> dict[str, int]:
        """Probes that passed where nothing may pass, over the whole run."""
        probes = self.probes()
        starts = sorted(s for s, _, i, _ in probes if i == UNGRANTED)
        return {"ungranted": sum(ok for _, _, i, ok in probes if i == UNGRANTED),
                "revoked": sum(ok for _, _, i, ok in probes if i == REVOKED_PROBE),
                "rounds": len(starts),
                "longest_unprobed_ms": int(1000 * max((b - a for a, b in itertools.pairwise(starts)), default=0))}


def recovery(probes: list[tuple[float, float, int, bool]], index: int, t0: float, t1: float) -> tuple[float | None, int]:
    """(seconds from t0 until the first success after the first failure, failures after that success);
    (0.0, n) when no probe started in the window failed; (None, 0) when none succeeded after failing."""
    window = sorted((s, e, ok) for s, e, i, ok in probes if i == index and t0 <= s < t1)
    first_fail = next((s for s, _, ok in window if not ok), None)
    if first_fail is None:
        return 0.0, 0
    back = next(((s, e) for s, e, ok in window if ok and s > first_fail), None)
    if back is None:
        return None, 0
    return back[1] - t0, sum(1 for s, _, ok in window if not ok and s > back[0])


def outage_of(probes: list[tuple[float, float, int, bool]], index: int, t0: float, t1: float) -> float | None:
    """Seconds from the start of the first failed probe in the window to the end of the first success after
    it (0.0: none failed; None: none succeeded again)."""
    window = sorted((s, e, ok) for s, e, i, ok in probes if i == index and t0 <= s < t1)
    first_fail = next((s for s, _, ok in window if not ok), None)
    if first_fail is None:
        return 0.0
    back = next((e for s, e, ok in window if ok and s > first_fail), None)
    return None if back is None else back - first_fail


def long_gap(client: list[float], server: list[float], t0: float, t1: float) -> tuple[float, float | None]:
    """(longest silence of either direction in [t0 - 1, t1], seconds from t0 until both directions passed
    again after it); a silence that lasts to t1 counts until t1 and has no resumption (None)."""
    gaps, resumes = [], []
    for times in (client, server):
        marks = [t0 - 1.0, *sorted(t for t in times if t0 - 1.0 <= t <= t1), t1]
        index = max(range(len(marks) - 1), key=lambda i: marks[i + 1] - marks[i])
        gaps.append(marks[index + 1] - marks[index])
        resumes.append(None if index + 1 == len(marks) - 1 else max(marks[index + 1] - t0, 0.0))
    known = [r for r in resumes if r is not None]
    return max(gaps), max(known) if len(known) == len(resumes) else None


def _read(path: Path) -> dict[str, Any]:
    from gatewayctl.loader.yaml12 import read_document

    data: dict[str, Any] = read_document(path, path.name).data
    return data
