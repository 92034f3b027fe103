#!/usr/bin/env python3
"""Hold N slow downloads open against a local HTTP server.

Each connection sends one `GET PATH HTTP/1.1` request (no Accept-Encoding
unless --header adds one) and then reads the response slowly: recv CHUNK
bytes, sleep INTERVAL seconds, recv again, ... (4096 B every 50 ms by default,
about 80 KB/s per connection).  After SECS seconds of that it stops, checks
which connections the server still holds open, closes them all, and prints
one line on stdout:

  SLOWRESULT conns=N connected=.. open=.. completed=.. closed_early=.. errors=..
             bad_status=.. encoded=.. bytes=.. body_bytes=.. min_conn_bytes=..
             max_conn_bytes=.. connect_s=.. secs=.. mb_per_s=..

  open          connections still open and mid-body at the end (all should be)
  completed     connections whose whole body arrived (none should, with the
                default sizes: 10 MiB at 80 KB/s takes over two minutes)
  closed_early  the server closed (EOF, reset, or a FIN still queued behind
                unread data, seen from the TCP state) before the body ended
  bad_status    responses whose status was not 200
  encoded       responses that carried a Content-Encoding header
  bytes         everything received (headers included); body_bytes: after
                the headers (chunk framing included if the body is chunked)

Exit status 0 only when every connection is open or completed, with status
200 and no error.  One thread, non-blocking sockets, a selector and a heap
of wake-up times; a sleeping connection is not registered with the selector,
so the kernel buffers fill and the server has to hold the rest.  Each socket
gets a small receive buffer (--rcvbuf, default 64 KiB) before connecting so
the server meets back-pressure early instead of parking megabytes in the
kernel.  Progress goes to stderr.  Standard library only.

Used by zip.sh to measure a server's resident memory under slow readers.

usage: slow_readers.py PORT N SECS [--host 127.0.0.1] [--path /big.bin]
       [--chunk 4096] [--interval 0.05] [--rcvbuf 65536] [--header 'K: V']...
"""

import argparse
import fcntl
import heapq
import resource
import selectors
import socket
import struct
import sys
import termios
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


TCP_ESTABLISHED = 1


def tcp_state(sock):
    """The socket's TCP state (Linux TCP_INFO), or None where unavailable."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except (AttributeError, OSError):
        return None


def unread_bytes(sock):
    """Bytes waiting in the socket's receive queue (FIONREAD)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class Conn:
    __slots__ = ("sock", "idx", "state", "head", "status", "length", "chunked",
                 "encoded", "bytes", "body", "tail", "why")

    def __init__(self, sock, idx):
        self.sock = sock
        self.idx = idx
        self.state = "reading"  # reading | completed | closed | error
        self.head = b""         # header bytes until the blank line
        self.status = None
        self.length = None      # Content-Length, if any
        self.chunked = False
        self.encoded = False
        self.bytes = 0
        self.body = 0
        self.tail = b""         # last bytes of a chunked body
        self.why = ""

    def feed(self, data):
        """Account for received bytes; return True when the body is complete."""
        self.bytes += len(data)
        if self.status is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                if len(self.head) > 65536:
                    raise ValueError("response header larger than 64 KiB")
                return False
            head, rest = self.head.split(b"\r\n\r\n", 1)
            self.head = b""
            lines = head.split(b"\r\n")
            parts = lines[0].split()
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise ValueError("bad status line %r" % lines[0][:80])
            self.status = int(parts[1])
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip()
                if name == b"content-length":
                    self.length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
                elif name == b"content-encoding" and value.lower() != b"identity":
                    self.encoded = True
            data = rest
        self.body += len(data)
        if self.length is not None:
            return self.body >= self.length
        if self.chunked:
            self.tail = (self.tail + data)[-7:]
            return self.tail.endswith(b"\r\n0\r\n\r\n") or (self.body == 5 and self.tail == b"0\r\n\r\n")
        return False  # delimited by close: never "complete" while open


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("secs", type=float, help="seconds of slow reading after all connected")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--path", default="/big.bin")
    ap.add_argument("--chunk", type=int, default=4096, help="bytes per recv (default 4096)")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds to sleep after each recv (default 0.05)")
    ap.add_argument("--rcvbuf", type=int, default=65536,
                    help="SO_RCVBUF per socket, 0 = kernel default (default 65536)")
    ap.add_argument("--header", action="append", default=[],
                    help="extra request header 'Name: value' (repeatable)")
    ap.add_argument("--connect-timeout", type=float, default=60.0,
                    help="give up if connecting all takes longer (default 60)")
    args = ap.parse_args()
    if args.count < 1 or args.secs <= 0 or args.chunk < 1 or args.interval < 0:
        ap.error("count, secs and chunk must be positive, interval >= 0")

    raise_nofile(args.count)
    extra = "".join(h.strip() + "\r\n" for h in args.header)
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: warren-slow-readers\r\n"
               "Accept: */*\r\n%s\r\n" % (args.path, args.host, args.port, extra)).encode()

    conns = []
    sel = selectors.DefaultSelector()
    heap = []  # (due_time, idx) of connections waiting out their sleep
    t_start = time.monotonic()
    rc = 1
    try:
        # Connect one at a time (blocking, on loopback this is quick and keeps
        # the listen backlog short), send the request, then go non-blocking.
        for i in range(args.count):
            if time.monotonic() - t_start > args.connect_timeout:
                raise TimeoutError("connecting took over %.0f s" % args.connect_timeout)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if args.rcvbuf > 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            s.settimeout(10)
            try:
                s.connect((args.host, args.port))
                s.sendall(request)
            except OSError:
                s.close()
                raise
            s.setblocking(False)
            conns.append(Conn(s, i))
            heap.append((0.0, i))  # due at once
        connect_s = time.monotonic() - t_start
        print("slow_readers: %d connections open in %.2f s; reading %d B every %.3f s for %.0f s"
              % (len(conns), connect_s, args.chunk, args.interval, args.secs),
              file=sys.stderr, flush=True)

        t0 = time.monotonic()
        deadline = t0 + args.secs
        registered = 0

        def drop(c, state, why=""):
            nonlocal registered
            sel.unregister(c.sock)
            registered -= 1
            c.state = state
            c.why = why

        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            while heap and heap[0][0] <= now:
                _, i = heapq.heappop(heap)
                sel.register(conns[i].sock, selectors.EVENT_READ, conns[i])
                registered += 1
            if not heap and registered == 0:
                break  # nothing left to read
            timeout = deadline - now
            if heap:
                timeout = min(timeout, max(0.0, heap[0][0] - now))
            for key, _ in sel.select(timeout):
                c = key.data
                try:
                    data = c.sock.recv(args.chunk)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    drop(c, "closed", "%s" % e)
                    continue
                if not data:
                    drop(c, "closed", "EOF after %d body bytes" % c.body)
                    continue
                try:
                    done = c.feed(data)
                except ValueError as e:
                    drop(c, "error", str(e))
                    continue
                if done:
                    drop(c, "completed")
                    continue
                sel.unregister(c.sock)
                registered -= 1
                heapq.heappush(heap, (time.monotonic() + args.interval, c.idx))
        elapsed = time.monotonic() - t0

        # Which of the connections still reading are really still open?  A FIN
        # queues behind unread data, so besides peeking ask the kernel for the
        # TCP state: past ESTABLISHED means the server has closed its side.
        for c in conns:
            if c.state != "reading":
                continue
            try:
                if c.sock.recv(1, socket.MSG_PEEK) == b"":
                    c.state, c.why = "closed", "EOF after %d body bytes" % c.body
                    continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                c.state, c.why = "closed", str(e)
                continue
            st = tcp_state(c.sock)
            if st is not None and st != TCP_ESTABLISHED:
                queued = unread_bytes(c.sock)
                if c.length is not None and c.body + queued >= c.length:
                    c.state = "completed"  # all sent, then closed: not early
                else:
                    c.state, c.why = "closed", ("server closed its side (TCP state %d) after %d body "
                                                "bytes read + %d unread" % (st, c.body, queued))

        states = [c.state for c in conns]
        open_ = states.count("reading")
        completed = states.count("completed")
        closed = states.count("closed")
        errors = states.count("error")
        bad_status = sum(1 for c in conns if c.status is not None and c.status != 200)
        no_status = sum(1 for c in conns if c.status is None)
        encoded = sum(1 for c in conns if c.encoded)
        total = sum(c.bytes for c in conns)
        body = sum(c.body for c in conns)
        per = [c.bytes for c in conns]
        for c in conns:
            if c.state in ("closed", "error"):
                print("slow_readers: conn %d %s: %s" % (c.idx, c.state, c.why), file=sys.stderr)
                break  # one example is enough
        print("SLOWRESULT conns=%d connected=%d open=%d completed=%d closed_early=%d errors=%d "
              "bad_status=%d no_status=%d encoded=%d bytes=%d body_bytes=%d min_conn_bytes=%d "
              "max_conn_bytes=%d connect_s=%.2f secs=%.2f mb_per_s=%.2f"
              % (args.count, len(conns), open_, completed, closed, errors, bad_status, no_status,
                 encoded, total, body, min(per), max(per), connect_s, elapsed,
                 total / 1e6 / elapsed if elapsed > 0 else 0.0), flush=True)
        ok = (open_ + completed == args.count and bad_status == 0 and no_status == 0)
        rc = 0 if ok else 1
    except Exception as e:  # noqa: BLE001 - report and fail
        print("SLOWERROR after %d connections: %s" % (len(conns), e), flush=True)
        rc = 2
    finally:
        sel.close()
        for c in conns:
            c.sock.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
