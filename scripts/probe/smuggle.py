#!/usr/bin/env python3
"""Request-smuggling battery: each case sends one request whose body (or a
header trick) hides a second request `GET /sub?smuggled=1`. A 301 whose
Location carries `smuggled=1` means the hidden request was parsed as a request.
usage: smuggle.py PORT [CGI_READALL_PATH]"""
import sys, re
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from raw import raw, statuses
port = int(sys.argv[1]); cgi = sys.argv[2] if len(sys.argv) > 2 else "/cgi-bin/readall.sh"
S = b"GET /sub?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n"
def cl(n): return b"Content-Length: %d\r\n" % n
CH = b"Transfer-Encoding: chunked\r\n"
chunked_S = b"%x\r\n" % len(S) + S + b"\r\n0\r\n\r\n"
cases = []
targets = [(b"OPTIONS", b"*"), (b"GET", b"/index.html"), (b"GET", b"/nope"), (b"GET", b"/sub"),
           (b"POST", b"/index.html"), (b"HEAD", b"/index.html"), (b"DELETE", b"/nope"),
           (b"GET", b"/%2e%2e/x"), (b"GET", b"/a%00b"), (b"PUT", b"*")]
for m, t in targets:
    for exp in (b"", b"Expect: 100-continue\r\n"):
        cases.append((b"%s %s CL %s" % (m, t, exp[:6]), m + b" " + t + b" HTTP/1.1\r\nHost: a\r\n" + exp + cl(len(S)) + b"\r\n" + S))
        cases.append((b"%s %s TE %s" % (m, t, exp[:6]), m + b" " + t + b" HTTP/1.1\r\nHost: a\r\n" + exp + CH + b"\r\n" + chunked_S))
# upgrade with body
up = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
cases.append((b"upgrade CL", up + cl(len(S)) + b"\r\n" + S))
cases.append((b"upgrade TE", up + CH + b"\r\n" + chunked_S))
cases.append((b"bad upgrade version CL", up.replace(b"Version: 13", b"Version: 8") + cl(len(S)) + b"\r\n" + S))
# header tricks with a body the server may think is absent
G = b"GET /index.html HTTP/1.1\r\nHost: a\r\n"
tricks = {
 b"CL+TE": G + cl(len(chunked_S)) + CH + b"\r\n" + chunked_S,
 b"TE+CL 0": G + CH + cl(0) + b"\r\n" + chunked_S,
 b"dup CL same": G + cl(len(S)) + cl(len(S)) + b"\r\n" + S,
 b"dup CL diff": G + cl(0) + cl(len(S)) + b"\r\n" + S,
 b"CL list": G + b"Content-Length: %d, %d\r\n" % (len(S), len(S)) + b"\r\n" + S,
 b"CL +": G + b"Content-Length: +%d\r\n" % len(S) + b"\r\n" + S,
 b"CL leading 0": G + b"Content-Length: 00%d\r\n" % len(S) + b"\r\n" + S,
 b"CL space-colon": G + b"Content-Length : %d\r\n" % len(S) + b"\r\n" + S,
 b"CL tab": G + b"Content-Length:\t%d\t\r\n" % len(S) + b"\r\n" + S,
 b"CL obs-fold": G + b"X-A: 1\r\n Content-Length: %d\r\n" % len(S) + b"\r\n" + S,
 b"CL folded value": G + b"Content-Length:\r\n %d\r\n" % len(S) + b"\r\n" + S,
 b"CL bare LF": b"GET /index.html HTTP/1.1\nHost: a\nContent-Length: %d\n\n" % len(S) + S,
 b"CL bare CR": G + b"X-A: 1\rContent-Length: %d\r\n" % len(S) + b"\r\n" + S,
 b"CL NUL in name": G + b"Content-Length\x00: %d\r\n" % len(S) + b"\r\n" + S,
 b"CL NUL in value": G + b"Content-Length: %d\x00\r\n" % len(S) + b"\r\n" + S,
 b"CL 2^64": G + b"Content-Length: 18446744073709551616\r\n\r\n" + S,
 b"CL 2^64+len": G + b"Content-Length: %d\r\n\r\n" % (2**64 + len(S)) + S,
 b"CL negative": G + b"Content-Length: -1\r\n\r\n" + S,
 b"CL hex": G + b"Content-Length: 0x%x\r\n\r\n" % len(S) + S,
 b"CL empty": G + b"Content-Length: \r\n\r\n" + S,
 b"TE Chunked caps": G + b"Transfer-Encoding: Chunked\r\n\r\n" + chunked_S,
 b"TE chunked,chunked": G + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + chunked_S,
 b"TE gzip,chunked": G + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked_S,
 b"TE xchunked": G + b"Transfer-Encoding: xchunked\r\n\r\n" + chunked_S,
 b"TE space-colon": G + b"Transfer-Encoding : chunked\r\n\r\n" + chunked_S,
 b"TE obs-fold": G + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunked_S,
 b"TE vtab": G + b"Transfer-Encoding:\x0bchunked\r\n\r\n" + chunked_S,
 b"TE twice": G + CH + CH + b"\r\n" + chunked_S,
 b"TE identity": G + b"Transfer-Encoding: identity\r\n" + cl(len(S)) + b"\r\n" + S,
 b"HTTP/1.0 TE": b"GET /index.html HTTP/1.0\r\n" + CH + b"\r\n" + chunked_S,
 b"HTTP/1.0 CL keepalive": b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n" + cl(len(S)) + b"\r\n" + S,
 b"GET no body then S": G + b"\r\n" + S,  # legit pipelining: expect smuggled=1 answered (control)
}
for k, v in tricks.items(): cases.append((k, v))
# chunk-parsing tricks towards a CGI that reads its body
P = b"POST " + cgi.encode() + b" HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n"
ctr = {
 b"cgi chunk ok + S pipelined (control)": P + b"5\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk size overflow": P + b"10000000000000005\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk size 0x": P + b"0x5\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk size -1": P + b"-1\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk size sp": P + b"5 \r\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk ext": P + b"5;a=b\r\nhello\r\n0;x=\"y\"\r\n\r\n" + S,
 b"cgi chunk ext quoted CRLF": P + b"5;a=\"\r\n0\r\n\r\n" + S + b"\"\r\nhello\r\n0\r\n\r\n",
 b"cgi chunk ext LF": P + b"5;a\nhello\r\n0\r\n\r\n" + S,
 b"cgi chunk bare LF": P + b"5\nhello\n0\n\n" + S,
 b"cgi chunk data no CRLF": P + b"5\r\nhelloXX0\r\n\r\n" + S,
 b"cgi chunk trailer": P + b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n" + S,
 b"cgi chunk trailer CL": P + b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n" + S,
 b"cgi chunk trailer bare LF": P + b"5\r\nhello\r\n0\r\nX-T: 1\n\n" + S,
 b"cgi chunk trailer fold": P + b"5\r\nhello\r\n0\r\nX-T: 1\r\n " + S,
 b"cgi huge trailer": P + b"5\r\nhello\r\n0\r\n" + b"X-T: " + b"a" * 100000 + b"\r\n\r\n" + S,
 b"cgi many trailers": P + b"5\r\nhello\r\n0\r\n" + b"X-T: a\r\n" * 5000 + b"\r\n" + S,
 b"cgi huge ext": P + b"5;" + b"a" * 100000 + b"\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi CL+TE": b"POST " + cgi.encode() + b" HTTP/1.1\r\nHost: a\r\n" + cl(5) + CH + b"\r\n" + b"5\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi CL short": b"POST " + cgi.encode() + b" HTTP/1.1\r\nHost: a\r\n" + cl(5) + b"\r\nhello" + S,
 b"cgi leading zeros size": P + b"000000000000000000000005\r\nhello\r\n0\r\n\r\n" + S,
 b"cgi NUL in size": P + b"5\x00\r\nhello\r\n0\r\n\r\n" + S,
}
for k, v in ctr.items(): cases.append((k, v))
bad = 0
for name, data in cases:
    out = raw(port, data, timeout=2.5)
    st = [s.decode() for s in statuses(out)]
    smug = b"smuggled=1" in out
    tail = "EOF" if out.endswith(b"<<EOF>>") else ("TIMEOUT" if out.endswith(b"<<TIMEOUT>>") else "RST" if out.endswith(b"<<RST>>") else "?")
    body = re.findall(rb"read \d+", out)
    flag = "SMUGGLED" if smug else "ok"
    if smug and b"control" not in name: bad += 1
    print(f"{flag:8} {name.decode():40} {st} {tail} {[b.decode() for b in body]}")
print("smuggled (non-control):", bad)
