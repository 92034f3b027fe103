#!/bin/sh
# Test CGI: a client redirect (an absolute URL): 302 to it.
printf 'Location: http://example.com/x\r\n\r\n'
