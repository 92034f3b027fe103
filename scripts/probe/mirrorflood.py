#!/usr/bin/env python3
"""mirrorflood.py PORT PID [PROTO]: N silent (never-reading) members of lws-mirror-protocol while one
member sends 64 KiB messages for 20 s; reports the server's VmRSS/VmHWM and what happened to each side."""
import socket, sys, os, time, struct
port, pid = int(sys.argv[1]), sys.argv[2]
proto = sys.argv[3] if len(sys.argv) > 3 else "lws-mirror-protocol"
def hs(rcv=None):
    s = socket.socket()
    if rcv: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcv)
    s.connect(("127.0.0.1", port)); s.settimeout(3)
    s.sendall(f"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n".encode())
    r = b""
    while b"\r\n\r\n" not in r: r += s.recv(1)
    return s
def frame(op, payload):
    n = len(payload); k = b"\0\0\0\0"
    if n < 126: h = bytes([0x80 | op, 0x80 | n])
    elif n < 65536: h = bytes([0x80 | op, 0x80 | 126]) + struct.pack(">H", n)
    else: h = bytes([0x80 | op, 0x80 | 127]) + struct.pack(">Q", n)
    return h + k + payload
def mem(): 
    st = open(f"/proc/{pid}/status").read()
    return {k: st.split(k + ":")[1].split("\n")[0].strip() for k in ("VmRSS", "VmHWM")}
silent = [hs(4096) for _ in range(20)]
snd = hs(); snd.settimeout(0.5)
msg = frame(1, b"m" * 65000)
sent = 0; t0 = time.time(); blocked = 0
while time.time() - t0 < 20:
    try:
        snd.sendall(msg); sent += len(msg)
    except socket.timeout: blocked += 1
    except Exception as e: print("sender:", repr(e)); break
    try:
        while snd.recv(1 << 20): pass
    except Exception: pass
print(f"sent {sent/1e6:.1f} MB, sender timeouts {blocked}, server {mem()}, fds {len(os.listdir(f'/proc/{pid}/fd'))}")
alive = 0
for s in silent:
    try:
        s.settimeout(0.2); s.recv(1); alive += 1
    except socket.timeout: alive += 1
    except Exception: pass
print("silent members still connected:", alive)
for s in silent: s.close()
snd.close()
