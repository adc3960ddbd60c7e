"""Smart-card session end closes the flows it opened (issue 13), by real packets through the real front.

Globex's grants wait for a session (tests/test_auth_lab.py builds that lab: nginx with mTLS in front
of `gatewayctl auth serve`, a 12 s session). Here globex also holds two gated grants on ports the
lab's responder does not use, served by tests/flowtool.py. A good certificate opens the session; a
long-lived TCP connection and a UDP flow from globex's peer then pass both ways; when the kernel drops
the session element (its timeout, with nothing of gatewayctl acting), both stop in both directions
within a second. The end is read from the kernel's own timer (`expires` of the element in sessions4,
bounded by the instants around the listing and one kernel tick: an interval of about 30 ms) and
cross-checked against the session length and the moment the session was asked for. The check is
that nothing passes, either way, later than 1 s after the latest possible end, and that both ways
passed in the second before the earliest possible end.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.loader.yaml12 import read_document
from tests.front_user import front_user
from tests.lab_helpers import LabHandle
from tests.test_access_ends import Flow, Flows, _spawn, _stop
from tests.test_auth_lab import SESSION_S, _curl, _setup, require_lab_tools

HOST = "10.1.0.21"  # file-drop's host: globex's partner config already routes it into the tunnel
TCP_PORT, UDP_PORT = 9500, 9600  # not catalogue ports at `lab up`, so the lab's responder leaves them free
SERVICES = {
    "session-tcp": {"addresses": [f"{HOST}/32"], "protocol": "tcp", "ports": [TCP_PORT], "classification": "internal"},
    "session-udp": {"addresses": [f"{HOST}/32"], "protocol": "udp", "ports": [UDP_PORT], "classification": "internal"},
}
TABLE = "gatewayctl"
CUT_S = 1.0  # the promise: nothing passes later than this after the session's end
# The kernel keeps set timers in jiffies (4 ms at HZ=250 here, 10 ms at the lowest HZ): a timer read or
# started between two ticks is off by up to one tick, so the bounds on the end are widened by this much.
TICK_S = 0.01


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """test_auth_lab's lab (same checks), plus globex's two gated flow grants, applied."""
    require_lab_tools()
    with front_user() as user:
        built = _setup(tmp_path_factory, user)
        try:
            ready = next(built)
            _add_gated_grants(ready["lab"])
            yield ready
        finally:
            next(built, None)  # resumes _setup past its yield: its teardown, also when the grants failed


def _add_gated_grants(lab: LabHandle) -> None:
    services = lab.profiles / "services.yaml"
    doc = read_document(services, services.name).data
    for name, spec in SERVICES.items():
        doc["services"][name] = {"description": "Session flow test.", "owner": "Test <t@example.com>", **spec}
    services.write_text(json.dumps(doc, indent=1))
    partner = lab.profiles / "partners" / "globex.yaml"
    globex = json.loads(partner.read_text())  # _setup wrote it as JSON
    globex["grants"] += [{"service": name, "justification": "Session flow test (CHG-13).", "approved_by": "Test Owner",
                          "expires": "2027-06-30"} for name in SERVICES]
    partner.write_text(json.dumps(globex, indent=1))
    applied = lab.ctl("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr


class SessionFlows(Flows):
    """Flows' logs and checks, with the server on this file's host and ports."""

    def __init__(self, lab: LabHandle, root: Path) -> None:
        self.lab, self.root = lab, root
        self.server_log = root / "server.log"
        self.server_log.touch()
        self.server = _spawn(lab.data["services_ns"], ["serve", "--tcp", str(TCP_PORT), "--udp", str(UDP_PORT),
                                                       "--udp-on", HOST, "--log", str(self.server_log)])
        self.clients: list[Flow] = []
        time.sleep(0.5)


@pytest.fixture
def flows(setup: dict[str, Any], tmp_path: Path) -> Iterator[SessionFlows]:
    running = SessionFlows(setup["lab"], tmp_path)
    try:
        yield running
    finally:
        running.stop_clients()
        _stop(running.server)


def _seconds(text: str) -> float:
    """nft's duration ("11s417ms", "1m2s") in seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|d|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(int(n) * units[u] for n, u in parts)


def session_end(lab: LabHandle, source: str) -> tuple[float, float]:
    """When the kernel drops `source`'s session element, as (earliest, latest) unix times: the timer's
    remaining time read by `nft list`, added to the instants just before and just after the listing."""
    before = time.time()
    listing = lab.gw_run("nft", "list", "set", "inet", TABLE, "sessions4")
    after = time.time()
    found = re.search(rf"\b{re.escape(source)} timeout \S+ expires (\S+?)[,\s}}]", listing)
    assert found, listing
    remaining = _seconds(found.group(1))
    return before + remaining - TICK_S, after + remaining + 0.001 + TICK_S  # nft shows whole ms, rounded down


def session_sources(lab: LabHandle) -> str:
    return lab.gw_run("nft", "list", "set", "inet", TABLE, "sessions4")


def test_session_end_closes_the_flows_it_opened(setup: dict[str, Any], flows: SessionFlows) -> None:
    lab: LabHandle = setup["lab"]
    src = lab.peer("globex")["tunnel"][0].split("/")[0]
    assert src not in session_sources(lab)
    assert not lab.reach("globex", HOST, TCP_PORT)  # the flow server listens: only the gate keeps it closed

    asked = time.time()
    code, body = _curl(setup, setup["alice"], "alice")
    answered = time.time()
    assert code == 200 and "session open: partner globex" in body, body
    end_lo, end_hi = session_end(lab, src)
    assert end_hi - end_lo < 0.5, "the listing took too long to bound the end closely"
    # the kernel's timer is the profile's session length, started while the request was being answered
    assert end_lo <= answered + SESSION_S and end_hi >= asked + SESSION_S - TICK_S, (asked, answered, end_lo, end_hi)

    tcp, udp = flows.start("globex", "tcp", TCP_PORT, HOST), flows.start("globex", "udp", UDP_PORT, HOST)
    flows.wait_flowing(tcp, udp, timeout_s=max(end_lo - time.time() - 2.0, 0.1))
    time.sleep(max(end_hi + CUT_S + 2.0 - time.time(), 0.0))

    for flow in (tcp, udp):
        # both ways while the session was open, up to its last second ...
        last_second = f"in the session's last second: {flows.describe(flow)}"
        assert any(end_lo - 1.0 < t <= end_lo for t in flow.client_rx()), f"no reply {last_second}"
        assert any(end_lo - 1.0 < t <= end_lo for t in flows.server_rx(flow)), f"nothing reached the service {last_second}"
        # ... and nothing, either way, later than CUT_S after the kernel dropped the session
        flows.assert_stopped_by(flow, end_hi)
    assert src not in session_sources(lab)
