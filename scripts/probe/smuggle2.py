#!/usr/bin/env python3
"""Bodies to handlers that read some or none of them: CGI that never reads stdin,
the form demo, a large body with a hidden request after it.
usage: smuggle2.py PORT PATH..."""
import sys
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from raw import raw, statuses
port = int(sys.argv[1])
S = b"GET /sub?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n"
for path in sys.argv[2:]:
    p = path.encode()
    for big in (0, 200000, 3000000):
        body = b"x" * big + S
        for kind in ("CL", "TE", "CL-expect"):
            if kind == "TE":
                d = b"POST " + p + b" HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
            else:
                d = b"POST " + p + b" HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n" + (b"Expect: 100-continue\r\n" if "expect" in kind else b"") + b"Content-Length: %d\r\n\r\n" % len(body) + body
            try:
                out = raw(port, d, timeout=4)
            except Exception as e:
                out = repr(e).encode()
            print("SMUGGLED" if b"smuggled=1" in out else "ok      ", path, big, kind, [s.decode() for s in statuses(out)], out[-12:])
