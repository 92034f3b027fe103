#!/bin/sh
# Test CGI: floods stderr and never answers (the loop must go on, and the
# timeout must still end it). No exec: the shell keeps stdout open.
yes "a line on stderr that goes on and on" >&2
