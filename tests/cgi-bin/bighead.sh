#!/bin/sh
# Test CGI: a head longer than 8 KiB (one 9000-byte header).
printf 'Content-Type: text/plain\r\nX-Big: '
head -c 9000 /dev/zero | tr '\0' 'a'
printf '\r\n\r\nSCRIPT-BODY\n'
