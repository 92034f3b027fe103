#!/bin/sh
# Test CGI: reads its input to the end before answering (a GET must give
# it EOF at once).
body=$(cat)
printf 'Content-Type: text/plain\r\n\r\nread %s bytes\n' "${#body}"
