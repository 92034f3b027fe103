#!/usr/bin/env python3
"""fdcgiws.py PORT PID: against a server started with a low fd limit (ulimit -n 64):
hold WebSockets until accept fails, then ask for CGI (needs pipes + pidfd) and
WebSocket upgrades at the edge, release, and check: CPU spent while saturated,
fds / children after, a CGI and a WS still work."""
import socket, sys, time, os, subprocess, struct
port, pid = int(sys.argv[1]), sys.argv[2]
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def cpu():
    st = open(f"/proc/{pid}/stat").read().split(")")[1].split(); return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
def kids(): return subprocess.run(["ps", "--ppid", pid, "-o", "pid=,stat=,cmd="], capture_output=True, text=True).stdout.strip().splitlines()
UP = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
def ask(data, t=3):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(t); s.sendall(data)
    try: r = s.recv(200)
    except Exception as e: r = repr(e).encode()
    return s, r
f0 = fds(); print("fds before", f0)
held = []; codes = {}
for i in range(80):
    s, r = ask(UP, 1)
    k = r[:12]; codes[k] = codes.get(k, 0) + 1; held.append(s)
print("ws attempts:", codes, "server fds", fds())
c0 = cpu(); cg = {}
for i in range(20):
    s, r = ask(b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: a\r\n\r\n", 2); held.append(s)
    k = r[:12]; cg[k] = cg.get(k, 0) + 1
print("cgi while saturated:", cg, "kids", len(kids()))
time.sleep(5); print("cpu over 5 s saturated:", round(cpu() - c0, 2), "s; fds", fds())
# free a few, so CGI spawns hit the limit part way (pipes ok, pidfd not...)
for j in range(1, 8):
    for s in held[:1]: s.close()
    held = held[1:]
    time.sleep(0.3)
    s, r = ask(b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: a\r\n\r\n", 3); held.append(s)
    print(f"freed {j}: cgi ->", r[:12], "fds", fds(), "kids", len(kids()))
for s in held: s.close()
time.sleep(3)
s, r = ask(b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); print("after release cgi:", r[:12])
s, r = ask(UP); print("after release ws:", r[:12]); s.close()
time.sleep(1); print("fds", fds(), "(before", f0, ") kids", kids())
