#!/bin/sh
# Test CGI: a Status header (never passed on) and a body.
printf "Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nX-Cgi: status\r\n\r\nshort and stout\n"
