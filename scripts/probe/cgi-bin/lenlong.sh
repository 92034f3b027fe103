#!/bin/sh
printf 'Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabcdefHTTP/1.1 200 OK\r\n\r\n'
