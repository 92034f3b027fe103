#!/bin/sh
# Test CGI: answers with an interim status (QUERY_STRING, default 101),
# which a CGI may not: the client must get 502.
printf 'Status: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nnot a websocket\n' "${QUERY_STRING:-101}"
