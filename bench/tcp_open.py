"""Open COUNT new TCP connections to ADDRESS PORT one after another; print the seconds it took.
With --probe: one attempt, print open, refused or timeout."""

import socket
import sys
import time

address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if "--probe" in sys.argv:
    try:
        socket.create_connection((address, port), timeout=1).close()
        print("open")
    except ConnectionRefusedError:
        print("refused")
    except OSError:
        print("timeout")
    sys.exit(0)
start = time.perf_counter()
for _ in range(count):
    sock = socket.create_connection((address, port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close with RST: no TIME_WAIT
    sock.close()
print(f"{time.perf_counter() - start:.6f}")
