#!/bin/sh
printf 'Content-Type: text/plain\r\n'
i=0; while [ $i -lt 2000 ]; do printf 'X-Pad-%d: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n' $i; i=$((i+1)); done
printf '\r\nbody'
