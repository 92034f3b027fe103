#!/bin/sh
# daemonised grandchild in its own session: escapes the process group
setsid sh -c 'exec sleep 1234' </dev/null >/dev/null 2>&1 &
( exec sleep 1235 ) </dev/null >/dev/null 2>&1 &
nohup sleep 1236 >/dev/null 2>&1 &
printf 'Content-Type: text/plain\r\n\r\nok\n'
