"""Smart-card sessions without a gateway: the profile checks, the compiled front, the authorizer's
decisions, the session checks that drift uses, and plan/apply leaving sessions alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import pwd
import socket
import subprocess
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gatewayctl.apply.engine import carried_sessions, prepare
from gatewayctl.auth import log
from gatewayctl.auth.current import Current
from gatewayctl.auth.decide import Authorizer
from gatewayctl.auth.inforce import AppliedFile, InForce, parse
from gatewayctl.auth.serve import Service, make_server
from gatewayctl.auth.sessions import live_sessions, problems
from gatewayctl.host.base import read
from gatewayctl.host.errors import HostError
from gatewayctl.model.gateway import SHARED_ACCOUNTS
from gatewayctl.pipeline import Compiled, compile_profiles
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import spec_to_json
from gatewayctl.plan.specdigest import digest
from gatewayctl.render.environment import make_environment
from gatewayctl.state import StateDir
from tests.conftest import AT, AT_DT, run_cli
from tests.pki import Pki, pem
from tests.test_apply_engine import RecordingHost, apply
from tests.test_apply_engine import estate as keyed_estate  # noqa: F401 (a fixture)

AUTH = """
auth:
  port: 8443
  session: 1h
  server_certificate: /etc/gatewayctl/front.crt
  server_key: /etc/gatewayctl/front.key
  crl_file: {crl}
"""
GLOBEX_SOURCE = "10.250.2.1"
SECRET = "5e" * 32  # the front's secret in these tests


def gate(root: Path, pki: Pki, crl: Path | None = None, duration: str = "15m") -> None:
    """Give the estate a session front and make globex's grants wait for a session."""
    (root / "ca" / "globex-issuing-ca.pem").write_bytes(pem(pki.issuing))
    (root / "ca" / "globex-root-ca.pem").write_bytes(pem(pki.root))
    gateway = root / "gateway.yaml"
    gateway.write_text(gateway.read_text() + AUTH.format(crl=crl or "/var/lib/gatewayctl/crls.pem"))
    path = root / "partners" / "globex.yaml"
    path.write_text(path.read_text() + f"  ca_chain: [ca/globex-root-ca.pem]\n  session: {{duration: {duration}}}\n"
                    "  identity: {source: upn, allowed: [alice@globex.example]}\n")


@pytest.fixture
def pki() -> Pki:
    return Pki(AT_DT)


@pytest.fixture
def gated(keyed_estate: Path, pki: Pki) -> tuple[Compiled, RecordingHost, Any]:  # noqa: F811
    """The gated estate compiled and applied to a fake host: (compiled, host, the apply's preparation)."""
    gate(keyed_estate, pki)
    compiled = compile_profiles(keyed_estate, AT_DT)
    host = RecordingHost()
    return compiled, host, apply(compiled.policy, host)


def headers(cert: Any, source: str = GLOBEX_SOURCE, partner: str = "globex", verify: str = "SUCCESS",
            secret: str = SECRET) -> dict[str, str]:
    """The headers nginx sets (see templates/front/nginx.conf.j2) for a TLS connection that verified `cert`."""
    return {"x-gatewayctl-address": source, "x-gatewayctl-partner": partner, "x-gatewayctl-verify": verify,
            "x-gatewayctl-certificate": urllib.parse.quote(pem(cert).decode()) if cert is not None else "",
            "x-gatewayctl-fingerprint": hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest() if cert is not None else "",
            "x-gatewayctl-tls-session": "ab" * 32, "x-gatewayctl-front-secret": secret}


def applied_json(prep: Any) -> dict[str, Any]:
    """What `apply` writes to applied.json for this preparation (the spec and its digest)."""
    return {**spec_to_json(prep.desired), "digest": digest(prep.desired)}


def in_force(prep: Any) -> InForce:
    return parse(applied_json(prep), "-")


def service(compiled: Compiled, prep: Any, host: Any, state: StateDir, out: Any, **kw: Any) -> Service:
    """The authorizer's service with `prep` as the last apply (written to the state folder)."""
    state.ensure()
    state.write_json("applied.json", applied_json(prep))
    current = Current(Authorizer(compiled, None), lambda: Authorizer(compile_profiles(compiled.estate.root, AT_DT), None),
                      AppliedFile(state.root), out)
    return Service(current, host, state, out, SECRET, **kw)


def test_session_needs_the_gateway_front(estate: Path) -> None:
    path = estate / "partners" / "globex.yaml"
    path.write_text(path.read_text() + "  session: {duration: 15m}\n")
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert "partners/globex.yaml:46" in result.stderr or "globex.yaml:4" in result.stderr, result.stderr
    assert "gateway.yaml has no auth section" in result.stderr


@pytest.mark.parametrize(("duration", "message"), [("2h", "must not exceed gateway.yaml's auth.session (3600 s), found 7200 s"),
                                                   ("5s", "must be between 10s and 24h, found 5s"),
                                                   ("15 minutes", "must be a duration such as 90s, 15m or 8h")])
def test_bad_session_durations(estate: Path, pki: Pki, duration: str, message: str) -> None:
    gate(estate, pki, duration=duration)
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "partners/globex.yaml:" in result.stderr


def test_build_compiles_the_front_and_gates_the_grants(estate: Path, pki: Pki, tmp_path: Path) -> None:
    gate(estate, pki)
    result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    conf = (out / "front" / "nginx.conf").read_text()
    assert "listen 10.250.0.1:8443 ssl;" in conf and "listen [fd00:250::1]:8443 ssl;" in conf
    assert "ssl_verify_depth 2;" in conf and "ssl_crl /var/lib/gatewayctl/crls.pem;" in conf
    assert "100.64.20.0/24 globex;" in conf and "10.250.2.1 globex;" in conf
    assert "acme" not in conf  # only session partners reach the front
    assert conf.count('"globex|CN=Globex Smart Card Issuing CA" 1;') == 1
    bundle = (out / "front" / "client-cas.pem").read_text()
    assert pem(pki.issuing).decode() in bundle and pem(pki.root).decode() in bundle
    ruleset = (out / "nftables" / "gatewayctl.nft").read_text()
    gated = ruleset.split("set gated4 {")[1].split("set gated6")[0]
    assert "10.250.2.1 . 10.2.0.5 . tcp . 5432" in gated
    assert "10.250.2.1 . 10.2.0.5" not in ruleset.split("set grants4 {")[1].split("set grants6")[0]
    assert "ip saddr @sessions4 ip saddr . ip daddr . meta l4proto . th dport @gated4 accept" in ruleset
    assert 'ip saddr @auth_clients4 tcp dport 8443 accept' in ruleset
    partner = (out / "partners" / "globex" / "globex-dc1.conf").read_text()
    assert "10.250.0.1/32" in partner  # the partner routes the front into its tunnel
    assert "10.250.0.1/32" not in (out / "partners" / "acme" / "acme-hq.conf").read_text()
    unit = (out / "systemd" / "gatewayctl-auth.service").read_text()
    assert "auth serve" in unit and "CapabilityBoundingSet=CAP_NET_ADMIN" in unit
    units = sorted(str(p) for p in (out / "systemd").iterdir())
    assert [Path(u).name for u in units] == ["gatewayctl-auth.service", "gatewayctl-front.service",
                                             "gatewayctl-guard.service", "gatewayctl-report.service",
                                             "gatewayctl-report.timer", "gatewayctl-restore.service",
                                             "gatewayctl-wireguard-go.service"]
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr  # systemd's own check of the units


def test_the_authorizer_decides_on_every_requirement(keyed_estate: Path, pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    crl = tmp_path / "crls.pem"
    bob = pki.user(upn="alice@globex.example")
    crl.write_bytes(pki.crl([bob]).public_bytes(Encoding.PEM) + pki.root_crl().public_bytes(Encoding.PEM))
    gate(keyed_estate, pki, crl)
    compiled = compile_profiles(keyed_estate, AT_DT)
    authorizer = Authorizer(compiled, crl)
    force = in_force(apply(compiled.policy, RecordingHost()))
    good = authorizer.decide(headers(pki.user()), AT_DT, force)
    assert (good.outcome, good.partner, good.identity, good.session_seconds) == ("accepted", "globex",
                                                                                  "alice@globex.example", 900)
    assert good.tls_session == "ab" * 32
    lan = authorizer.decide(headers(pki.user(), source="100.64.20.7"), AT_DT, force)
    assert lan.outcome == "accepted" and lan.source == "100.64.20.7"
    cases = {
        "not a session partner": (headers(pki.user(), source="10.250.1.1", partner=""), "10.250.1.1: not an address of a partner"),
        "unknown source": (headers(pki.user(), source="192.0.2.9", partner=""), "not an address of a partner"),
        "front disagrees": (headers(pki.user(), partner="acme"), "front and authorizer disagree"),
        "front failed": (headers(pki.user(), verify="FAILED:certificate has expired"), "front: client certificate FAILED"),
        "no certificate": (headers(None), "certificate: not a PEM certificate"),
        "policy": (headers(pki.user(policies=())), "certificate policy 2.16.840.1.101.3.2.1.3.13"),
        "eku": (headers(pki.user(ekus=("1.3.6.1.5.5.7.3.2",))), "extended key usage 1.3.6.1.4.1.311.20.2.2"),
        "key": (headers(pki.user(rsa_bits=1024)), "key strength: RSA >= 2048: RSA 1024"),
        "identity": (headers(pki.user(upn="mallory@globex.example")), "mallory@globex.example"),
        "revoked": (headers(bob), f"revocation: not revoked: serial {bob.serial_number:x} revoked"),
        "other CA": (headers(Pki(AT_DT, name="Initrode").user()), "path to one of the partner's issuing CAs"),
        "expired": (headers(pki.user(days=(-400, -5))), "validity: expired"),
        "another certificate than the TLS connection's": (
            {**headers(pki.user()), "x-gatewayctl-fingerprint": headers(pki.user())["x-gatewayctl-fingerprint"]},
            "not the one the TLS connection verified"),
        "no fingerprint": ({**headers(pki.user()), "x-gatewayctl-fingerprint": ""}, "not the one the TLS connection"),
    }
    for name, (request, reason) in cases.items():
        decision = authorizer.decide(request, AT_DT, force)
        assert decision.outcome == "rejected", name
        assert any(reason in r for r in decision.reasons), (name, decision.reasons)
        assert decision.session_seconds is None
    nothing = authorizer.decide(headers(pki.user()), AT_DT, "nothing has been applied on this host")
    assert nothing.outcome == "rejected" and nothing.reasons == ("nothing has been applied on this host",)


def test_service_opens_sessions_logs_and_refuses(gated: Any, pki: Pki, tmp_path: Path) -> None:
    compiled, host, prep = gated
    state = StateDir(tmp_path / "state")
    lines: list[str] = []
    authz = service(compiled, prep, host, state, lines.append)
    status, body = authz.handle(headers(pki.user(policies=())))
    assert status == 403 and "certificate policy" in body
    assert host.element_ops == []  # a refusal touches nothing
    status, body = authz.handle(headers(pki.user()))
    assert status == 200 and "session open: partner globex, alice@globex.example" in body, body
    assert host.element_ops[-1] == ({}, {"sessions4": ["10.250.2.1 timeout 15m"]})
    status, _ = authz.handle(headers(pki.user()))  # renewing replaces the timer
    assert status == 200 and host.element_ops[-1] == ({"sessions4": ["10.250.2.1"]}, {"sessions4": ["10.250.2.1 timeout 15m"]})
    records = log.read(state.root)
    assert [r["outcome"] for r in records] == ["rejected", "accepted", "accepted"]
    assert records[1]["identity"] == "alice@globex.example" and records[1]["serial"] and records[1]["partner"] == "globex"
    assert oct((state.root / log.LOG_NAME).stat().st_mode & 0o777) == "0o600"
    assert "BEGIN CERTIFICATE" not in (state.root / log.LOG_NAME).read_text()
    assert lines[0].startswith("auth rejected partner=globex source=10.250.2.1") and "auth accepted" in lines[1]

    # the session is not a plan difference, and the logged session is not a problem
    live = read(host, "wg-partners", "gatewayctl")
    assert "10.250.2.1" in live.nft.sets["sessions4"].elements  # type: ignore[union-attr]
    again = prepare(compiled.policy, host, make_environment(), Secrets(), AT_DT, {})
    assert again.plan.empty, [str(c) for c in again.plan.changes]
    now = dt.datetime.strptime(records[-1]["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    sessions = live_sessions(live.nft, compiled.policy, records, now)
    assert [(s.partner, s.source, s.decision and s.decision["identity"]) for s in sessions] == [
        ("globex", "10.250.2.1", "alice@globex.example")]
    assert problems(sessions, compiled.policy) == []


def _ask(path: Path) -> str:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(path))
    client.sendall(b"GET /session HTTP/1.0\r\nX-Gatewayctl-Address: 10.250.2.1\r\n\r\n")
    reply = b""
    while chunk := client.recv(4096):
        reply += chunk
    client.close()
    return reply.decode()


def test_only_the_fronts_user_may_ask(gated: Any, tmp_path: Path) -> None:
    """A process of another user is refused by the kernel's word (SO_PEERCRED); the front's own user
    asking is in tests/test_hostile_auth.py (it needs root to run a process as that user)."""
    compiled, host, prep = gated
    state = StateDir(tmp_path / "state")
    lines: list[str] = []
    me = os.getuid()
    other = next(p for p in pwd.getpwall() if p.pw_uid not in (0, me) and p.pw_name not in SHARED_ACCOUNTS)
    server = make_server(service(compiled, prep, host, state, lines.append), tmp_path / "auth.sock", other.pw_name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert oct((tmp_path / "auth.sock").stat().st_mode & 0o777) == "0o660"
        reply = _ask(tmp_path / "auth.sock")
    finally:
        server.shutdown()
        server.server_close()
    assert "403 Forbidden" in reply, reply
    assert lines[0].startswith(f"auth refused: a connection from uid {me}")
    assert host.element_ops == []
    for shared in ("www-data", "root"):  # a user that other software runs as is never the front's
        with pytest.raises(HostError, match="must be a user of its own"):
            make_server(service(compiled, prep, host, state, lines.append), tmp_path / "auth2.sock", shared)


def test_sessions_that_should_not_exist(gated: Any) -> None:
    policy, host = gated[0].policy, gated[1]
    host.nft_elements("gatewayctl", {}, {"sessions4": ["10.250.1.1 timeout 1h", "10.250.2.1 timeout 20h",
                                                       "100.64.20.9"]})
    live = read(host, "wg-partners", "gatewayctl")
    found = {(p.kind, p.source) for p in problems(live_sessions(live.nft, policy, [], AT_DT), policy)}
    assert found == {("session-unexpected", "10.250.1.1"), ("session-too-long", "10.250.2.1"),
                     ("session-unlogged", "10.250.2.1"), ("session-without-timeout", "100.64.20.9")}


def test_a_table_replace_carries_only_sessions_that_could_have_been_opened(gated: Any) -> None:
    compiled, host, prep = gated
    policy = compiled.policy
    host.nft_elements("gatewayctl", {}, {"sessions4": ["10.250.2.1 timeout 10m", "100.64.20.9 timeout 20h",
                                                       "10.250.1.1 timeout 5m"]})
    live = read(host, "wg-partners", "gatewayctl")
    text = carried_sessions(live, prep.desired, policy, AT_DT)
    assert text.startswith("add element inet gatewayctl sessions4 { 10.250.2.1 timeout ")
    assert "100.64.20.9" not in text and "10.250.1.1" not in text  # too long; not a session partner's address


def test_estates_without_a_front_are_unchanged(estate: Path) -> None:
    policy = compile_profiles(estate, AT_DT).policy
    assert policy.auth is None and "gated4" not in policy.table.by_set()
    assert dataclasses.replace(policy.table, auth_clients=()) == policy.table
    assert [n for n in policy.table.by_set() if n.startswith(("gated", "auth_clients", "sessions"))] == []
