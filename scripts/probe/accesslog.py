#!/usr/bin/env python3
"""Send requests with hostile bytes in method/path/referer/user-agent; print the access-log lines they made.
usage: accesslog.py PORT LOGFILE"""
import sys, time, os
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from raw import raw
port, log = int(sys.argv[1]), sys.argv[2]
start = os.path.getsize(log) if os.path.exists(log) else 0
reqs = [
 b"GET /a%0a1.2.3.4%20-%20-%20[x]%20%22GET%20/x%22 HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /q\"uote\\back HTTP/1.1\r\nHost: a\r\nReferer: r\"\\ \x01\x7f\xff\r\nUser-Agent: ua\" \"x\x1b[31mred\r\n\r\n",
 b"GET /%c3%a9%ff%fe HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /%e2%80%a8ls HTTP/1.1\r\nHost: a\r\nUser-Agent: \xe2\x80\xa8\xc2\x85\r\n\r\n",
 b"GET /" + b"A" * 4000 + b" HTTP/1.1\r\nHost: a\r\nReferer: " + b"\"" * 3000 + b"\r\nUser-Agent: " + b"\\" * 3000 + b"\r\n\r\n",
 b"G\"ET / HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET\x01 / HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /\x1b]0;title\x07 HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: a\x00b\r\n\r\n",
 b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: a\r\nUser-Agent: b\"\r\n\r\n",
 b"GET /x?q=%0a\"x HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /" + b"%22" * 1300 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /" + b"%ff" * 1300 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
 b"GET /private/ HTTP/1.1\r\nHost: a\r\nAuthorization: Basic ZGVtbzpkZW1v\r\n\r\n",
 b"GET /private/ HTTP/1.1\r\nHost: a\r\nAuthorization: Basic " + __import__("base64").b64encode(b"us\"er\n1.1.1.1:demo") + b"\r\n\r\n",
 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
]
for r in reqs:
    raw(port, r, timeout=1)
time.sleep(1.5)
with open(log, "rb") as f:
    f.seek(start); data = f.read()
lines = data.split(b"\n")
for l in lines:
    if l: print(len(l), l[:300] + (b"..." if len(l) > 300 else b""))
bad = [l for l in lines if any(c < 0x20 or c >= 0x7f for c in l)]
print("lines:", len([l for l in lines if l]), "with raw control/non-ASCII bytes:", len(bad), "max len:", max(len(l) for l in lines))
