"""Long-lived flows for the tests: a service that echoes and pushes, a partner client that logs what arrives.

    python -m tests.flowtool serve --tcp 9000,9010 --udp 9100 --udp-on 10.1.0.10 --log FILE
    python -m tests.flowtool client --src SRC --dst DST --proto tcp --port 9000 --log FILE

Both sides send a small message every 50 ms for as long as they run, and log one line per message
that arrives: "<unix time> rx <proto> <peer address> <local port>". A test reads from the logs
when data last passed in each direction (the clocks are one clock: every namespace is on this
machine). Stopped by SIGTERM (by PID).
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys
import threading
import time
from pathlib import Path

INTERVAL = 0.05


class Log:
    def __init__(self, path: str) -> None:
        self.handle = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        self.lock = threading.Lock()

    def rx(self, proto: str, peer: str, port: int) -> None:
        with self.lock:
            self.handle.write(f"{time.time():.3f} rx {proto} {peer} {port}\n")


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def serve(tcp: list[int], udp: list[int], udp_on: list[str], log: Log) -> None:
    selector = selectors.DefaultSelector()
    for port in tcp:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        sock.listen(16)
        selector.register(sock, selectors.EVENT_READ, "tcp")
    for port in udp:
        for address in udp_on:  # bound to the service address, so replies leave from the address asked
            sock = socket.socket(_family(address), socket.SOCK_DGRAM)
            sock.bind((address, port))
            selector.register(sock, selectors.EVENT_READ, "udp")
    while True:
        for key, _ in selector.select():
            sock = key.fileobj  # type: ignore[assignment]
            if key.data == "tcp":
                conn, peer = sock.accept()
                threading.Thread(target=_serve_tcp, args=(conn, _plain(peer[0]), sock.getsockname()[1], log),
                                 daemon=True).start()
            else:
                data, peer = sock.recvfrom(2048)
                log.rx("udp", _plain(peer[0]), sock.getsockname()[1])
                sock.sendto(b"echo " + data[:32], peer)


def _plain(address: str) -> str:
    return address.removeprefix("::ffff:")


def _serve_tcp(conn: socket.socket, peer: str, port: int, log: Log) -> None:
    """Read what the partner sends and push a line every INTERVAL, whatever the partner does."""
    def push() -> None:
        try:  # the lab's banner first, so the lab's one-shot probes count this service as reached
            conn.sendall(f"gatewayctl-lab {port}\n".encode())
        except OSError:
            return
        while True:
            try:
                conn.sendall(b"push\n")
            except OSError:
                return
            time.sleep(INTERVAL)

    threading.Thread(target=push, daemon=True).start()
    while True:
        try:
            data = conn.recv(4096)
        except OSError:
            return
        if not data:
            return
        log.rx("tcp", peer, port)


def client(src: str, dst: str, proto: str, port: int, log: Log) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(_family(dst), kind)
    sock.bind((src, 0))
    if proto == "tcp":
        sock.settimeout(5)
        sock.connect((dst, port))
    sock.setblocking(False)
    next_send = 0.0
    while True:
        now = time.monotonic()
        if now >= next_send:
            try:
                if proto == "tcp":
                    sock.send(b"ping\n")
                else:
                    sock.sendto(b"ping", (dst, port))
            except BlockingIOError:
                pass  # the send buffer is full while packets are dropped: keep trying
            next_send = now + INTERVAL
        readable, _, _ = select_one(sock, max(next_send - time.monotonic(), 0.0))
        if readable:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            if proto == "tcp" and not data:
                return
            log.rx(proto, dst, port)


def select_one(sock: socket.socket, timeout: float) -> tuple[list[socket.socket], list[socket.socket], list[socket.socket]]:
    import select

    return select.select([sock], [], [], timeout)


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "client"])
    parser.add_argument("--tcp", default="")
    parser.add_argument("--udp", default="")
    parser.add_argument("--udp-on", default="127.0.0.1")
    parser.add_argument("--src")
    parser.add_argument("--dst")
    parser.add_argument("--proto", choices=["tcp", "udp"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--log", required=True)
    options = parser.parse_args()
    Path(options.log).touch()
    log = Log(options.log)
    if options.mode == "serve":
        serve(_ports(options.tcp), _ports(options.udp), options.udp_on.split(","), log)
    else:
        client(options.src, options.dst, options.proto, options.port, log)


if __name__ == "__main__":
    main()
