#!/usr/bin/env python3
"""Test CGI: copies the request body to the response, with a
Content-Length equal to CONTENT_LENGTH when the request had one (and
reading no more than that), else reading stdin to its end."""
import os
import sys

out = sys.stdout.buffer
inp = sys.stdin.buffer
length = os.environ.get("CONTENT_LENGTH")
out.write(b"Content-Type: text/plain\r\n")
if length:
    out.write(b"Content-Length: %d\r\n" % int(length))
out.write(b"\r\n")
out.flush()
left = int(length) if length else None
while left is None or left > 0:
    chunk = inp.read1(65536 if left is None else min(65536, left))
    if not chunk:
        break
    out.write(chunk)
    out.flush()
    if left is not None:
        left -= len(chunk)
