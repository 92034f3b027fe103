#!/bin/sh
# Test CGI: a head and a few bytes, then stdout closed; the process lives
# on for 2 s (stderr still open) before it exits.
printf 'Content-Type: text/plain\r\n\r\nearly bytes\n'
exec >&-
sleep 2
exit 0
