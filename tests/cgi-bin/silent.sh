#!/bin/sh
# Test CGI: exits successfully without writing anything.
exit 0
