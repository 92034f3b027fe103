#!/bin/sh
# Test CGI: N zero bytes, N from QUERY_STRING "bytes=N" (default 1024).
# With "&nolength" there is no Content-Length (the server chunks or closes).
n=1024
nolength=
for kv in $(echo "$QUERY_STRING" | tr '&' ' '); do
    case $kv in
        bytes=*) n=${kv#bytes=} ;;
        nolength) nolength=1 ;;
    esac
done
case $n in '' | *[!0-9]*) n=1024 ;; esac
if [ -n "$nolength" ]; then
    printf 'Content-Type: application/octet-stream\r\n\r\n'
else
    printf 'Content-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n' "$n"
fi
exec head -c "$n" /dev/zero
