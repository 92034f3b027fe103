#!/bin/bash
# Try config values that would inject headers; each must be refused (exit 2, file:line:col key) or be harmless.
W=${W:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/warren}
D=$(mktemp -d); mkdir -p $D/conf.d
try() { # $1 label, $2 global json fragment or vhost headers fragment, $3 kind
  if [ "$3" = g ]; then printf '{ "global": { %s } }\n' "$2" > $D/conf; printf '{"vhosts":[{"name":"localhost","port":"18099","interface":"127.0.0.1","mounts":[{"mountpoint":"/","origin":"file:///tmp"}]}]}\n' > $D/conf.d/v
  else printf '{ "global": { } }\n' > $D/conf; printf '{"vhosts":[{"name":"localhost","port":"18099","interface":"127.0.0.1",\n "headers": [ %s ],\n "mounts":[{"mountpoint":"/","origin":"file:///tmp"}]}]}\n' "$2" > $D/conf.d/v; fi
  timeout 2 $W --config $D > $D/out 2>&1 & p=$!; sleep 0.4
  if kill -0 $p 2>/dev/null; then r=$(curl -s -m 2 -D - -o /dev/null http://127.0.0.1:18099/ | od -c | head -30 | tr -s ' ' | tr '\n' ' '); kill $p; wait $p 2>/dev/null; echo "STARTED  $1 :: $(echo "$r" | cut -c1-400)"; else wait $p; echo "rc=$? $1 :: $(head -c 300 $D/out)"; fi
}
try "server CRLF json" '"server-string": "a\r\nX-Inj: 1"' g
try "server LF json" '"server-string": "a\nX-Inj: 1"' g
try "server CR json" '"server-string": "a\rX-Inj: 1"' g
try "server NUL" '"server-string": "a\u0000b"' g
try "server tab" '"server-string": "a\tb"' g
try "server DEL" '"server-string": "a\u007fb"' g
try "server NEL" '"server-string": "a\u0085X-Inj: 1"' g
try "server LS" '"server-string": "a\u2028X-Inj: 1"' g
try "server PS" '"server-string": "a\u2029X-Inj: 1"' g
try "server raw CR" $'"server-string": "a\rX-Inj: 1"' g
try "server raw LF" $'"server-string": "a\nX-Inj: 1"' g
try "server raw tab" $'"server-string": "a\tb"' g
try "server lone surrogate" '"server-string": "a\ud800b"' g
try "server empty" '"server-string": ""' g
try "server 100k" "\"server-string\": \"$(head -c 100000 /dev/zero | tr '\0' a)\"" g
try "server leading space" '"server-string": " a "' g
try "hdr val CRLF" '{ "X-A": "a\r\nX-Inj: 1" }' h
try "hdr val NEL" '{ "X-A": "a\u0085b" }' h
try "hdr val LS" '{ "X-A": "a\u2028b" }' h
try "hdr val NUL" '{ "X-A": "a\u0000b" }' h
try "hdr val FF" '{ "X-A": "a\fb" }' h
try "hdr name space" '{ "X A": "b" }' h
try "hdr name colon" '{ "X-A: y\r\nZ": "b" }' h
try "hdr name colon2" '{ "X-A:": "b" }' h
try "hdr name empty" '{ "": "b" }' h
try "hdr name unicode" '{ "X-\u00e9": "b" }' h
try "hdr name CRLF" '{ "X\r\nInj": "b" }' h
try "hdr name tab" '{ "X\tA": "b" }' h
try "hdr override CL" '{ "Content-Length": "0" }' h
try "hdr override TE" '{ "Transfer-Encoding": "chunked" }' h
try "hdr Connection" '{ "Connection": "close" }' h
try "hdr val obs-text" '{ "X-A": "\u00ff" }' h
try "hdr val 100k" "{ \"X-A\": \"$(head -c 100000 /dev/zero | tr '\0' a)\" }" h
try "hdr nested obj" '{ "X-A": { "b": "c" } }' h
try "hdr many" "$(for i in $(seq 300); do printf '{ "X-%d": "v" },' $i; done) { \"X-Last\": \"v\" }" h
rm -rf $D
