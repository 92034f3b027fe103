#!/usr/bin/env python3
"""trickle.py PORT PATH MODE INTERVAL MAXSECS: send a request whose body (or head) arrives 1 byte per INTERVAL.
MODE: cl (Content-Length body), chunked (1-byte chunks), chunkframe (chunk framing bytes only: long chunk-ext),
head (the head itself), trailer (endless trailer lines after the last chunk). Reports when/how the server ended it."""
import socket, sys, time
port, path, mode, iv, mx = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(0.01)
if mode == "cl": s.sendall(f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n".encode()); gen = iter(lambda: b"x", None)
elif mode in ("chunked", "chunkframe", "trailer"):
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    if mode == "chunked": gen = (b for _ in range(10**9) for b in (b"1\r\n", b"x", b"\r\n"))
    elif mode == "chunkframe": s.sendall(b"1;"); gen = iter(lambda: b"a", None)
    else: s.sendall(b"1\r\nx\r\n0\r\n"); gen = (b for _ in range(10**9) for b in (b"X-T: 1\r\n",))
else: gen = iter(lambda: b"X", None); s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
t0 = time.time(); sent = 0; out = b""
while time.time() - t0 < mx:
    try:
        s.sendall(next(gen)); sent += 1
    except (BrokenPipeError, ConnectionResetError) as e:
        print(f"t={time.time()-t0:.1f}s send failed: {e!r}"); break
    end = time.time() + iv
    while time.time() < end:
        try:
            b = s.recv(4096)
            if not b: out += b"<EOF>"; break
            out += b
        except socket.timeout: pass
        except ConnectionResetError: out += b"<RST>"; break
    if out.endswith(b"<EOF>") or out.endswith(b"<RST>"): break
print(f"t={time.time()-t0:.1f}s sent={sent} pieces; got: {out[:60]!r} ... {out[-20:]!r}")
