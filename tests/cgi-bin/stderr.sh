#!/bin/sh
# Test CGI: two lines on stderr (for the server's log), then a response.
echo "first complaint" >&2
echo "second complaint" >&2
printf 'Content-Type: text/plain\r\n\r\nlogged\n'
