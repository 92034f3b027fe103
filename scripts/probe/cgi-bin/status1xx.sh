#!/bin/sh
printf 'Status: 101 Switching\r\nUpgrade: websocket\r\n\r\nxx'
