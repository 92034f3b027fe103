#!/bin/sh
# ptswap.sh BIN: the per-vhost PATH_TRANSLATED cache (1 s) hands a CGI a path
# that, after a directory below the root was swapped for a link out of it,
# resolves outside the root; the file mount (and an uncached translation)
# refuses the same path with 403. Bounded; kills only its own pid.
BIN=${1:-target/release/warren}; T=$(mktemp -d); PORT=${PORT:-18133}
mkdir -p $T/site/sub $T/outside $T/cgi-bin
echo "inside" > $T/site/sub/x.txt; echo "OUTSIDE-SECRET" > $T/outside/x.txt
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "PATH_TRANSLATED=$PATH_TRANSLATED"\ncat "$PATH_TRANSLATED"\n' > $T/cgi-bin/pt.sh
chmod +x $T/cgi-bin/pt.sh
timeout 60 $BIN --root $T/site --cgi /cgi-bin=$T/cgi-bin --port $PORT > $T/log 2>&1 & W=$!
sleep 0.5; U=http://127.0.0.1:$PORT
echo "1 $(curl -s $U/cgi-bin/pt.sh/sub/x.txt | tr '\n' ' ')"
mv $T/site/sub $T/site/sub.real; ln -s $T/outside $T/site/sub
echo "2 after swap, same PATH_INFO: $(curl -s -w '[%{http_code}]' $U/cgi-bin/pt.sh/sub/x.txt | tr '\n' ' ' | tail -c 90)"
echo "3 file mount, same path: $(curl -s -o /dev/null -w '%{http_code}' $U/sub/x.txt)"
echo "4 after swap, new PATH_INFO: $(curl -s -o /dev/null -w '%{http_code}' $U/cgi-bin/pt.sh/sub/./x.txt?) $(curl -s -o /dev/null -w '%{http_code}' $U/cgi-bin/pt.sh/sub/x.txt/)"
sleep 1.1
echo "5 1.1 s later: $(curl -s -o /dev/null -w '%{http_code}' $U/cgi-bin/pt.sh/sub/x.txt)"
kill $W 2>/dev/null; wait $W 2>/dev/null; rm -rf $T
