"""Open COUNT new TCP connections to ADDRESS PORT one after another from SOURCE; print the seconds
it took. With --probe: one attempt, print open, refused or timeout.

    tcp_open.py ADDRESS PORT COUNT SOURCE [--probe]"""

import socket
import sys
import time

address, port, count, source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), (sys.argv[4], 0)
if "--probe" in sys.argv:
    try:
        socket.create_connection((address, port), timeout=1, source_address=source).close()
        print("open")
    except ConnectionRefusedError:
        print("refused")
    except OSError:
        print("timeout")
    sys.exit(0)
start = time.perf_counter()
for _ in range(count):
    sock = socket.create_connection((address, port), timeout=5, source_address=source)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close with RST: no TIME_WAIT
    sock.close()
print(f"{time.perf_counter() - start:.6f}")
