#!/usr/bin/env python3
"""stall.py PORT PATH STALL_SECS : request, read nothing for STALL_SECS, then check whether the server still holds the connection (ss) and read the rest."""
import socket, sys, time, subprocess
port, path, st = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect(("127.0.0.1", port))
lp = s.getsockname()[1]
s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
t0 = time.time()
while time.time() - t0 < st:
    time.sleep(5)
    o = subprocess.run(["ss", "-tnH", "state", "all", f"( dport = :{lp} )"], capture_output=True, text=True).stdout.split()
    print(f"t={time.time()-t0:.0f}s server side: {o[:3] if o else 'gone'}", flush=True)
s.settimeout(5); got = 0
try:
    while True:
        b = s.recv(1 << 20)
        if not b: break
        got += len(b)
except Exception as e: print("recv:", repr(e))
print("received after stall:", got)
