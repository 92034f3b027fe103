#!/usr/bin/env python3
"""hugenum.py PORT [CGI]: overflowing / huge Content-Length, chunk sizes, header
counts and lengths, to a file, a CGI and a WebSocket upgrade; prints the status
line (or EOF/TIMEOUT) for each."""
import socket, sys
port = int(sys.argv[1]); cgi = sys.argv[2] if len(sys.argv) > 2 else "/cgi-bin/readall.sh"
def go(name, data, t=3):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(t)
    try: s.sendall(data)
    except Exception as e: pass
    out = b""
    try:
        while len(out) < 4096:
            d = s.recv(4096)
            if not d: out += b"<EOF>"; break
            out += d
    except socket.timeout: out += b"<TIMEOUT>"
    except ConnectionResetError: out += b"<RST>"
    s.close()
    sl = [l for l in out.split(b"\r\n") if l.startswith(b"HTTP/")]
    print(f"{name:45s} {[x.decode() for x in sl]} {out[-9:] if out.endswith(b'>') else ''}")
H = "Host: a\r\n"
for path in ("/index.html", cgi):
    for cl in ("18446744073709551615", "18446744073709551616", "99999999999999999999999999", "-1", "+5", "0x10", "1e3", " 5", "5 ,5", "5,6", "00000000000000000000000005"):
        go(f"{path} CL={cl!r}", f"POST {path} HTTP/1.1\r\n{H}Content-Length: {cl}\r\n\r\nhello".encode())
    for cs in ("ffffffffffffffff", "10000000000000000", "fffffffffffffffffffffffff", "-1", "0x5", "5;" + "e" * 9000, " 5", "5 "):
        go(f"{path} chunk={cs[:24]!r}", f"POST {path} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n{cs}\r\nhello\r\n0\r\n\r\n".encode())
go("10000 headers", ("GET / HTTP/1.1\r\n" + H + "X: y\r\n" * 10000 + "\r\n").encode())
go("1 header of 1 MB", ("GET / HTTP/1.1\r\n" + H + "X: " + "y" * 1000000 + "\r\n\r\n").encode())
go("request line 1 MB", ("GET /" + "a" * 1000000 + " HTTP/1.1\r\n" + H + "\r\n").encode())
go("cgi 1000 headers (HTTP_*)", (f"GET {cgi} HTTP/1.1\r\n" + H + "".join(f"X-H{i}: {'v'*60}\r\n" for i in range(1000)) + "\r\n").encode())
go("ws key 1 MB", ("GET / HTTP/1.1\r\n" + H + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + "A" * 100000 + "\r\n\r\n").encode())
go("ws 64-bit len frame 2^63", b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00abc")
go("ws 64-bit len frame 2^62", b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + b"\x82\xff\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00abc")
go("Range huge", f"GET /big.bin HTTP/1.1\r\n{H}Range: bytes=18446744073709551615-18446744073709551616\r\n\r\n".encode())
go("Range many", (f"GET /big.bin HTTP/1.1\r\n{H}Range: bytes=" + ",".join(f"{i}-{i}" for i in range(2000)) + "\r\nConnection: close\r\n\r\n").encode())
