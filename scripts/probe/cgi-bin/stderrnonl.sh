#!/bin/sh
# 100 MB on stderr without a single newline
head -c 100000000 /dev/zero | tr '\0' 'e' >&2
printf 'Content-Type: text/plain\r\n\r\nok\n'
