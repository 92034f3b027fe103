#!/bin/sh
n=$(cat | wc -c)
printf 'Content-Type: text/plain\r\n\r\nread %s\n' "$n"
