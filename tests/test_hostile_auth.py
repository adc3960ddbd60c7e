"""The authorizer trusts only the front, and follows what was applied (issue 15 point 8 and 11, issue 13
point 4): a front user of its own, the front's secret, the certificate of the TLS connection, rate
limits per source, decisions against applied.json without a restart, and an nginx that accepts the
built front with real-length issuer names."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import pwd
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gatewayctl.auth import log
from gatewayctl.auth.front import ensure_secret, map_hash_sizes, secret_path
from gatewayctl.auth.inforce import APPLIED, parse
from gatewayctl.auth.limit import RateLimiter
from gatewayctl.auth.serve import make_server
from gatewayctl.pipeline import compile_profiles
from gatewayctl.state import StateDir
from tests.conftest import AT, AT_DT, run_cli
from tests.front_user import front_user
from tests.piv_pki import PivPki
from tests.pki import Pki
from tests.test_apply_engine import RecordingHost, apply
from tests.test_apply_engine import estate as keyed_estate  # noqa: F401 (a fixture)
from tests.test_auth import SECRET, applied_json, gate, headers, service

GLOBEX = "10.250.2.1"


def _needs_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("these checks run processes as other users: CI must run as root")
        pytest.skip("needs root (to run processes as the front's user)")


@pytest.fixture
def pki() -> Pki:
    return Pki(AT_DT)


@pytest.fixture
def gated(keyed_estate: Path, pki: Pki) -> tuple[Any, RecordingHost, Any]:  # noqa: F811
    gate(keyed_estate, pki)
    compiled = compile_profiles(keyed_estate, AT_DT)
    host = RecordingHost()
    return compiled, host, apply(compiled.policy, host)


# --- a front user of its own ---------------------------------------------------------------------

@pytest.mark.parametrize("user", ["www-data", "root", "nobody"])
def test_a_shared_front_user_is_refused_with_its_line(estate: Path, pki: Pki, user: str) -> None:
    gate(estate, pki)
    gateway = estate / "gateway.yaml"
    text = gateway.read_text() + f"  front_user: {user}\n"
    gateway.write_text(text)
    line = len(text.splitlines())  # the line just written
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert f"gateway.yaml:{line}:" in result.stderr and "front_user" in result.stderr, result.stderr
    assert f"not the shared account '{user}'" in result.stderr and "gatewayctl-front" in result.stderr


def test_the_default_front_user_is_its_own(estate: Path, pki: Pki, tmp_path: Path) -> None:
    gate(estate, pki)
    result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.exit_code == 0, result.stderr
    conf = (tmp_path / "out" / "front" / "nginx.conf").read_text()
    assert "\nuser gatewayctl-front;\n" in conf
    # nothing of the client's request reaches the authorizer but what nginx sets from the connection
    assert "proxy_pass_request_headers off;" in conf and "ssl_session_cache off;" in conf
    assert "include /run/gatewayctl/front-secret.conf;" in conf
    assert "proxy_set_header X-Gatewayctl-Fingerprint $ssl_client_fingerprint;" in conf
    assert "limit_req zone=gatewayctl_front burst=10 nodelay;" in conf


# --- only the front: its secret, the TLS connection's certificate, a rate per source -------------

def test_requests_without_the_fronts_secret_open_nothing(gated: Any, pki: Pki, tmp_path: Path) -> None:
    compiled, host, prep = gated
    state = StateDir(tmp_path / "state")
    lines: list[str] = []
    authz = service(compiled, prep, host, state, lines.append)
    alice = pki.user()  # her public certificate, as anyone may hold it
    for secret in ("", "00" * 32, SECRET[:-2]):
        status, body = authz.handle(headers(alice, secret=secret))
        assert (status, body) == (403, "refused: only the front may ask for sessions\n")
    assert host.element_ops == []
    records = log.read(state.root)
    assert len(records) == 3 and all("not from the front" in r["reasons"][0] for r in records)
    assert all(r["source"] == "-" for r in records)  # a claimed address is not taken for a source
    assert authz.handle(headers(alice))[0] == 200  # the same request from the front opens the session


def test_rate_limit_per_source(gated: Any, pki: Pki, tmp_path: Path) -> None:
    compiled, host, prep = gated
    clock = [1000.0]
    state = StateDir(tmp_path / "state")
    lines: list[str] = []
    authz = service(compiled, prep, host, state, lines.append, limiter=RateLimiter(burst=3, per_minute=6),
                    clock=lambda: clock[0])
    wrong = pki.user(policies=())  # decided (and refused) each time it is heard
    assert [authz.handle(headers(wrong))[0] for _ in range(3)] == [403, 403, 403]
    limited = [authz.handle(headers(wrong)) for _ in range(5)]
    assert {s for s, _ in limited} == {429} and "try again in 10 s" in limited[0][1], limited[0]
    assert authz.handle(headers(wrong, source="100.64.20.7"))[0] == 403  # another source has its own bucket
    records = log.read(state.root)
    assert sum("rate limit" in r["reasons"][0] for r in records) == 1  # one line per episode, not per request
    clock[0] += 10.0  # 6 a minute: one token back after 10 s
    assert authz.handle(headers(pki.user()))[0] == 200
    assert authz.handle(headers(pki.user()))[0] == 429


def test_the_front_user_without_the_secret_is_refused_over_the_socket(gated: Any, pki: Pki) -> None:
    """Real processes of real users on the real socket: the front's user alone (a process that is not
    nginx) gets nothing with a user's public certificate; www-data gets nothing even with the secret."""
    _needs_root()
    compiled, host, prep = gated
    run_dir = Path(tempfile.mkdtemp(prefix="gatewayctl-test-", dir="/run"))
    run_dir.chmod(0o755)
    with front_user() as user:
        try:
            state = StateDir(run_dir / "state")
            lines: list[str] = []
            secret = ensure_secret(secret_path(run_dir / "auth.sock"))
            authz = service(compiled, prep, host, state, lines.append)
            authz.secret = secret
            server = make_server(authz, run_dir / "auth.sock", user)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                alice = pki.user()
                unreadable = subprocess.run(["cat", str(secret_path(run_dir / "auth.sock"))], **_as(user),
                                            capture_output=True, timeout=30)
                assert unreadable.returncode != 0 and b"Permission denied" in unreadable.stderr
                assert _ask_as(user, run_dir / "auth.sock", headers(alice, secret=""))[0] == 403
                assert host.element_ops == []
                # www-data, even with the secret: the socket's mode keeps it out (and SO_PEERCRED would)
                assert _ask_as("www-data", run_dir / "auth.sock", headers(alice, secret=secret)) == (0, "PermissionError")
                assert host.element_ops == []
                status, body = _ask_as(user, run_dir / "auth.sock", headers(alice, secret=secret))  # as nginx asks
                assert status == 200 and f"from {GLOBEX}" in body, body
            finally:
                server.shutdown()
                server.server_close()
        finally:
            subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    assert any("not from the front" in line for line in lines), lines


_CLIENT = """
import json, socket, sys
path, headers = sys.argv[1], json.loads(sys.argv[2])
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.settimeout(20)
client.connect(path)
request = "GET /session HTTP/1.0\\r\\n" + "".join(f"{k}: {v}\\r\\n" for k, v in headers.items() if v) + "\\r\\n"
client.sendall(request.encode())
reply = b""
while chunk := client.recv(4096):
    reply += chunk
sys.stdout.write(reply.decode())
"""


def _as(user: str) -> dict[str, Any]:
    """subprocess arguments that run a process as `user` and its group only, as nginx's workers run."""
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _ask_as(user: str, path: Path, request: dict[str, str]) -> tuple[int, str]:
    """(status, body) of a request sent by a process running as `user`; (0, "PermissionError") when
    it may not even connect."""
    done = subprocess.run(["/usr/bin/python3", "-c", _CLIENT, str(path), json.dumps(request)], **_as(user),
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "PermissionError" in done.stderr:
        return 0, "PermissionError"
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n\n")  # text mode reads "\r\n" as "\n"
    return int(head.split()[1]), body


def test_the_secret_is_kept_across_restarts_and_replaced_when_unsound(tmp_path: Path) -> None:
    path = tmp_path / "front-secret.conf"
    first = ensure_secret(path)
    assert re.fullmatch(r"[0-9a-f]{64}", first) and oct(path.stat().st_mode & 0o777) == "0o600"
    assert path.read_text() == f'proxy_set_header X-Gatewayctl-Front-Secret "{first}";\n'
    assert ensure_secret(path) == first  # a restarted authorizer stays in step with a running nginx
    path.chmod(0o644)  # others may have read it: a new one
    second = ensure_secret(path)
    assert second != first and oct(path.stat().st_mode & 0o777) == "0o600"
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    path.symlink_to(target)  # never written through a link
    assert ensure_secret(path) != second and target.read_text() == "keep" and not path.is_symlink()


# --- the access in force: what the last apply installed ------------------------------------------

def _reapply(root: Path, host: RecordingHost, state: StateDir) -> None:
    prep = apply(compile_profiles(root, AT_DT).policy, host)
    state.write_json(APPLIED, applied_json(prep))


@pytest.mark.parametrize("change", ["grants removed", "session requirement removed", "partner removed"])
def test_an_apply_closes_new_sessions_without_a_restart(gated: Any, pki: Pki, tmp_path: Path, change: str) -> None:
    compiled, host, prep = gated
    root = compiled.estate.root
    state = StateDir(tmp_path / "state")
    lines: list[str] = []
    authz = service(compiled, prep, host, state, lines.append)
    assert authz.handle(headers(pki.user()))[0] == 200
    globex = root / "partners" / "globex.yaml"
    text = globex.read_text()
    if change == "grants removed":
        globex.write_text(text[:text.index("grants:")] + "grants: []\n" + text[text.index("certificates:"):])
    elif change == "session requirement removed":
        globex.write_text(re.sub(r"  session: \{duration: 15m\}\n", "", text))
    else:
        globex.unlink()
    _reapply(root, host, state)
    opened = len(host.element_ops)
    status, body = authz.handle(headers(pki.user()))
    assert status == 403, body
    assert len(host.element_ops) == opened  # no session opened
    expected = {"grants removed": "no grant in force waits for a session from it",
                "session requirement removed": "not an address of a partner whose grants wait for a session",
                "partner removed": "not an address of a partner whose grants wait for a session"}[change]
    assert expected in body, body
    assert any("an apply changed the access in force" in line for line in lines), lines


def test_a_revocation_in_applied_json_is_honoured_at_once(gated: Any, pki: Pki, tmp_path: Path) -> None:
    """`revoke` takes the revoked elements out of applied.json (same digest): the next decision follows."""
    compiled, host, prep = gated
    state = StateDir(tmp_path / "state")
    authz = service(compiled, prep, host, state, [].append)
    assert authz.handle(headers(pki.user()))[0] == 200
    applied = state.read_json(APPLIED)
    assert applied is not None
    for name in ("gated4", "gated_icmp4"):
        elements = applied["table"]["sets"][name]["elements"]
        applied["table"]["sets"][name]["elements"] = [e for e in elements if not e.startswith(f"{GLOBEX} ")]
    state.write_json(APPLIED, applied)
    status, body = authz.handle(headers(pki.user()))
    assert status == 403 and "no grant in force waits for a session" in body, body
    assert authz.handle(headers(pki.user(), source="100.64.20.7"))[0] == 200  # the LAN's grants were not revoked
    (state.root / APPLIED).unlink()
    status, body = authz.handle(headers(pki.user(), source="100.64.20.7"))
    assert status == 403 and "nothing has been applied on this host" in body
    (state.root / APPLIED).write_text("{not json")
    status, body = authz.handle(headers(pki.user(), source="100.64.20.7"))
    assert status == 403 and "is not a state apply wrote" in body


def test_grants_whose_end_has_passed_open_nothing(gated: Any) -> None:
    _, _, prep = gated
    data = applied_json(prep)
    force = parse(data, "-")
    ends = sorted(v for k, v in data["element_ends"].items() if k.startswith(f"{GLOBEX} "))
    last = dt.datetime.strptime(ends[-1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    address = ipaddress.ip_address(GLOBEX)
    assert force.refusal(address, last - dt.timedelta(seconds=1)) is None
    reason = force.refusal(address, last)
    assert reason is not None and "no grant in force" in reason


# --- nginx accepts the built front, with issuer names as long as real ones -----------------------

def test_map_hash_sizes_fit_the_longest_key() -> None:
    assert map_hash_sizes([], 0) == (64, 2048)
    bucket, _ = map_hash_sizes(["x" * 40], 1)
    assert bucket == 128  # 8 + 48 + 8 > 64
    bucket, most = map_hash_sizes(["globex|" + "O" * 300], 5000)
    assert bucket == 512 and most == 32768


@pytest.fixture
def piv_front(estate: Path, tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """The estate built with PIV-like CA names and a front whose files all exist: (nginx.conf, runtime dir, user)."""
    _needs_root()
    pki = PivPki(AT_DT)
    crl = tmp_path / "crls.pem"
    crl.write_bytes(pki.crl([]).public_bytes(Encoding.PEM) + pki.root_crl().public_bytes(Encoding.PEM))
    gate(estate, pki, crl)
    cert, key = pki.server("10.250.0.1")
    (tmp_path / "front.crt").write_bytes(cert)
    (tmp_path / "front.key").write_bytes(key)
    runtime = tmp_path / "run"
    runtime.mkdir()
    with front_user() as user:
        gateway = estate / "gateway.yaml"
        gateway.write_text(gateway.read_text().replace("/etc/gatewayctl/front.crt", str(tmp_path / "front.crt"))
                           .replace("/etc/gatewayctl/front.key", str(tmp_path / "front.key"))
                           + f"  front_dir: {tmp_path / 'out' / 'front'}\n  socket: {runtime / 'auth.sock'}\n"
                           f"  front_user: {user}\n")
        result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", AT)
        assert result.exit_code == 0, result.stderr
        ensure_secret(secret_path(runtime / "auth.sock"))
        conf = tmp_path / "out" / "front" / "nginx.conf"
        assert f'"globex|{pki.issuing.subject.rfc4514_string()}" 1;'.replace("\\", "\\\\") in conf.read_text()
        yield conf, runtime, user


def test_nginx_accepts_the_built_front(piv_front: tuple[Path, Path, str]) -> None:
    conf, _, user = piv_front
    checked = _nginx_t(conf)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert pwd.getpwnam(user)  # nginx -t checked the user too (it must exist)


def test_without_the_sizes_nginx_refuses_these_names(piv_front: tuple[Path, Path, str]) -> None:
    """The test's issuer names are long enough to need the sizing (the regression the sizing fixes)."""
    conf, _, _ = piv_front
    text = conf.read_text()
    conf.write_text("\n".join(line for line in text.splitlines() if "map_hash_" not in line) + "\n")
    checked = _nginx_t(conf)
    assert checked.returncode != 0 and "map_hash_bucket_size" in checked.stderr, checked.stderr


def _nginx_t(conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` (which binds the listen addresses) in a throwaway network namespace that has the
    gateway's tunnel addresses; the namespace ends with the command."""
    script = ("ip link set lo up && ip addr add 10.250.0.1/32 dev lo && ip addr add fd00:250::1/128 dev lo nodad && "
              f"exec nginx -t -c {conf}")
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)
