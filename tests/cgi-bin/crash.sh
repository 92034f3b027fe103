#!/bin/sh
# Test CGI: dies of SIGSEGV before writing anything.
kill -SEGV $$
