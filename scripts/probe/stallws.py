#!/usr/bin/env python3
"""stallws.py PORT PID SECS [MSG]: one echo WebSocket that sends MSG-byte messages
as fast as the server takes them but never reads; samples the server's RSS and
how much was accepted, then checks a fresh GET and whether the socket was cut."""
import socket, sys, time, os, struct, base64
port, pid, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
msg = int(sys.argv[4]) if len(sys.argv) > 4 else 60000
def rss(): return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
time.sleep(0.2)
mask = b"\0\0\0\0"
fr = bytes([0x82, 0x80 | 126]) + struct.pack(">H", msg) + mask + b"z" * msg if msg < 65536 else bytes([0x82, 0xff]) + struct.pack(">Q", msg) + mask + b"z" * msg
s.setblocking(False)
sent = 0; t0 = time.time(); r0 = rss(); peak = r0; last = 0
while time.time() - t0 < secs:
    try: sent += s.send(fr)
    except BlockingIOError: time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError) as e: print("cut after", f"{time.time()-t0:.1f}s", e); break
    peak = max(peak, rss())
    if time.time() - last > 5: last = time.time(); print(f"t={time.time()-t0:.0f}s sent={sent} rss={rss()}kB", flush=True)
print(f"sent {sent} bytes; rss start {r0} peak {peak} kB")
c = socket.create_connection(("127.0.0.1", port)); c.settimeout(5)
c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); print("fresh GET:", c.recv(15))
