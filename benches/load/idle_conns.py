#!/usr/bin/env python3
"""Open N keep-alive connections to a local HTTP server and leave them idle.

Each connection sends one `GET PATH HTTP/1.1` request, reads the whole
response (headers, then a body delimited by Content-Length or chunked coding),
and then stays open without sending anything more.  When every connection is
in that state the script prints "ready" on stdout and waits until its stdin
is closed or HOLD seconds have passed, whichever comes first; then it closes
all connections and exits.

Used by compare.sh to measure a server's resident memory per idle connection.
Standard library only.

With --tls each connection does a TLS handshake first (certificate not
checked: a benchmark's throwaway one), so the figure is what an idle HTTPS
connection costs.

usage: idle_conns.py PORT N [HOLD_SECONDS] [--host 127.0.0.1] [--path /index.html] [--tls]
"""

import argparse
import resource
import select
import socket
import ssl
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 64
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def recv_some(sock):
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("server closed the connection before the response ended")
    return data


def read_response(sock):
    """Read one full HTTP/1.1 response; return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv_some(sock)
        if len(buf) > 65536:
            raise ValueError("response header too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"connection", b"").lower() == b"close":
        raise ConnectionError("server answered Connection: close; no keep-alive")
    if b"content-length" in headers:
        left = int(headers[b"content-length"]) - len(rest)
        while left > 0:
            left -= len(recv_some(sock))
    elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        # Good enough for a small body: read until the last-chunk marker.
        while not (rest.endswith(b"0\r\n\r\n") or rest == b"0\r\n\r\n"):
            rest += recv_some(sock)
    elif status not in (204, 304) and not 100 <= status < 200:
        raise ValueError("response has no length; cannot stay on keep-alive")
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("hold", type=float, nargs="?", default=60.0,
                    help="seconds to keep the connections open at most (default 60)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--tls", action="store_true", help="speak HTTPS (certificate not verified)")
    args = ap.parse_args()
    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    raise_nofile(args.count)
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: warren-idle-conns\r\n"
               "Accept: */*\r\n\r\n" % (args.path, args.host, args.port)).encode()

    socks = []
    try:
        for i in range(args.count):
            s = socket.create_connection((args.host, args.port), timeout=10)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname=args.host)
            socks.append(s)
            s.sendall(request)
            status = read_response(s)
            if status != 200:
                raise ValueError("connection %d: status %d for %s" % (i, status, args.path))
        print("ready", flush=True)
        # Idle until stdin closes or the hold time runs out.
        deadline = time.monotonic() + args.hold
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sys.stdin], [], [], left)
            if r and not sys.stdin.buffer.read1(4096):
                break
        # Report connections the server dropped while idle.
        dropped = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    dropped += 1
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except OSError:
                dropped += 1
        print("closed %d dropped_while_idle %d" % (len(socks), dropped), flush=True)
    except Exception as e:  # noqa: BLE001 - report and fail
        print("error after %d connections: %s" % (len(socks), e), flush=True)
        return 1
    finally:
        for s in socks:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
