#!/bin/sh
# Test CGI: answers, closes its output (the response ends), writes its pid
# to DIR/pid, then lives on until a line comes on the FIFO DIR/go, and
# exits. DIR is QUERY_STRING.
d=$QUERY_STRING
printf 'Content-Type: text/plain\r\n\r\nanswered\n'
exec >&- 2>&-
echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
read -r _ < "$d/go"
exit 0
