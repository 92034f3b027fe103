#!/usr/bin/env python3
"""slowread.py PORT PATH RATE_BPS SLOW_SECS [READSIZE] [RCVBUF] [HEADER]
Read PATH at RATE bytes/s (READSIZE per recv) for SLOW_SECS, then as fast as possible to the end.
Prints status, Content-Length, body bytes received, whether the server cut the connection early."""
import socket, sys, time
port, path, rate, slow = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rs = int(sys.argv[5]) if len(sys.argv) > 5 else 4096
rcv = int(sys.argv[6]) if len(sys.argv) > 6 else 8192
hdr = sys.argv[7] + "\r\n" if len(sys.argv) > 7 else ""
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcv)
s.connect(("127.0.0.1", port))
s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{hdr}\r\n".encode())
buf = b""; t0 = time.time(); got = 0; head = None; cl = None; cut = ""
s.settimeout(30)
try:
    while True:
        n = rs if time.time() - t0 < slow else 1 << 20
        b = s.recv(n)
        if not b: break
        got += len(b)
        if head is None:
            buf += b
            if b"\r\n\r\n" in buf:
                head, rest = buf.split(b"\r\n\r\n", 1); got = len(rest)
                for l in head.split(b"\r\n"):
                    if l.lower().startswith(b"content-length:"): cl = int(l.split(b":")[1])
        if time.time() - t0 < slow:
            time.sleep(len(b) / rate)
except Exception as e:
    cut = repr(e)
el = time.time() - t0
print(f"status={head.split(b' ')[1].decode() if head else None} content_length={cl} body={got} complete={cl == got} secs={el:.1f} err={cut}")
