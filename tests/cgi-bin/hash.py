#!/usr/bin/env python3
"""Test CGI: the SHA-256 of the request body, read from stdin in 64 KiB
reads (up to CONTENT_LENGTH when set, else to the end of stdin). Answers
"HEXDIGEST COUNT\n"."""
import hashlib
import os
import sys

inp = sys.stdin.buffer
length = os.environ.get("CONTENT_LENGTH")
left = int(length) if length else None
h = hashlib.sha256()
count = 0
while left is None or left > 0:
    chunk = inp.read1(65536 if left is None else min(65536, left))
    if not chunk:
        break
    h.update(chunk)
    count += len(chunk)
    if left is not None:
        left -= len(chunk)
sys.stdout.buffer.write(b"Content-Type: text/plain\r\n\r\n%s %d\n" % (h.hexdigest().encode(), count))
