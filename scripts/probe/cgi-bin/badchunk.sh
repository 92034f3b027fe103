#!/bin/sh
printf 'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n0\r\n\r\n'
