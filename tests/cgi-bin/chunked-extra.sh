#!/bin/sh
# Test CGI: frames its own body as chunked, then writes more after the
# last chunk: a whole second response, which must never reach the client.
printf 'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled'
