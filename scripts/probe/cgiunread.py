#!/usr/bin/env python3
"""cgiunread.py PORT [PATH] [SIZE]: POST SIZE bytes (Content-Length) to a CGI
that never reads stdin (default /cgi-bin/env.sh, 200000 B); the response must
end: last chunk (0 CRLF CRLF) and/or close. Prints the tail and how it ended."""
import socket, sys, time
LAST = b"0\r\n\r\n"
port = int(sys.argv[1]); path = sys.argv[2] if len(sys.argv) > 2 else "/cgi-bin/env.sh"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
t0 = time.time()
s.sendall(f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n".encode() + b"x" * n)
out = b""; how = "?"
try:
    while True:
        d = s.recv(65536)
        if not d: how = "EOF"; break
        out += d
except socket.timeout: how = "TIMEOUT (no more bytes for 5 s)"
except ConnectionResetError: how = "RST"
print(f"{len(out)} bytes, ended by {how} after {time.time()-t0:.1f}s; last chunk seen: {out.endswith(LAST)}; tail {out[-40:]!r}")
