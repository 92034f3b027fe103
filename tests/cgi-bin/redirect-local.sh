#!/bin/sh
# Test CGI: a local redirect (a path, no Status): the server serves /index.html instead.
printf 'Location: /index.html\r\n\r\n'
