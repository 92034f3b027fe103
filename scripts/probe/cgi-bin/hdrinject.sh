#!/bin/sh
printf 'Content-Type: text/plain\r\nX-A: a\rInjected: yes\r\nX-B: b\0c\r\nLocation: http://x/\r\n\r\nbody'
