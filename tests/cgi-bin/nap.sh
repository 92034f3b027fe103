#!/bin/sh
# Test CGI: sleeps QUERY_STRING seconds (default 0.2), then answers.
t=${QUERY_STRING:-0.2}
case $t in *[!0-9.]*) t=0.2 ;; esac
sleep "$t"
printf 'Content-Type: text/plain\r\n\r\nnapped %s\n' "$t"
