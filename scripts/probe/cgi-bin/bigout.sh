#!/bin/sh
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec head -c 52428800 /dev/zero
