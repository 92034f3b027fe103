#!/bin/sh
printf 'Status: 100 Continue\r\n\r\nStatus: 200 OK\r\nContent-Type: text/plain\r\n\r\nbody'
