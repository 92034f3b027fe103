#!/bin/sh
# Test CGI: answers, starts a background child that keeps stdout open,
# and exits. Writes its pid (= its process group id) to $CGI_TEST_PIDFILE.
[ -n "$CGI_TEST_PIDFILE" ] && echo $$ > "$CGI_TEST_PIDFILE"
printf 'Content-Type: text/plain\r\n\r\nanswered\n'
( sleep 120 ) &
exit 0
