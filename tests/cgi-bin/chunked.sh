#!/bin/sh
# Test CGI: frames its own body as chunked (as git-http-backend does).
printf 'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
