"""Accept TCP connections on ADDRESS PORT and close them, until killed (the data-plane server)."""

import socket
import sys

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(4096)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
