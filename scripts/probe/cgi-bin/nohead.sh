#!/bin/sh
printf 'Content-Type: text/plain\r\n'
exec sleep 100
