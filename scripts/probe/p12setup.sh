#!/bin/sh
# p12setup.sh [DIR]: the site the issue-12 probes ran against (default /tmp/p12):
# files (big.bin 50 MB, mid.bin 3 MB, sub/x.txt), a cgi-bin with this
# directory's hostile programs plus pt.sh (prints PATH_TRANSLATED and cats it)
# and sleep.sh, basic-auth at /private (demo:demo), the echo/dumb-increment/
# mirror/status protocols, cgi-max-processes 4, cgi-timeout 10.
# Then: DIR/start.sh BIN PORT TAG starts one server (bounded to 40 min) and
# writes its pid to DIR/wpid-TAG; DIR/stat.sh TAG prints RSS, fds, children.
P=${1:-/tmp/p12}; H=$(cd "$(dirname "$0")" && pwd)
mkdir -p $P/site/sub $P/cgi-bin $P/conf/conf.d $P/outside $P/errs && cd $P || exit 1
echo hello > site/index.html; echo "in site x" > site/sub/x.txt; echo OUTSIDE > outside/x.txt
[ -f site/big.bin ] || head -c 50000000 /dev/urandom > site/big.bin
[ -f site/mid.bin ] || head -c 3000000 /dev/urandom > site/mid.bin
echo "<h1>custom 404</h1>" > errs/404.html; echo demo:demo > pw
cp $H/cgi-bin/* cgi-bin/
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "PT=$PATH_TRANSLATED"\necho "PI=$PATH_INFO"\n[ -n "$PATH_TRANSLATED" ] && cat "$PATH_TRANSLATED" 2>&1 | head -c 200\n' > cgi-bin/pt.sh
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nsleep 20\necho done\n' > cgi-bin/sleep.sh
chmod +x cgi-bin/*
echo '{ "global": { "server-string": "warren", "timeout-secs": "10" } }' > conf/conf
cat > conf/conf.d/site <<EOC
{ "vhosts": [ {
  "name": "localhost", "port": "PORT", "interface": "127.0.0.1",
  "error-document-404": "/errs/404.html",
  "ws-protocols": [ { "echo": { "default": "1" } }, { "dumb-increment-protocol": {} }, { "lws-mirror-protocol": {} }, { "lws-status": {} } ],
  "mounts": [
    { "mountpoint": "/", "origin": "file://$P/site", "default": "index.html" },
    { "mountpoint": "/errs", "origin": "file://$P/errs" },
    { "mountpoint": "/private", "origin": "file://$P/site", "basic-auth": "$P/pw" },
    { "mountpoint": "/cgi-bin", "origin": "cgi://$P/cgi-bin", "cgi-timeout": "10", "cgi-max-processes": "4" },
    { "mountpoint": "/formtest", "origin": "callback://protocol-post-demo" }
  ] } ] }
EOC
cat > start.sh <<EOS
#!/bin/sh
BIN=\$1; PORT=\$2; TAG=\$3; shift 3
D=$P/conf-\$TAG; rm -rf \$D; mkdir -p \$D/conf.d
cp $P/conf/conf \$D/conf; sed "s/PORT/\$PORT/" $P/conf/conf.d/site > \$D/conf.d/site
cd $P; setsid timeout 2400 \$BIN --config \$D "\$@" > $P/log-\$TAG 2>&1 &
echo \$! > $P/pid-\$TAG; sleep 0.5; pgrep -P \$(cat $P/pid-\$TAG) > $P/wpid-\$TAG; cat $P/wpid-\$TAG
EOS
cat > stat.sh <<EOS
#!/bin/sh
W=\$(cat $P/wpid-\$1)
echo "[\$1 pid \$W] rss=\$(grep VmRSS /proc/\$W/status | awk '{print \$2}')kB fds=\$(ls /proc/\$W/fd | wc -l) children=\$(ps --ppid \$W -o pid=,stat=,cmd= | tr '\n' ';')"
EOS
chmod +x start.sh stat.sh; echo "set up in $P"
