#!/bin/sh
# authfifo.sh BIN: a basic-auth file that is (or becomes) a FIFO blocks the
# whole event loop in open(2) (std::fs::File::open, no O_NONBLOCK, no
# file-type check) until some process opens the FIFO for writing.
# Starts BIN on a free port with a --config in a temp dir; bounded; kills only its own pid.
BIN=${1:-target/release/warren}; T=$(mktemp -d); PORT=${PORT:-18131}
mkdir -p $T/site $T/conf.d; echo hi > $T/site/index.html; echo demo:demo > $T/pw
echo '{ "global": {} }' > $T/conf
cat > $T/conf.d/site <<EOC
{ "vhosts": [ { "name": "localhost", "port": "$PORT", "interface": "127.0.0.1", "mounts": [
  { "mountpoint": "/", "origin": "file://$T/site" },
  { "mountpoint": "/private", "origin": "file://$T/site", "basic-auth": "$T/pw" } ] } ] }
EOC
timeout 60 $BIN --config $T > $T/log 2>&1 & W=$!
sleep 0.5
curl -s -m 3 -o /dev/null -w "before: plain %{http_code}, " http://127.0.0.1:$PORT/
curl -s -m 3 -o /dev/null -w "auth %{http_code}\n" -u demo:demo http://127.0.0.1:$PORT/private/index.html
rm $T/pw; mkfifo $T/pw; sleep 1.1
curl -s -m 3 -o /dev/null -w "after FIFO: auth %{http_code}" -u demo:demo http://127.0.0.1:$PORT/private/index.html || echo " (timed out)"
curl -s -m 3 -o /dev/null -w "after FIFO: plain GET %{http_code}" http://127.0.0.1:$PORT/ || echo " (timed out: loop blocked)"
echo "server wchan: $(cat /proc/$(pgrep -P $W || echo $W)/wchan 2>/dev/null)"
echo x:y > $T/pw &   # a writer releases it (and its bytes become the credentials)
sleep 0.5; curl -s -m 3 -o /dev/null -w "after a writer came: plain GET %{http_code}\n" http://127.0.0.1:$PORT/
kill $W 2>/dev/null; wait $W 2>/dev/null; rm -rf $T
