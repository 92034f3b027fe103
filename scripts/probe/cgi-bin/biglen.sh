#!/bin/sh
printf 'Content-Type: text/plain\r\nContent-Length: 18446744073709551616\r\n\r\nabc'
