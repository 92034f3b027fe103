#!/usr/bin/env python3
"""Bodies on 401 (basic auth), 403 (bad auth), redirect-mount 301, error pages, on a --config server.
usage: smuggle3.py PORT"""
import sys, base64
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from raw import raw, statuses
port = int(sys.argv[1])
S = b"GET /sub?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n"
good = b"Authorization: Basic " + base64.b64encode(b"demo:demo") + b"\r\n"
for path, extra in [(b"/private/", b""), (b"/private/index.html", b"Authorization: Basic !!!\r\n"),
                    (b"/private/index.html", good), (b"/private/nope", good), (b"/lws/x", b""), (b"/nope", b""),
                    (b"/private/", b"Authorization: Digest x\r\n")]:
    for m in (b"GET", b"POST", b"OPTIONS"):
        for kind in ("CL", "TE", "EXP"):
            if kind == "TE":
                d = m + b" " + path + b" HTTP/1.1\r\nHost: a\r\n" + extra + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(S) + S + b"\r\n0\r\n\r\n"
            else:
                d = m + b" " + path + b" HTTP/1.1\r\nHost: a\r\n" + extra + (b"Expect: 100-continue\r\n" if kind == "EXP" else b"") + b"Content-Length: %d\r\n\r\n" % len(S) + S
            out = raw(port, d, timeout=2)
            print("SMUGGLED" if b"smuggled=1" in out else "ok      ", path.decode(), extra[:20], m.decode(), kind, [s.decode() for s in statuses(out)], out[-11:])
