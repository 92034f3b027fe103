#!/bin/sh
# Test CGI: sends part of its body, then dies of SIGKILL. QUERY_STRING
# picks the framing: "length" announces 1000 bytes, "chunked" chunks its
# own body, anything else leaves the framing to the server.
case "$QUERY_STRING" in
length) printf 'Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\npartial\n' ;;
chunked) printf 'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n8\r\npartial\n\r\n' ;;
*) printf 'Content-Type: text/plain\r\n\r\npartial\n' ;;
esac
kill -KILL $$
