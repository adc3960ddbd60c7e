"""`auth serve`: the authorizer, an HTTP server on a Unix socket that only the front may use."""

from __future__ import annotations

import datetime as dt
import http.server
import math
import os
import pwd
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gatewayctl.auth import log
from gatewayctl.auth.current import Current
from gatewayctl.auth.decide import Decision
from gatewayctl.auth.front import from_the_front
from gatewayctl.auth.limit import RateLimiter
from gatewayctl.auth.sessions import open_session
from gatewayctl.host.base import Host
from gatewayctl.host.errors import HostError
from gatewayctl.model.gateway import SHARED_ACCOUNTS
from gatewayctl.state import StateDir


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Service:
    """Check that the front asks, limit the rate per source, decide against the access in force,
    open the session, log; one request at a time touches the firewall."""

    def __init__(self, current: Current, host: Host, state: StateDir, out: Callable[[str], None], secret: str,
                 limiter: RateLimiter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.current, self.host, self.state, self.out, self.secret = current, host, state, out, secret
        self.limiter, self.clock = limiter or RateLimiter(), clock
        self.lock = threading.Lock()
        self._limited: set[str] = set()  # sources refused for their rate, logged once per episode

    def handle(self, headers: dict[str, str]) -> tuple[int, str]:
        """(HTTP status, body) for one request: 200 session open, 403 refused, 429 too many, 503 firewall error."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if not from_the_front(headers, self.secret):
            claimed = headers.get("x-gatewayctl-address", "")[:64]
            self._record(Decision("rejected", "-", None, reasons=(
                f"not from the front: the request lacks the front's secret (it claims source {claimed!r})",), time=now))
            return 403, "refused: only the front may ask for sessions\n"
        source = headers.get("x-gatewayctl-address", "")[:64]
        wait = self.limiter.take(source, self.clock())
        if wait is not None:
            return self._limit(source, wait, now)
        self._limited.discard(source)
        authorizer, in_force = self.current.get()
        if authorizer is None:
            decision = Decision("rejected", source or "-", None, reasons=(self.current.problem or "no profiles",), time=now)
        else:
            decision = authorizer.decide(headers, now, in_force)
        with self.lock:
            if decision.outcome == "accepted" and authorizer is not None:
                decision = self._open(decision, authorizer.table, now)
            self._record(decision)
        return _reply(decision)

    def _open(self, decision: Decision, table: str, now: dt.datetime) -> Decision:
        assert decision.session_seconds is not None
        try:
            with self.state.lock(wait_s=10):  # an apply replacing the table carries open sessions over
                open_session(self.host, table, decision.source, decision.session_seconds)
        except HostError as exc:
            return Decision("error", decision.source, decision.partner, decision.identity, decision.serial,
                            decision.subject, decision.issuer, (f"the firewall refused the session: {exc}",),
                            None, now, decision.tls_session)
        return decision

    def _limit(self, source: str, wait: float, now: dt.datetime) -> tuple[int, str]:
        if source not in self._limited:  # once per episode: a flood must not flood the log too
            self._limited.add(source)
            self._record(Decision("rejected", source or "-", None, reasons=(
                f"rate limit: more than {self.limiter.burst:.0f} requests in a burst from this address",), time=now))
        return 429, f"refused: too many requests from {source}; try again in {math.ceil(wait)} s\n"

    def _record(self, decision: Decision) -> None:
        log.append(self.state.root, decision)
        self.out(decision.line())


def _reply(decision: Decision) -> tuple[int, str]:
    if decision.outcome == "accepted":
        until = decision.time + dt.timedelta(seconds=decision.session_seconds or 0)
        return 200, (f"session open: partner {decision.partner}, {decision.identity or decision.subject}, "
                     f"from {decision.source} until {until:%Y-%m-%d %H:%M:%S}Z\n")
    if decision.outcome == "error":
        return 503, "refused: the session could not be opened; the gateway team has been told\n"
    return 403, "refused:\n" + "".join(f"  {r}\n" for r in decision.reasons)


def make_handler(service: Service, front_uid: int | None) -> type[http.server.BaseHTTPRequestHandler]:
    """Requests are taken from the front's user only (the kernel says who connected: SO_PEERCRED),
    whatever the socket's permissions."""

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "gatewayctl-auth"
        sys_version = ""

        def do_GET(self) -> None:
            pid, uid, _ = struct.unpack("3i", self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                      struct.calcsize("3i")))
            if front_uid is not None and uid != front_uid:
                service.out(f"auth refused: a connection from uid {uid} (pid {pid}), not the front's user")
                self._reply(403, "refused: only the front may ask for sessions\n")
                return
            if self.path != "/session":
                self._reply(404, "not found\n")
                return
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-gatewayctl-")}
            try:
                status, body = service.handle(headers)
            except Exception as exc:  # a bug must not open anything, and must be seen
                service.out(f"auth error: {type(exc).__name__}: {exc}")
                status, body = 500, "refused: internal error\n"
            self._reply(status, body)

        do_POST = do_GET  # noqa: N815

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # every decision is logged by the service, once

        def address_string(self) -> str:
            return "front"

    return Handler


def make_server(service: Service, socket_path: Path, front_user: str) -> socketserver.UnixStreamServer:
    """The socket, 0660, group of the front's user; requests only from that user."""
    try:
        account = pwd.getpwnam(front_user)
    except KeyError:
        raise HostError(f"the front's user {front_user!r} does not exist (auth.front_user in gateway.yaml): create it "
                        f"with `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {front_user}`") from None
    if front_user in SHARED_ACCOUNTS or account.pw_uid == 0:
        raise HostError(f"the front's user must be a user of its own, not {front_user!r} (uid {account.pw_uid}): "
                        "every process of that user could ask for sessions")
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if socket_path.is_socket():
        socket_path.unlink()
    old = os.umask(0o117)
    try:
        server = _Server(str(socket_path), make_handler(service, account.pw_uid))
    finally:
        os.umask(old)
    os.chown(socket_path, -1, account.pw_gid)
    os.chmod(socket_path, 0o660)
    return server


def serve(service: Service, socket_path: Path, front_user: str, ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = make_server(service, socket_path, front_user)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready:
        ready()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        socket_path.unlink(missing_ok=True)
        sys.stdout.flush()
