#!/usr/bin/env python3
"""Resident memory per idle WebSocket connection, without building ws-idle.

usage: ws_idle_mem.py PID PORT N

Opens N WebSocket connections to 127.0.0.1:PORT (the default protocol,
echo on the warren binary's default site), exchanges one 16-byte binary
message on each and leaves them idle; prints the server's VmRSS growth
per connection over the last three quarters of them (the first quarter
warms the allocator and the slab up). Loopback only; closes them at exit.
"""
import base64
import os
import socket
import sys
import time


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def recv_exact(s, k):
    b = b""
    while len(b) < k:
        d = s.recv(k - len(b))
        if not d:
            raise EOFError("server closed")
        b += d
    return b


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += recv_exact(s, 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError("no upgrade: %r" % head)
    mask, payload = os.urandom(4), os.urandom(16)
    s.sendall(bytes([0x82, 0x80 | 16]) + mask + bytes(b ^ mask[j % 4] for j, b in enumerate(payload)))
    h = recv_exact(s, 2)
    if recv_exact(s, h[1] & 0x7F) != payload:
        raise RuntimeError("bad echo")
    return s


def main():
    pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    socks, before = [], None
    for i in range(n):
        if i == n // 4:
            time.sleep(0.5)
            before = rss(pid)
        socks.append(connect(port))
    time.sleep(1)
    after = rss(pid)
    counted = n - n // 4
    print("%d idle: %d -> %d KiB over the last %d, %.2f KiB each" % (n, before, after, counted, (after - before) / counted))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
