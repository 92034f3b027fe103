#!/usr/bin/env python3
"""Big zip directories: what the first request for a 200,000-entry archive
costs other clients, and what the server keeps for it.

Builds DIR/big.zip (BENCH_ENTRIES entries, default 200000, stored, names
like d017/f000123.txt) and DIR/small.txt, starts `warren --root DIR` on
127.0.0.1, and runs a prober: one keep-alive connection doing GET /small.txt
in a loop, recording each request's latency. After BENCH_BASE_SECS of
baseline it sends the first request into big.zip (on another connection)
and times it, then a second one, and keeps probing for BENCH_AFTER_SECS.

Prints: the first and second big.zip request times, the prober's max and p99
latency before and while the directory loads, and the server's VmRSS before
and after the load (the growth is about what the cached directory costs).

Knobs: WARREN_BIN (default <repo>/target/release/warren), BENCH_ENTRIES,
BENCH_BASE_SECS (default 1), BENCH_AFTER_SECS (default 1), BENCH_SORTED=1
writes the entries in name order (as `warren pack` does; the default
order is not sorted, d000/f000000, d001/f000001, ...), BENCH_KEEP=1
keeps the temp dir. Loopback only; stops only the server it started, by
pid.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("WARREN_BIN", os.path.join(HERE, "..", "..", "target", "release", "warren"))
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "200000"))
BASE_SECS = float(os.environ.get("BENCH_BASE_SECS", "1"))
AFTER_SECS = float(os.environ.get("BENCH_AFTER_SECS", "1"))
SORTED = os.environ.get("BENCH_SORTED") == "1"


def name(i):
    return "d%03d/f%06d.txt" % (i % 100, i)


def build(d):
    with zipfile.ZipFile(os.path.join(d, "big.zip"), "w", zipfile.ZIP_STORED) as z:
        order = range(ENTRIES)
        if SORTED:
            order = sorted(order, key=name)
        for i in order:
            z.writestr(name(i), b"entry %d\n" % i)
    with open(os.path.join(d, "small.txt"), "wb") as f:
        f.write(b"small\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(sock, path):
    """One GET on a keep-alive connection; returns (status, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return status, body


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def main():
    d = tempfile.mkdtemp(prefix="warren-zipdir-")
    server = None
    try:
        t0 = time.monotonic()
        build(d)
        size = os.path.getsize(os.path.join(d, "big.zip"))
        print("built big.zip: %d entries, %d bytes, %.1f s" % (ENTRIES, size, time.monotonic() - t0))
        port = free_port()
        server = subprocess.Popen([BIN, "--root", d, "--port", str(port)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                s = connect(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        status, _ = get(s, "/small.txt")
        assert status == 200, status
        for _ in range(200):  # warm up
            get(s, "/small.txt")

        samples = []  # (start time, latency)
        stop = threading.Event()

        def probe():
            while not stop.is_set():
                a = time.monotonic()
                st, body = get(s, "/small.txt")
                assert st == 200 and body == b"small\n", (st, body)
                samples.append((a, time.monotonic() - a))

        th = threading.Thread(target=probe)
        th.start()
        time.sleep(BASE_SECS)
        rss_before = rss_kib(server.pid)
        b = connect(port)
        load_start = time.monotonic()
        st, body = get(b, "/big.zip/" + name(123))
        first = time.monotonic() - load_start
        assert st == 200 and body == b"entry 123\n", (st, body)
        a = time.monotonic()
        st, body = get(b, "/big.zip/" + name(ENTRIES - 1))
        second = time.monotonic() - a
        assert st == 200 and body == b"entry %d\n" % (ENTRIES - 1), (st, body)
        load_end = time.monotonic()
        time.sleep(AFTER_SECS)
        stop.set()
        th.join()
        rss_after = rss_kib(server.pid)

        def stats(sel):
            lat = sorted(x for _, x in sel)
            if not lat:
                return "no samples"
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            return "n=%d max=%.2f ms p99=%.2f ms" % (len(lat), lat[-1] * 1e3, p99 * 1e3)

        before = [x for x in samples if x[0] < load_start]
        # Any probe that overlapped the load (started before it ended).
        during = [x for x in samples if x[0] + x[1] >= load_start and x[0] <= load_end]
        print("first request into big.zip: %.1f ms; second: %.2f ms" % (first * 1e3, second * 1e3))
        print("prober before the load: " + stats(before))
        print("prober during the load: " + stats(during))
        print("server VmRSS: %d KiB before, %d KiB after (+%d KiB)" % (rss_before, rss_after, rss_after - rss_before))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if os.environ.get("BENCH_KEEP") == "1":
            print("kept " + d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
