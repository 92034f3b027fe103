#!/bin/sh
# Test CGI: never answers. Starts a background `sleep 1000` so that the
# whole process group has to be ended, and writes its pid (= its process
# group id) to $CGI_TEST_PIDFILE when the mount sets it.
[ -n "$CGI_TEST_PIDFILE" ] && echo $$ > "$CGI_TEST_PIDFILE"
sleep 1000 &
sleep 1000
