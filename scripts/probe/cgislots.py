#!/usr/bin/env python3
"""cgislots.py PORT PID [N] [PATH]: N clients ask for a slow CGI (PATH, default
/cgi-bin/sleep.sh) on a mount with few slots; half vanish (RST) while running or
waiting, half by FIN; then checks the slots came back (4 sequential requests of
/cgi-bin/env.sh get 200, not 503), the children are gone and fds returned."""
import socket, sys, time, os, struct, subprocess
port, pid = int(sys.argv[1]), sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 30
path = sys.argv[4] if len(sys.argv) > 4 else "/cgi-bin/sleep.sh"
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def kids(): return subprocess.run(["ps", "--ppid", pid, "-o", "pid=,stat=,cmd="], capture_output=True, text=True).stdout.strip().splitlines()
def pgkids():  # anything in process groups led by our children (sleep of sleep.sh)
    return subprocess.run(["pgrep", "-f", "sleep 20"], capture_output=True, text=True).stdout.split()
f0 = fds(); print("fds before", f0, "kids", kids())
for rnd in range(3):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {path}?{rnd}-{i} HTTP/1.1\r\nHost: a\r\n\r\n".encode()); socks.append(s)
    time.sleep(0.7 if rnd != 1 else 2.5)
    print(f"round {rnd}: kids running {len(kids())}, fds {fds()}")
    for i, s in enumerate(socks):
        if i % 2: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.5)
    print(f"  after close: kids {kids()} sleep-procs {pgkids()} fds {fds()}")
res = []
for i in range(4):
    c = socket.create_connection(("127.0.0.1", port)); c.settimeout(10)
    c.sendall(b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); res.append(c.recv(12)); c.close()
print("after:", res, "fds", fds(), "(before", f0, ") kids", kids())
