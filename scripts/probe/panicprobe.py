#!/usr/bin/env python3
"""panicprobe.py PORT PID: drive the panicproto example's `boom` protocol to
panic in each callback (HTTP and WebSocket); after each, a fresh GET must work
and the fd count must return. Prints what each panicking connection saw."""
import socket, sys, time, os, struct
port, pid = int(sys.argv[1]), sys.argv[2]
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def talk(data, t=3, after=None):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(t); s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: out += b"<EOF>"; break
            out += d
            if after and after in out: s.sendall(after_send); 
    except socket.timeout: out += b"<TIMEOUT>"
    except ConnectionResetError: out += b"<RST>"
    s.close(); return out
def fr(p, op=1): return bytes([0x80 | op, 0x80 | len(p)]) + b"\0\0\0\0" + p
def up(path="/", proto="boom"): return (f"GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n").encode()
def check(name, out):
    g = talk(b"GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    st = [l for l in out.split(b"\r\n") if l.startswith(b"HTTP/")]
    print(f"{name:28s} saw {st} tail {out[-30:]!r} | next GET {g[:15]} fds {fds()}")
f0 = fds(); print("fds before", f0)
check("http panic", talk(b"GET /boom/http HTTP/1.1\r\nHost: a\r\n\r\nGET /boom/ok HTTP/1.1\r\nHost: a\r\n\r\n"))
check("body panic", talk(b"POST /boom/body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"))
check("body panic chunked", talk(b"POST /boom/body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
check("writeable panic", talk(b"GET /boom/write HTTP/1.1\r\nHost: a\r\n\r\n"))
check("closed-http panic", talk(b"GET /boom/close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
check("ws established panic", talk(up("/ws-est") + fr(b"hi")))
check("ws receive panic", talk(up() + fr(b"hi") + fr(b"panic") + fr(b"after")))
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3); s.sendall(up() + fr(b"panic-w")); time.sleep(0.5)
try:
    s.sendall(fr(b"after")); o = b""
    while True:
        d = s.recv(65536)
        if not d: o += b"<EOF>"; break
        o += d
except Exception as e: o += repr(e).encode()
s.close(); check("ws writeable panic", o)
check("ws closed panic (client close)", talk(up() + fr(b"panic-close") + fr(struct.pack(">H", 1000), 8)))
s = socket.create_connection(("127.0.0.1", port)); s.sendall(up() + fr(b"panic-close")); time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close(); time.sleep(0.3)
check("ws closed panic (RST)", b"")
for i in range(200):
    talk(up() + fr(b"panic"), t=1)
check("200 ws receive panics", b"")
time.sleep(1); print("fds after", fds(), "(before", f0, ")")
