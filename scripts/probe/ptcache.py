#!/usr/bin/env python3
"""ptcache.py PORT N LEN PID: N CGI requests with distinct long PATH_INFO values
(each LEN bytes) over keep-alive; prints RSS of PID before/after and the rate.
Exercises the per-vhost PATH_TRANSLATED cache bound (256) and its eviction cost."""
import socket, sys, time, os
port, n, ln, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
CGI = os.environ.get("CGI", "/cgi-bin/env.sh")
def rss(): return [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print("rss before", rss(), "kB")
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
t0 = time.time(); ok = 0; buf = b""
for i in range(n):
    seg = (f"{i:08d}" + "a" * ln)[:ln]
    s.sendall(f"GET {CGI}/nodir/{seg} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # read one chunked response to its end
    while b"\r\n0\r\n\r\n" not in buf and b"Content-Length: 0\r\n" not in buf:
        d = s.recv(65536)
        if not d: print("closed at", i); sys.exit(1)
        buf += d
    if buf.startswith(b"HTTP/1.1 200"): ok += 1
    elif i < 3: print(buf[:200])
    buf = buf[buf.index(b"\r\n0\r\n\r\n") + 7:] if b"\r\n0\r\n\r\n" in buf else b""
print(f"{ok}/{n} ok in {time.time()-t0:.1f}s; rss after", rss(), "kB")
