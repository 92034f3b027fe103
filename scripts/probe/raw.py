#!/usr/bin/env python3
"""raw.py PORT 'python-bytes-literal' [timeout] : send raw bytes, print everything read until close/timeout."""
import socket, sys, time
def raw(port, data, timeout=3.0, shut=False, chunks=None, delay=0):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    if chunks:
        for c in chunks:
            s.sendall(c); time.sleep(delay)
    else:
        s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    t0 = time.time()
    try:
        while True:
            b = s.recv(65536)
            if not b: out += b"<<EOF>>"; break
            out += b
    except socket.timeout:
        out += b"<<TIMEOUT>>"
    except ConnectionResetError:
        out += b"<<RST>>"
    s.close()
    return out
def statuses(out):
    return [l for l in out.split(b"\r\n") if l.startswith(b"HTTP/1.")]
if __name__ == "__main__":
    port = int(sys.argv[1]); data = eval("b" + repr(sys.argv[2]).replace("\\\\", "\\")) if False else sys.argv[2].encode().decode("unicode_escape").encode("latin1")
    t = float(sys.argv[3]) if len(sys.argv) > 3 else 3
    o = raw(port, data, t)
    sys.stdout.write(o.decode("latin1"))
    print("\n--- statuses:", statuses(o))
