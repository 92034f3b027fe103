#!/usr/bin/env python3
"""Resident memory per permessage-deflate WebSocket after one message.

Opens N WebSocket connections to a local server (127.0.0.1 only), each
offering `permessage-deflate; client_max_window_bits`, checks that deflate
was agreed, sends one compressed 47-byte text message (masked, RSV1 set, as
a browser would) and reads the echo.  It reads the server's VmRSS from
/proc/PID/status before the first connection, once all N have exchanged
their message, and again a second after closing them all, and prints:

    deflate_conns N rss_before_kib A rss_open_kib B rss_closed_kib C per_conn_kib P

where P = (B - A) / N.  Standard library only.  For warren run its default
site (`warren --port P`): upgrades that name no subprotocol get `echo`.

usage: ws_deflate_mem.py PID PORT [-n 1000] [--path /]
"""

import argparse
import base64
import os
import resource
import socket
import sys
import time
import zlib

MESSAGE = b"warren says hello over permessage-deflate: 47 b."[:47]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 64
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def frame(opcode, payload, rsv1=False):
    mask = os.urandom(4)
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(s, 8), "big")
    return b0, recv_exact(s, n)


def open_one(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            raise RuntimeError("no 101")
        head += c
    text = head.decode("latin-1")
    if not text.startswith("HTTP/1.1 101") or "permessage-deflate" not in text.lower():
        raise RuntimeError(f"deflate not agreed: {text!r}")
    comp = zlib.compressobj(wbits=-15)
    wire = comp.compress(MESSAGE) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert wire.endswith(b"\x00\x00\xff\xff")
    s.sendall(frame(0x1, wire[:-4], rsv1=True))
    b0, payload = read_frame(s)
    if b0 & 0x40:
        payload = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
    if payload != MESSAGE:
        raise RuntimeError(f"wrong echo {payload!r}")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("port", type=int)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--path", default="/")
    a = ap.parse_args()
    raise_nofile(a.n)
    before = rss_kib(a.pid)
    conns = []
    for i in range(a.n):
        try:
            conns.append(open_one(a.port, a.path))
        except Exception as e:  # noqa: BLE001 - report and stop
            print(f"error after {i} connections: {e}")
            return 1
    time.sleep(0.5)
    opened = rss_kib(a.pid)
    for s in conns:
        try:
            s.sendall(frame(0x8, b"\x03\xe8"))
        except OSError:
            pass
        s.close()
    time.sleep(1.0)
    closed = rss_kib(a.pid)
    print(
        f"deflate_conns {a.n} rss_before_kib {before} rss_open_kib {opened} "
        f"rss_closed_kib {closed} per_conn_kib {(opened - before) / a.n:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
