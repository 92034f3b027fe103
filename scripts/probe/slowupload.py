#!/usr/bin/env python3
"""slowupload.py PORT PATH RATE_BPS TOTAL [chunked]: upload TOTAL bytes at RATE bytes/s (8 KiB writes); print the answer."""
import socket, sys, time
port, path, rate, total = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
ch = len(sys.argv) > 5
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"POST {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{'Transfer-Encoding: chunked' if ch else 'Content-Length: %d' % total}\r\n\r\n".encode())
sent = 0; t0 = time.time(); err = ""
try:
    while sent < total:
        n = min(8192, total - sent)
        s.sendall((b"%x\r\n" % n + b"u" * n + b"\r\n") if ch else b"u" * n); sent += n
        time.sleep(max(0, sent / rate - (time.time() - t0)))
    if ch: s.sendall(b"0\r\n\r\n")
except Exception as e: err = repr(e)
s.settimeout(30); out = b""
try:
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
except Exception as e: err += " recv " + repr(e)
first = out.split(b"\r\n")[0]
print(f"sent={sent} in {time.time()-t0:.1f}s err={err} answer={first!r} body_tail={out[-30:]!r}")
