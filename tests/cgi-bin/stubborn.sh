#!/bin/sh
# Test CGI: like sleep.sh, but it and its children ignore SIGTERM, so only
# SIGKILL ends them.
trap '' TERM
[ -n "$CGI_TEST_PIDFILE" ] && echo $$ > "$CGI_TEST_PIDFILE"
sleep 1000 &
sleep 1000
