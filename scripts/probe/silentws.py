#!/usr/bin/env python3
"""silentws.py PORT N SECS: open N WebSockets that never send or read, wait SECS, then try a plain GET."""
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    try: r = s.recv(12)
    except Exception as e: r = repr(e).encode()
    if r != b"HTTP/1.1 101": print("conn", i, r); 
    socks.append(s)
time.sleep(secs)
open_ = 0
for s in socks:
    s.settimeout(0.05)
    try:
        b = s.recv(10)
        if b: open_ += 1
    except socket.timeout: open_ += 1
    except Exception: pass
try:
    g = socket.create_connection(("127.0.0.1", port), timeout=3); g.sendall(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"); r = g.recv(40)
except Exception as e: r = repr(e)
print(f"after {secs}s: {open_}/{n} silent websockets still open; fresh GET -> {r!r}")
