#!/usr/bin/env python3
"""Odd WebSocket frames to each built-in protocol; checks the server still answers after each.
usage: wsfuzz.py PORT [PID]"""
import socket, struct, os, sys, time, random, zlib
port = int(sys.argv[1]); pid = sys.argv[2] if len(sys.argv) > 2 else None
def hs(proto, ext=None, path="/"):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    h = f"GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    if proto: h += f"Sec-WebSocket-Protocol: {proto}\r\n"
    if ext: h += f"Sec-WebSocket-Extensions: {ext}\r\n"
    s.sendall((h + "\r\n").encode())
    r = b""
    while b"\r\n\r\n" not in r:
        b = s.recv(4096)
        if not b: break
        r += b
    return s, r
def frame(op, payload, fin=True, mask=True, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if length is None else length
    if n < 126: hdr = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536: hdr = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack(">H", n)
    else: hdr = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack(">Q", n)
    if mask:
        k = os.urandom(4); hdr += k
        payload = bytes(c ^ k[i % 4] for i, c in enumerate(payload))
    return hdr + payload
def drain(s, t=1.0):
    s.settimeout(t); out = b""; end = time.time() + 3 * t + 1
    try:
        while time.time() < end:
            b = s.recv(65536)
            if not b: return out + b"<EOF>"
            out += b
            if len(out) > 1 << 20: return out
    except socket.timeout: return out
    except ConnectionResetError: return out + b"<RST>"
    return out
def alive():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3); s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        return s.recv(12) == b"HTTP/1.1 200"
    except Exception as e: return False
cases = {
 "len 2^63": frame(1, b"", length=(1 << 63)),
 "len 2^64-1": frame(2, b"", length=(1 << 64) - 1),
 "len 1GiB": frame(2, b"x" * 10, length=1 << 30),
 "opcode 3": frame(3, b"x"), "opcode 0xb": frame(0xb, b"x"),
 "unmasked": frame(1, b"hi", mask=False),
 "rsv1 no ext": frame(1, b"hi", rsv=4), "rsv3": frame(1, b"hi", rsv=7),
 "ping 126": frame(9, b"x" * 126), "frag ping": frame(9, b"x", fin=False),
 "cont first": frame(0, b"x"), "text bad utf8": frame(1, b"\xff\xfe"),
 "text split utf8": frame(1, b"\xe2\x82", fin=False) + frame(0, b"\xac"),
 "text overlong": frame(1, b"\xc0\xaf"), "surrogate": frame(1, b"\xed\xa0\x80"),
 "close 1 byte": frame(8, b"\x03"), "close code 0": frame(8, b"\x00\x00"),
 "close 1005": frame(8, struct.pack(">H", 1005)), "close 5000": frame(8, struct.pack(">H", 5000)),
 "close bad utf8 reason": frame(8, struct.pack(">H", 1000) + b"\xff"),
 "new msg during frag": frame(1, b"a", fin=False) + frame(1, b"b"),
 "many frags": b"".join([frame(1, b"a", fin=False)] + [frame(0, b"a", fin=False) for _ in range(20000)] + [frame(0, b"a")]),
 "big msg 4MiB": frame(2, os.urandom(4 << 20)),
 "big text 2MiB": frame(1, b"a" * (2 << 20)),
 "len 126 for 5": bytes([0x81, 0xfe, 0, 5]) + b"\0\0\0\0" + b"hello",
 "len 127 for 5": bytes([0x81, 0xff]) + struct.pack(">Q", 5) + b"\0\0\0\0" + b"hello",
 "garbage": os.urandom(4096),
 "http after upgrade": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
 "ping flood": frame(9, b"p") * 20000,
}
defl_cases = {
 "deflate garbage": frame(1, os.urandom(200), rsv=4),
 "deflate bomb": None,
 "deflate on control": frame(9, b"x", rsv=4),
 "deflate cont rsv1": frame(1, b"\xf2\x48\x05\x00", rsv=4, fin=False) + frame(0, b"\x00", rsv=4),
}
c = zlib.compressobj(9, zlib.DEFLATED, -15); bomb = c.compress(b"\0" * (512 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
defl_cases["deflate bomb"] = frame(2, bomb[:-4], rsv=4)
protos = [None, "echo", "dumb-increment-protocol", "lws-mirror-protocol", "lws-status", "nonexistent", "echo, lws-status", "a" * 5000]
if os.environ.get("PROTOS"): protos = [None if x == "-" else x for x in os.environ["PROTOS"].split("|")]
fails = 0
for p in protos:
    for name, data in list(cases.items()) + [(k, v) for k, v in defl_cases.items()]:
        ext = "permessage-deflate; client_max_window_bits" if name.startswith("deflate") else None
        try:
            s, r = hs(p, ext)
            st = r.split(b"\r\n")[0]
            try: s.sendall(data)
            except Exception as e: pass
            out = drain(s, float(os.environ.get("DRAIN", "0.6"))); s.close()
        except Exception as e:
            st = repr(e).encode(); out = b""
        ok = alive()
        if not ok: fails += 1
        close = b""
        i = out.find(b"\x88")
        if i >= 0 and i + 4 <= len(out): close = out[i:i + 4]
        print(("DEAD " if not ok else "ok   "), (p or "-")[:30], name, st[:40], len(out), close.hex())
        if not ok: sys.exit(1)
if pid:
    print(open(f"/proc/{pid}/status").read().split("VmHWM")[1][:30].split("\n")[0], "fds", len(os.listdir(f"/proc/{pid}/fd")))
print("failures", fails)
