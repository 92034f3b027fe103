#!/bin/sh
head -c 200000000 /dev/zero | tr '\0' 'e' | fold -w 100 >&2 &
printf 'Content-Type: text/plain\r\n\r\nok\n'
wait
