#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\npartial'
kill -9 $$
