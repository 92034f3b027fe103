#!/bin/sh
# Test CGI: a head line without a colon, then a body.
printf 'this is not a header\r\nContent-Type: text/plain\r\n\r\nSCRIPT-BODY\n'
