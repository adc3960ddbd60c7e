"""Smart-card sessions end to end on the lab: real nginx (mTLS), the authorizer, real packets.

Globex's grants wait for a session. Before authentication its granted flow fails; a curl with a good
client certificate through the real front opens it; it then works; after the session times out it
fails again; rejected certificates open nothing. The CAs have names as long as real PIV CAs', the
front runs as a user of its own (created here with useradd, removed afterwards), a process of that
user that is not nginx gets nothing, an apply that removes globex's gated grants refuses the next
session with no restart of the authorizer, and nginx limits the rate per source.
Needs root, nginx, curl, nftables, wireguard-go.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gatewayctl.certs.names import openssl_rfc2253
from gatewayctl.loader.yaml12 import read_document
from gatewayctl.render.environment import nginx_string
from tests.conftest import PROFILES
from tests.front_user import front_user
from tests.lab_helpers import LabHandle
from tests.netns import sh
from tests.piv_pki import PivPki
from tests.pki import Pki, pem

SESSION_S = 12
ERP_DB = ("10.2.0.5", 5432)  # a grant of globex (erp-db)
FRONT = "10.250.0.1"


def require_lab_tools() -> None:
    """Root, nginx and curl: skipped outside CI without root, failed in CI (it must provide them)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the lab needs root: CI must run as root")
        pytest.skip("the lab needs root")
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is missing: ./setup.sh installs it")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_lab_tools()
    with front_user() as user:
        yield from _setup(tmp_path_factory, user)


def _setup(tmp_path_factory: pytest.TempPathFactory, user: str) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("auth")
    now = dt.datetime.now(dt.UTC)
    pki = PivPki(now)  # CA names as long as real PIV CAs' (nginx's map must be sized for them)
    profiles = base / "profiles"
    shutil.copytree(PROFILES, profiles)
    (profiles / "ca" / "globex-issuing-ca.pem").write_bytes(pem(pki.issuing))
    (profiles / "ca" / "globex-root-ca.pem").write_bytes(pem(pki.root))
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    cert, key = pki.server(FRONT)
    (secrets / "front.crt").write_bytes(cert)
    (secrets / "front.key").write_bytes(key)
    os.chmod(secrets / "front.key", 0o600)
    crl_file = secrets / "crls.pem"
    alice, revoked = pki.user(), pki.user(upn="bob@globex.example")
    sibling_key, sibling, sibling_crl = pki.sibling("Globex Contractors CA")
    crl_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in (pki.crl([revoked]), pki.root_crl(), sibling_crl)))
    # nginx's workers (the front's user) must reach the socket: pytest's temporary folders are private to root
    run_dir = Path(tempfile.mkdtemp(prefix="gatewayctl-test-", dir="/run"))
    run_dir.chmod(0o755)
    out = base / "out"
    gateway = read_document(profiles / "gateway.yaml", "gateway.yaml").data
    gateway["auth"] = {"port": 8443, "session": "8h", "server_certificate": str(secrets / "front.crt"),
                       "server_key": str(secrets / "front.key"), "crl_file": str(crl_file),
                       "front_dir": str(out / "front"), "socket": str(run_dir / "auth.sock"), "front_user": user}
    (profiles / "gateway.yaml").write_text(json.dumps(gateway, indent=1))
    globex = read_document(profiles / "partners" / "globex.yaml", "globex.yaml").data
    globex["certificates"].update(ca_chain=["ca/globex-root-ca.pem"], revocation="required",
                                  session={"duration": f"{SESSION_S}s"},
                                  identity={"source": "upn", "allowed": ["alice@globex.example", "bob@globex.example"]})
    (profiles / "partners" / "globex.yaml").write_text(json.dumps(globex, indent=1))

    root = base / "lab"
    up = subprocess.run([sys.executable, "-m", "gatewayctl", "--profiles", str(profiles), "lab", "up", "--dir", str(root)],
                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    lab = LabHandle(root)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        built = lab.ctl("build", "-o", str(out))
        assert built.returncode == 0, built.stderr
        logs = base / "logs"
        logs.mkdir()
        authorizer = subprocess.Popen(
            [sys.executable, "-m", "gatewayctl", "--profiles", str(lab.profiles), "auth", "serve", "--netns", lab.gw,
             "--state-dir", str(lab.state)], stdout=open(logs / "auth.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            stdin=subprocess.DEVNULL)
        procs.append(authorizer)
        _wait(lambda: (run_dir / "auth.sock").is_socket(), "the authorizer's socket", logs / "auth.log")
        front = subprocess.Popen(
            ["ip", "netns", "exec", lab.gw, "nginx", "-c", str(out / "front" / "nginx.conf"), "-g", "daemon off;"],
            stdout=open(logs / "front.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # noqa: SIM115
        procs.append(front)
        _wait(lambda: _listening(lab.gw, 8443), "nginx on port 8443", logs / "front.log")
        users = base / "users"
        users.mkdir()
        yield {"lab": lab, "pki": pki, "users": users, "alice": alice, "revoked": revoked,
               "sibling": pki.user(signer=(sibling_key, sibling)), "sibling_ca": pem(sibling), "server_ca": profiles / "ca" /
               "globex-root-ca.pem", "logs": logs, "out": out, "front_user": user, "socket": run_dir / "auth.sock"}
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run([sys.executable, "-m", "gatewayctl", "lab", "down", "--dir", str(root)], capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait(ready: Any, what: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up: {log.read_text()}")


def _listening(ns: str, port: int) -> bool:
    return f":{port} " in sh("ip", "netns", "exec", ns, "ss", "-Htln").stdout


def _curl(setup: dict[str, Any], cert: x509.Certificate | None, name: str, chain: bytes = b"") -> tuple[int, str]:
    """curl from globex's site, through its tunnel, to the front; (HTTP status or 0, body). `chain`:
    CA certificates the client sends after its own (as a smart card's middleware may)."""
    lab: LabHandle = setup["lab"]
    args = ["ip", "netns", "exec", lab.peer("globex")["ns"], "curl", "-sS", "--max-time", "10", "--cacert",
            str(setup["server_ca"]), "-o", "-", "-w", "\n%{http_code}"]
    if cert is not None:
        users: Path = setup["users"]
        (users / f"{name}.pem").write_bytes(pem(cert) + chain)
        (users / f"{name}.key").write_bytes(setup["pki"].key_pem(cert))
        os.chmod(users / f"{name}.key", 0o600)
        args += ["--cert", str(users / f"{name}.pem"), "--key", str(users / f"{name}.key")]
    result = subprocess.run([*args, f"https://{FRONT}:8443/"], capture_output=True, text=True, timeout=30)
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body + result.stderr


def _sessions(lab: LabHandle) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "auth", "sessions",
                             "--netns", lab.gw, "--state-dir", str(lab.state), "--format", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


def _decisions(lab: LabHandle) -> list[dict[str, Any]]:
    path = lab.state / "auth-decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_front_is_built_and_nginx_accepts_it(setup: dict[str, Any]) -> None:
    out: Path = setup["out"]
    conf = (out / "front" / "nginx.conf").read_text()
    assert "ssl_verify_client on;" in conf and "ssl_crl " in conf
    issuer = openssl_rfc2253(setup["pki"].issuing.subject)
    assert len(issuer) > 100 and "\\," in issuer  # as long as a real PIV CA's name, with an escaped comma
    assert f'"globex|{nginx_string(issuer)}" 1;' in conf
    assert f"\nuser {setup['front_user']};\n" in conf
    assert (out / "systemd" / "gatewayctl-auth.service").exists() and (out / "systemd" / "gatewayctl-front.service").exists()
    checked = subprocess.run(["ip", "netns", "exec", setup["lab"].gw, "nginx", "-t", "-c", str(out / "front" / "nginx.conf")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    assert _listening(setup["lab"].gw, 8443)  # the real nginx runs it (the fixture started it)


def test_sessions_open_grants_for_a_bounded_time(setup: dict[str, Any]) -> None:
    lab: LabHandle = setup["lab"]
    pki: Pki = setup["pki"]
    # before: the tunnel is up (the front answers), the granted flow is closed
    assert not lab.reach("globex", *ERP_DB)
    assert lab.reach("acme", "10.1.0.5", 443)  # other partners are not gated

    # rejected certificates open nothing, each for the right reason
    other = Pki(pki.at, name="Initrode")
    rejected = {
        "no certificate": (None, 400, ""),
        "another CA": (other.user(), 400, ""),  # the front refuses the TLS client certificate
        # the root vouches for this issuer, but it is not one of globex's issuing CAs
        "sibling CA": (setup["sibling"], 403, "not issued by an issuing CA of the partner"),
        "revoked": (setup["revoked"], 400, ""),  # the front checks the CRL
        "missing policy": (pki.user(policies=()), 403, "certificate policy 2.16.840.1.101.3.2.1.3.13"),
        "missing EKU": (pki.user(ekus=("1.3.6.1.5.5.7.3.2",)), 403, "extended key usage 1.3.6.1.4.1.311.20.2.2"),
        "RSA-1024": (pki.user(rsa_bits=1024), 0, ""),  # OpenSSL refuses the handshake itself
        "unmapped identity": (pki.user(upn="mallory@globex.example"), 403, "mallory@globex.example"),
    }
    for name, (cert, status, reason) in rejected.items():
        chain = setup["sibling_ca"] if name == "sibling CA" else b""  # the client sends its issuer along
        code, body = _curl(setup, cert, name.replace(" ", "-"), chain)
        assert code != 200, (name, body)
        if status:
            assert code == status, (name, code, body)
        assert reason in body, (name, body)
    assert _sessions(lab)["sessions"] == []
    assert not lab.reach("globex", *ERP_DB)
    logged = [d for d in _decisions(lab) if d["outcome"] == "rejected"]
    assert {d["serial"] for d in logged} >= {format(rejected["missing policy"][0].serial_number, "x")}  # type: ignore[union-attr]

    # a good certificate through the real front opens the session; real packets pass
    code, body = _curl(setup, setup["alice"], "alice")
    assert code == 200, body
    assert "session open: partner globex, alice@globex.example" in body
    opened = time.monotonic()
    assert lab.reach("globex", *ERP_DB)
    listed = _sessions(lab)
    assert listed["problems"] == []
    (session,) = listed["sessions"]
    assert session["partner"] == "globex" and session["identity"] == "alice@globex.example"
    assert session["serial"] == format(setup["alice"].serial_number, "x")
    assert 0 < session["expires_in_seconds"] <= SESSION_S
    last = _decisions(lab)[-1]
    assert (last["outcome"], last["partner"], last["identity"]) == ("accepted", "globex", "alice@globex.example")
    drift = lab.ctl("drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr

    # the kernel closes the session on time
    time.sleep(max(0.0, SESSION_S + 1 - (time.monotonic() - opened)))
    assert not lab.reach("globex", *ERP_DB)
    assert _sessions(lab)["sessions"] == []


def test_a_table_replacing_apply_keeps_open_sessions(setup: dict[str, Any]) -> None:
    lab: LabHandle = setup["lab"]
    code, body = _curl(setup, setup["alice"], "alice")
    assert code == 200, body
    table = "gatewayctl"
    lab.gw_run("nft", "flush", "chain", "inet", table, "forward")  # tampering: apply must replace the table
    plan = lab.ctl("plan")
    assert "chain forward" in plan.stdout and "session" not in plan.stdout, plan.stdout
    applied = lab.ctl("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert lab.reach("globex", *ERP_DB)
    assert [s["identity"] for s in _sessions(lab)["sessions"]] == ["alice@globex.example"]


def test_drift_reports_sessions_that_should_not_exist(setup: dict[str, Any]) -> None:
    lab: LabHandle = setup["lab"]
    acme = lab.peer("acme")["tunnel"][0].split("/")[0]
    globex_lan = "100.64.20.1"
    lab.gw_run("nft", "add", "element", "inet", "gatewayctl", "sessions4", f"{{ {acme} timeout 1h, {globex_lan} timeout 1h }}")
    try:
        drift = lab.ctl("drift", "--format", "json")
        assert drift.returncode == 1, drift.stdout + drift.stderr
        kinds = {(f["kind"], f["subject"]) for f in json.loads(drift.stdout)["findings"]}
        assert ("session-unexpected", f"session {acme}") in kinds
        assert ("session-unlogged", f"session {globex_lan}") in kinds
        assert ("session-too-long", f"session {globex_lan}") in kinds
        assert _sessions(lab)["problems"]
    finally:
        lab.gw_run("nft", "delete", "element", "inet", "gatewayctl", "sessions4", f"{{ {acme}, {globex_lan} }}")


_CLIENT = """
import json, socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.settimeout(20)
client.connect(sys.argv[1])
headers = json.loads(sys.argv[2])
client.sendall(("GET /session HTTP/1.0\\r\\n" + "".join(f"{k}: {v}\\r\\n" for k, v in headers.items()) + "\\r\\n").encode())
reply = b""
while chunk := client.recv(4096):
    reply += chunk
print(reply.decode().split()[1])
"""


def test_a_process_of_the_front_user_is_not_the_front(setup: dict[str, Any]) -> None:
    """With alice's public certificate, every header nginx would set, but no TLS handshake (so not
    through nginx, and without the front's secret): nothing opens, for any address."""
    lab: LabHandle = setup["lab"]
    alice: x509.Certificate = setup["alice"]
    user = setup["front_user"]
    before = len(_decisions(lab))
    opened = {(x["source"], x["opened"]) for x in _sessions(lab)["sessions"]}  # alice's may still run
    for source in (lab.peer("globex")["tunnel"][0].split("/")[0], "100.64.20.9"):
        forged = {"X-Gatewayctl-Address": source, "X-Gatewayctl-Partner": "globex", "X-Gatewayctl-Verify": "SUCCESS",
                  "X-Gatewayctl-Certificate": urllib.parse.quote(pem(alice).decode()),
                  "X-Gatewayctl-Fingerprint": hashlib.sha1(alice.public_bytes(Encoding.DER)).hexdigest()}
        asked = subprocess.run(["/usr/bin/python3", "-c", _CLIENT, str(setup["socket"]), json.dumps(forged)], user=user,
                               group=pwd.getpwnam(user).pw_gid, extra_groups=[], capture_output=True, text=True, timeout=60)
        assert asked.stdout.strip() == "403", asked.stdout + asked.stderr
    assert {(x["source"], x["opened"]) for x in _sessions(lab)["sessions"]} <= opened  # none opened, none renewed
    logged = _decisions(lab)[before:]
    assert len(logged) == 2 and all("not from the front" in d["reasons"][0] for d in logged)
    secret = setup["socket"].parent / "front-secret.conf"
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.stat().st_uid == 0


def test_an_apply_that_removes_the_gated_grants_refuses_new_sessions(setup: dict[str, Any]) -> None:
    """While `auth serve` runs (no restart): alice opens a session; an apply removes globex's gated
    grants; the same good certificate is then refused; restoring them opens sessions again."""
    lab: LabHandle = setup["lab"]
    code, body = _curl(setup, setup["alice"], "alice")
    assert code == 200, body

    def no_grants(doc: dict[str, Any]) -> None:
        doc["grants"] = []

    with lab.edited("globex", no_grants):
        applied = lab.ctl("apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        code, body = _curl(setup, setup["alice"], "alice")
        assert code == 403 and "no grant in force waits for a session" in body, (code, body)
        assert _decisions(lab)[-1]["outcome"] == "rejected"
    code, body = _curl(setup, setup["alice"], "alice")  # edited() restored the grants and applied them
    assert code == 200, body
    assert "an apply changed the access in force" in (setup["logs"] / "auth.log").read_text()


def test_the_front_limits_the_rate_per_source(setup: dict[str, Any]) -> None:
    """Last: it spends globex's tokens. nginx answers 429 once a source's burst is spent."""
    pki: Pki = setup["pki"]
    wrong = pki.user(policies=())  # a complete handshake, refused by the authorizer
    codes = [_curl(setup, wrong, "wrong")[0] for _ in range(14)]
    assert 429 in codes and set(codes) <= {403, 429}, codes
    assert codes.index(429) <= 11  # the burst of 10 (plus what refilled meanwhile), then refused

