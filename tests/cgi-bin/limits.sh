#!/bin/sh
# Test CGI: its open-files and CPU-seconds limits, one a line.
printf 'Content-Type: text/plain\r\n\r\n'
ulimit -n
ulimit -t
