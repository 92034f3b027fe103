#!/usr/bin/env python3
"""wsrace.py PORT [PID]: WebSocket upgrade races against the echo protocol (the
vhost's default). Cases: frames in the same packet as the upgrade; frames
split mid-header across the head's end; a 101 left pending behind a big
pipelined file the client does not read yet, with frames queued after it;
clients closing (FIN / RST) before, during and right after the upgrade;
upgrade carrying a body; upgrade pipelined after a GET. Prints per case
what came back; with PID, fd count before/after."""
import socket, sys, time, os, struct, base64
port = int(sys.argv[1]); pid = sys.argv[2] if len(sys.argv) > 2 else None
BIG = os.environ.get("BIG", "/big.bin")
def fds(): return len(os.listdir(f"/proc/{pid}/fd")) if pid else -1
KEY = base64.b64encode(b"0123456789abcdef").decode()
def up(extra=""):
    return (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
def frame(payload, op=1, fin=True):
    mask = b"\x11\x22\x33\x44"
    n = len(payload)
    h = bytes([(0x80 if fin else 0) | op])
    if n < 126: h += bytes([0x80 | n])
    elif n < 65536: h += bytes([0x80 | 126]) + struct.pack(">H", n)
    else: h += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5); return s
def readall(s, until=None, t=3):
    s.settimeout(t); out = b""
    try:
        while True:
            d = s.recv(1 << 20)
            if not d: return out + b"<EOF>"
            out += d
            if until and until(out): return out
    except socket.timeout: return out + b"<TIMEOUT>"
    except ConnectionResetError: return out + b"<RST>"
def texts(out):
    i = out.find(b"\r\n\r\n")
    if i < 0: return out[:80]
    head, body = out[:i], out[i+4:]
    res = [head.split(b"\r\n")[0]]
    while len(body) >= 2:
        n = body[1] & 0x7f; off = 2
        if n == 126: n = struct.unpack(">H", body[2:4])[0]; off = 4
        elif n == 127: n = struct.unpack(">Q", body[2:10])[0]; off = 10
        if len(body) < off + n: res.append(b"partial"); break
        res.append((body[0] & 0xf, body[off:off+n][:40])); body = body[off+n:]
    if body.endswith(b"<EOF>") or body in (b"<EOF>", b"<TIMEOUT>", b"<RST>"): res.append(body[-9:])
    return res
f0 = fds(); print("fds before", f0)
# 1: upgrade + two frames in one packet
s = conn(); s.sendall(up() + frame(b"one") + frame(b"two"))
print("1 same-packet:", texts(readall(s, lambda o: o.count(b"two") > 0))); s.close()
# 2: head's last CRLF and a frame split byte by byte
s = conn(); data = up() + frame(b"split") + frame(b"x" * 70000)
for i in range(0, len(up()) + 12):
    s.send(data[i:i+1]); time.sleep(0.001)
s.sendall(data[len(up()) + 12:])
print("2 byte-split:", texts(readall(s, lambda o: len(o) > 70010 + 100)));  s.close()
# 3: 101 pending behind a big pipelined file, frames queued, client reads late
s = conn(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
import threading
th = threading.Thread(target=s.sendall, args=(f"GET {BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + up() + frame(b"after-big") + frame(b"x" * 100000),), daemon=True)
th.start(); time.sleep(2)
o = readall(s, lambda o: o.endswith(b"x" * 64) and b"after-big" in o, t=20)
j = o.find(b"HTTP/1.1 101")
print("3 pending-101: got", len(o), "bytes; 101 at", j, texts(o[j:]) if j >= 0 else o[-100:]); s.close()
# 4: closes
for name, cut in [("close-mid-head", up()[:40]), ("close-after-head", up()), ("close-after-head+frame", up() + frame(b"bye")),
                  ("close-after-head+halfframe", up() + frame(b"bye")[:3])]:
    for how in ("FIN", "RST"):
        s = conn(); s.sendall(cut)
        if how == "RST": s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
time.sleep(0.5); print("4 closes: fds now", fds())
# 4b: half-close (shutdown WR) after upgrade + frame: do we still get the echo?
s = conn(); s.sendall(up() + frame(b"half")); s.shutdown(socket.SHUT_WR)
print("4b half-close:", texts(readall(s))); s.close()
# 5: upgrade with a body
s = conn(); s.sendall(up("Content-Length: 5\r\n") + b"hello" + frame(b"bodyframe"))
print("5 upgrade+CL body:", readall(s)[:60]); s.close()
s = conn(); s.sendall(up("Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n0\r\n\r\n" + frame(b"bodyframe"))
print("5 upgrade+chunked body:", readall(s)[:60]); s.close()
# 6: upgrade pipelined after a GET
s = conn(); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + up() + frame(b"piped"))
o = readall(s, lambda o: b"piped" in o); j = o.find(b"HTTP/1.1 101")
print("6 GET then upgrade:", o[:15], texts(o[j:]) if j >= 0 else o[-100:]); s.close()
# 7: close frame in the same packet, then more frames after it
s = conn(); s.sendall(up() + frame(b"a") + frame(struct.pack(">H", 1000), op=8) + frame(b"after-close"))
print("7 close-then-more:", texts(readall(s))); s.close()
# 8: 20 upgrades each followed by a 1 MB message and immediate RST
for i in range(20):
    s = conn(); s.sendall(up() + frame(b"y" * (1 << 20))[:500000])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
time.sleep(1); print("8 rst mid-message x20: fds", fds(), "(before", f0, ")")
