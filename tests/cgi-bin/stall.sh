#!/bin/sh
# Test CGI: a head and a few bytes of body (no Content-Length), then
# nothing more, ever. Writes its pid to $CGI_TEST_PIDFILE when set.
[ -n "$CGI_TEST_PIDFILE" ] && echo $$ > "$CGI_TEST_PIDFILE"
printf 'Content-Type: text/plain\r\n\r\npartial\n'
sleep 1000 &
sleep 1000
