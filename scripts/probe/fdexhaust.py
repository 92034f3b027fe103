#!/usr/bin/env python3
"""fdexhaust.py PORT PID N HOLD_SECS [PATH]: open N connections (some mid-request, some downloading PATH slowly),
hold them, sample server CPU/fds, then close and check the server still serves and is idle."""
import socket, sys, time, os, resource
port, pid, n, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
path = sys.argv[5] if len(sys.argv) > 5 else "/big.bin"
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
def cpu():
    st = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def get(p="/index.html"):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3); s.sendall(f"GET {p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        d = b""
        while True:
            b = s.recv(65536)
            if not b: break
            d += b
        return d.split(b"\r\n")[0].decode()
    except Exception as e: return repr(e)
socks = []; kinds = {"503": 0, "other": 0}
for i in range(n):
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.settimeout(2)
        s.connect(("127.0.0.1", port))
        if i % 3 == 0: s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        elif i % 3 == 1: s.sendall(b"GET /index.html HTTP/1.1\r\nHo")
        socks.append(s)
    except Exception as e:
        print("connect", i, repr(e)); break
print("opened", len(socks), "server fds", fds(), flush=True)
print("during: fresh GET ->", get())
c0 = cpu(); t0 = time.time(); time.sleep(hold); c1 = cpu()
print(f"server CPU while held: {100*(c1-c0)/(time.time()-t0):.1f}% fds {fds()}", flush=True)
for s in socks: s.close()
time.sleep(2)
c0 = cpu(); t0 = time.time(); time.sleep(5); c1 = cpu()
print(f"after close: CPU {100*(c1-c0)/(time.time()-t0):.1f}% fds {fds()} GET -> {get()} {get('/big.bin')[:20]}")
print(open(f"/proc/{pid}/status").read().split("VmHWM:")[1].split("\n")[0].strip(), "HWM")
