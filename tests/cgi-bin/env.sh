#!/bin/sh
# Test CGI: prints its whole environment, one NAME=value a line, sorted.
printf 'Content-Type: text/plain\r\n\r\n'
env | sort
