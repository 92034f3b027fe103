#!/bin/sh
printf 'Content-Type: text/plain\r\n'
while :; do printf 'X-a: b\r\n'; done
