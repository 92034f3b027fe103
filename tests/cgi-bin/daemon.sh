#!/bin/sh
# Test CGI: starts a background child detached from its pipes (a daemon
# that stays in the process group), answers and exits. Writes its pid
# (= its process group id) to $CGI_TEST_PIDFILE, or to the path given as
# QUERY_STRING.
pidfile=${CGI_TEST_PIDFILE:-$QUERY_STRING}
( sleep 120 ) </dev/null >/dev/null 2>&1 &
[ -n "$pidfile" ] && echo $$ > "$pidfile"
printf 'Content-Type: text/plain\r\n\r\ndaemon started\n'
exit 0
