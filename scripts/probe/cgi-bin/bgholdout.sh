#!/bin/sh
# background child keeps stdout open
( exec sleep 1237 ) &
printf 'Content-Type: text/plain\r\n\r\nok\n'
