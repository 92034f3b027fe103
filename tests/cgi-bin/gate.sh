#!/bin/sh
# Test CGI: appends its name (QUERY_STRING: letters and digits) to
# $CGI_TEST_DIR/order; if the FIFO $CGI_TEST_DIR/NAME.fifo exists, waits
# for a line on it (the test says when); then answers with its name.
n=$QUERY_STRING
case $n in '' | *[!A-Za-z0-9]*) n=x ;; esac
echo "$n" >> "$CGI_TEST_DIR/order"
if [ -p "$CGI_TEST_DIR/$n.fifo" ]; then
  read -r _ < "$CGI_TEST_DIR/$n.fifo"
fi
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$n"
