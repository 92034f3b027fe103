#!/bin/sh
# Test CGI: a head, then one line every 0.4 s for 2.4 s: slow, but never
# silent for long, so a 1 s cgi-timeout (which counts silence) must not fire.
printf 'Content-Type: text/plain\r\n\r\n'
for i in 1 2 3 4 5 6; do
    sleep 0.4
    echo "drip $i"
done
