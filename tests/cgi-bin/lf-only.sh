#!/bin/sh
# Test CGI: head lines ended by a bare LF.
printf 'Content-Type: text/plain\nX-Lf: yes\n\nlf body\n'
