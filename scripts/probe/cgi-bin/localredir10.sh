#!/bin/sh
head -c 10 >/dev/null
printf "Location: /index.html\r\n\r\n"
