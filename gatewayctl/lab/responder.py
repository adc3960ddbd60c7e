"""A tiny service stand-in for the lab: answers on TCP and UDP ports until terminated.

    python -m gatewayctl.lab.responder --tcp 22,443,8000-8010 --udp 53 --udp-on 10.1.0.53,fd00:1::10

UDP sockets are bound to each service address, so that replies leave from the address asked.
"""

from __future__ import annotations

import argparse
import selectors
import socket


def ports(spec: str) -> list[int]:
    result: list[int] = []
    for part in filter(None, spec.split(",")):
        first, _, last = part.partition("-")
        result.extend(range(int(first), int(last or first) + 1))
    return result


def listen(kind: int, port: int, address: str = "::") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
    if address == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    sock.setblocking(False)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", default="")
    parser.add_argument("--udp", default="")
    parser.add_argument("--udp-on", default="::")
    options = parser.parse_args()
    selector = selectors.DefaultSelector()
    for port in ports(options.tcp):
        selector.register(listen(socket.SOCK_STREAM, port), selectors.EVENT_READ, "tcp")
    for port in ports(options.udp):
        for address in options.udp_on.split(","):
            selector.register(listen(socket.SOCK_DGRAM, port, address), selectors.EVENT_READ, "udp")
    while True:
        for key, _ in selector.select():
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                if key.data == "tcp":
                    conn, _ = sock.accept()
                    conn.sendall(f"gatewayctl-lab {sock.getsockname()[1]}\n".encode())
                    conn.close()
                else:
                    data, peer = sock.recvfrom(2048)
                    sock.sendto(b"gatewayctl-lab " + data[:64], peer)
            except OSError:
                continue


if __name__ == "__main__":
    main()
