#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in run_wrk
# FastCGI load comparison: warren (`--cgi-assign .php=fcgi://SOCK`) against
# nginx (`fastcgi_pass`) and lighttpd (mod_fastcgi), on loopback only, all
# three in front of the SAME php-fpm pool (Debian's php8.2-fpm, started
# here with its own configuration in the temp dir: pm = static with
# BENCH_FPM_CHILDREN workers, a Unix socket, opcache as Debian's fpm
# php.ini has it), running two scripts:
#   hello.php  `Hello, world\n` as text/plain (13 bytes of body);
#   big.php    102400 bytes of body (`str_repeat('x', 102400)`).
# Measures requests/s (wrk -t1, keep-alive, for each connection count in
# BENCH_CONNS), median over rounds, and the CPU each front server spent per
# request: utime+stime of the server's own processes (nginx's master and
# worker, lighttpd, warren) from /proc/PID/stat before and after each wrk
# run, divided by the requests wrk reports. php-fpm's CPU is not counted.
# Runs alternate between servers, the order flipping every round.
#
# Pinning (2 cores): the front server AND php-fpm share CPU 0, wrk has
# CPU 1, as cgi.sh puts a server and its CGI children on one core. A
# request's whole server-side cost (front server + PHP) then comes out of
# one core, so a cheaper front server shows as more req/s, and wrk (far
# cheaper per request than PHP) is not the limit. BENCH_PIN_FPM=0 leaves
# php-fpm unpinned instead (it then also competes with wrk).
#
# Front-to-backend connections: nginx (plain `fastcgi_pass unix:...`) and
# lighttpd (mod_fastcgi) open a connection to php-fpm per request; warren
# keeps up to 8 idle ones per backend (`fcgi-keepalive`, FCGI_KEEP_CONN).
# BENCH_NGINX_KEEPCONN=N gives nginx an upstream with `keepalive N` and
# `fastcgi_keep_conn on`. Keep N below BENCH_FPM_CHILDREN: a php-fpm worker
# stays with a kept connection until the front server closes it, so with
# as many kept connections as workers, a request on any other connection
# waits (in front of 4 workers, nginx with `keepalive 4` or 8 saw p99
# latencies of 0.8-1.7 s and wrk timeouts; with `keepalive 2`, none). No server spools a 100 KiB
# answer to disk: nginx gets `fastcgi_buffers 16 16k`, lighttpd
# `server.stream-response-body = 1`; warren streams.
#
# Knobs (environment):
#   BENCH_SERVERS       servers to run, default "warren nginx lighttpd"
#   BENCH_ROUNDS        rounds of alternating runs, default 3
#   BENCH_SECS          seconds per wrk run, default 10
#   BENCH_CONNS         wrk connection counts, default "16 64" (warren's
#                       default fcgi-max-requests is 64 per backend)
#   BENCH_FPM_CHILDREN  php-fpm workers (pm = static), default 4
#   BENCH_PIN_FPM       1 (default): php-fpm on the server CPU; 0: unpinned
#   BENCH_NGINX_KEEPCONN  N > 0: nginx keeps N FastCGI connections; default 0
#   BENCH_WARREN_ARGS   more warren flags, e.g. "--fcgi-max-requests 4" 
#   BENCH_OUT           raw results file, default /tmp/warren-fcgi-bench.txt
#   WARREN_BIN          warren binary, default <repo>/target/release/warren
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1        keep the temp dir (configs, logs) for inspection
#   BENCH_NO_INSTALL=1  never run apt-get
#
# Runs as root (installs wrk, php8.2-fpm, nginx-light, lighttpd, curl,
# python3 with apt-get when missing, their system services kept stopped).
# All traffic goes to 127.0.0.1. Only the processes it started are
# stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
SERVERS=${BENCH_SERVERS:-warren nginx lighttpd}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-10}
CONNS_LIST=${BENCH_CONNS:-16 64}
CHILDREN=${BENCH_FPM_CHILDREN:-4}
PIN_FPM=${BENCH_PIN_FPM:-1}
NGINX_KEEPCONN=${BENCH_NGINX_KEEPCONN:-0}
OUT=${BENCH_OUT:-/tmp/warren-fcgi-bench.txt}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
PHP_FPM=/usr/sbin/php-fpm8.2
SCRIPTS="hello.php big.php"
BIG=102400

die() { echo "fcgi.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for s in $SERVERS; do
  case $s in warren|nginx|lighttpd) ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
[[ -n $SERVERS ]] || die "BENCH_SERVERS is empty"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ && $CHILDREN =~ ^[1-9][0-9]*$ ]] \
  || die "BENCH_ROUNDS, BENCH_SECS and BENCH_FPM_CHILDREN must be positive integers"
[[ $NGINX_KEEPCONN =~ ^[0-9]+$ ]] || die "BENCH_NGINX_KEEPCONN must be a number of connections"
for c in $CONNS_LIST; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNS must list positive integers: '$c'"; done
[[ -n $CONNS_LIST ]] || die "BENCH_CONNS is empty"

WARREN_EXTRA=()
if [[ " $SERVERS " == *" warren "* ]]; then
  [[ -x $WARREN_BIN ]] || die "warren binary not found or not executable: $WARREN_BIN
  build it first:   cargo build --release
  or point at one:  WARREN_BIN=/path/to/warren $0
  or run only the peers: BENCH_SERVERS=\"nginx lighttpd\" $0"
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  [[ $("$WARREN_BIN" --help 2>&1 || true) == *--cgi-assign* ]] || die "$WARREN_BIN --help has no --cgi-assign"
  WARREN_EXTRA+=(--keepalive-timeout 120)
  # shellcheck disable=SC2206  # word splitting wanted: extra flags
  [[ -n ${BENCH_WARREN_ARGS:-} ]] && WARREN_EXTRA+=($BENCH_WARREN_ARGS)
fi

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg taskset util-linux
need_pkg getconf libc-bin
need_pkg curl curl
need_pkg pgrep procps
need_pkg php-fpm8.2 php8.2-fpm
if [[ " $SERVERS " == *" nginx "* ]]; then need_nginx; fi
# Debian's lighttpd has mod_fastcgi built into the binary (no .so).
[[ " $SERVERS " == *" lighttpd "* ]] && need_pkg lighttpd lighttpd
PIN_S=(); PIN_C=(); PIN_F=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
  [[ $PIN_FPM == 1 ]] && PIN_F=(taskset -c "$SCPU")
else
  log "note: fewer than 2 CPUs; nothing is pinned"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, docroot, scripts, cleanup -----------------------------------
T=$(mktemp -d /tmp/warren-fcgi-bench.XXXXXX)
# nginx's worker runs as nobody: it must reach the socket.
chmod 755 "$T"
DOC=$T/docroot
SOCK=$T/fpm.sock
mkdir -p "$DOC" "$T/nginx-tmp"
declare -A PID PORT CPU_PIDS
WRKPID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $WRKPID ]] && kill "$WRKPID" 2>/dev/null && wait "$WRKPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$DOC/hello.php" <<'EOF'
<?php
header('Content-Type: text/plain');
echo "Hello, world\n";
EOF
cat > "$DOC/big.php" <<EOF
<?php
header('Content-Type: text/plain');
echo str_repeat('x', $BIG);
EOF
write_wrk_report "$T/report.lua"

read -r -a FREE < <(free_ports 3)
PORT[warren]=${FREE[0]}; PORT[nginx]=${FREE[1]}; PORT[lighttpd]=${FREE[2]}

# --- php-fpm: one pool for all ----------------------------------------------
cat > "$T/php-fpm.conf" <<EOF
[global]
pid = $T/fpm.pid
error_log = $T/fpm.log
log_level = notice
daemonize = no

[bench]
listen = $SOCK
listen.mode = 0666
pm = static
pm.max_children = $CHILDREN
catch_workers_output = yes
decorate_workers_output = no
EOF
fpm_args=(-F -y "$T/php-fpm.conf" -p "$T")
# As root php-fpm needs -R (and then runs its workers as root: the pool
# sets no user).
[[ $(id -u) == 0 ]] && fpm_args+=(-R)
"${PIN_F[@]}" "$PHP_FPM" "${fpm_args[@]}" > "$T/fpm.out" 2>&1 &
PID[fpm]=$!
# Ready when the socket accepts and all workers are forked (up to 10 s).
ready=0
for _ in $(seq 100); do
  kill -0 "${PID[fpm]}" 2>/dev/null || break
  if python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])' "$SOCK" 2>/dev/null \
    && [[ $(pgrep -c -P "${PID[fpm]}" || true) == "$CHILDREN" ]]; then
    ready=1; break
  fi
  sleep 0.1
done
if [[ $ready != 1 ]]; then
  cat "$T/fpm.out" "$T/fpm.log" 2>/dev/null | tail -20 >&2 || true
  die "php-fpm did not listen on $SOCK with $CHILDREN workers within 10 s"
fi
log "php-fpm: pid ${PID[fpm]}, $CHILDREN workers, $SOCK"

# --- front servers ----------------------------------------------------------
write_nginx_conf() {
  local pass="unix:$SOCK" upstream="" keep=""
  if [[ $NGINX_KEEPCONN != 0 ]]; then
    pass=fpm
    upstream="upstream fpm { server unix:$SOCK; keepalive $NGINX_KEEPCONN; }"
    keep="fastcgi_keep_conn on;"
  fi
  cat > "$T/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
$(nginx_temp_paths "$T/nginx-tmp")
  default_type application/octet-stream;
  $upstream
  server {
    listen 127.0.0.1:${PORT[nginx]};
    root $DOC;
    location ~ \.php\$ {
      fastcgi_pass $pass;
      $keep
      fastcgi_buffer_size 16k;
      fastcgi_buffers 16 16k;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
    }
  }
}
EOF
}

write_lighttpd_conf() {
  cat > "$T/lighttpd.conf" <<EOF
server.modules = ( "mod_fastcgi" )
server.document-root = "$DOC"
$(lighttpd_common)
server.stream-response-body = 1
index-file.names = ( "index.html" )
fastcgi.server = ( ".php" => (( "socket" => "$SOCK", "check-local" => "enable" )) )
EOF
}

start_server() {
  local s=$1
  case $s in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --cgi-assign ".php=fcgi://$SOCK" --port "${PORT[warren]}" \
        --bind 127.0.0.1 "${WARREN_EXTRA[@]}" --log-level warn > "$T/warren.log" 2>&1 &
      ;;
    nginx)
      write_nginx_conf
      "${PIN_S[@]}" nginx -p "$T/" -e "$T/nginx-error.log" -c "$T/nginx.conf" > "$T/nginx.log" 2>&1 &
      ;;
    lighttpd)
      write_lighttpd_conf
      "${PIN_S[@]}" lighttpd -D -f "$T/lighttpd.conf" > "$T/lighttpd.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  # Ready when both scripts answer 200 text/plain with the right body.
  local ok=0 got want_big
  want_big=$(printf "%${BIG}s" '' | tr ' ' x)
  for _ in $(seq 100); do
    kill -0 "${PID[$s]}" 2>/dev/null || break
    got=$(curl -s --max-time 5 -w '|%{http_code}|%{content_type}' "http://127.0.0.1:${PORT[$s]}/hello.php" || true)
    if [[ $got == $'Hello, world\n|200|text/plain'* ]]; then
      got=$(curl -s --max-time 5 -w '|%{http_code}' "http://127.0.0.1:${PORT[$s]}/big.php" || true)
      [[ $got == "$want_big|200" ]] && { ok=1; break; }
      got="big.php: ${#got} bytes, ending ${got: -12}"
    fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $s output:" >&2; cat "$T/$s.log" "$T/$s-error.log" 2>/dev/null | tail -20 >&2 || true
    die "$s did not answer /hello.php and /big.php right on 127.0.0.1:${PORT[$s]} (last: ${got:-nothing})"
  fi
  # The processes whose CPU counts: nginx's master and its worker(s).
  CPU_PIDS[$s]="${PID[$s]}"
  if [[ $s == nginx ]]; then
    local w
    w=$(pgrep -P "${PID[$s]}" | tr '\n' ' ')
    [[ -n $w ]] || die "nginx (pid ${PID[$s]}) has no worker"
    CPU_PIDS[$s]="${PID[$s]} $w"
  fi
  log "$s: pids ${CPU_PIDS[$s]} port ${PORT[$s]}"
}

{
  echo "# warren FastCGI load comparison $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; php-fpm pinned: ${PIN_F[*]:-none}; wrk pinned: ${PIN_C[*]:-none}"
  echo "# rounds=$ROUNDS secs=$SECS conns=$CONNS_LIST fpm_children=$CHILDREN nginx_keepconn=$NGINX_KEEPCONN"
  echo "# php-fpm: $("$PHP_FPM" -v 2>&1 | head -1), pm = static, unix socket"
  for s in $SERVERS; do
    case $s in
      warren) echo "# warren: $WARREN_BIN ${WARREN_EXTRA[*]:-} ($(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo '?'))" ;;
      nginx) echo "# nginx: $(nginx -v 2>&1), master + 1 worker, fastcgi_pass" ;;
      lighttpd) echo "# lighttpd: $(lighttpd -v 2>&1 | head -1), mod_fastcgi" ;;
    esac
  done
  echo "# wrk: $(wrk -v 2>&1 | head -1)"
} > "$OUT"

# One front server at a time: each is started for its run and stopped
# after it, so that connections one keeps to the pool (holding workers)
# cannot starve the next.
read -r -a order <<< "$SERVERS"
for r in $(seq "$ROUNDS"); do
  for p in $SCRIPTS; do
    for CONNS in $CONNS_LIST; do
      for s in "${order[@]}"; do
        start_server "$s"
        run_wrk "$s" "/$p"
        stop_server "$s"
        read -r rps cpu_us < <(awk -v n="$W_requests" -v d="$W_duration_us" -v c="$W_cpu_s" \
          'BEGIN {printf "%.1f %.1f\n", n / (d / 1e6), (n > 0 ? c * 1e6 / n : 0)}')
        echo "server=$s round=$r test=$p conns=$CONNS rps=$rps cpu_us_per_req=$cpu_us cpu_s=$W_cpu_s requests=$W_requests bytes=$W_bytes duration_us=$W_duration_us p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
        log "round $r $s $p c=$CONNS: $rps req/s, $cpu_us us CPU/req (p99 ${W_p99_us} us, errors $W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout)"
      done
    done
  done
  # Flip the order each round.
  rev=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done; order=("${rev[@]}")
done

# --- summary ----------------------------------------------------------------
python3 - "$OUT" "$SCRIPTS" "$CONNS_LIST" $SERVERS <<'EOF' | tee -a "$OUT"
import statistics, sys
path, scripts, conns, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
rows = [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in open(path) if l.startswith("server=")]
def med(s, p, c, key):
    v = [float(r[key]) for r in rows if r["server"] == s and r["test"] == p and r["conns"] == c]
    return statistics.median(v) if v else None
peers = [s for s in servers if s != "warren"]
bad = sorted({"%s %s c=%s" % (r["server"], r["test"], r["conns"]) for r in rows
              if any(x != "0" for x in r["errors"].split("/"))})
print()
head = "%-10s %5s " % ("script", "conns") + " ".join("%10s" % (s + " r/s") for s in servers)
if "warren" in servers and peers:
    head += " %12s" % "w/best-peer"
head += " " + " ".join("%13s" % (s + " us/r") for s in servers)
print(head)
for p in scripts:
    for c in conns:
        line = "%-10s %5s " % (p, c)
        line += " ".join("%10s" % ("-" if med(s, p, c, "rps") is None else "%.0f" % med(s, p, c, "rps")) for s in servers)
        if "warren" in servers and peers:
            w = med("warren", p, c, "rps")
            best = max((med(s, p, c, "rps") or 0) for s in peers)
            line += " %12s" % ("-" if not w or not best else "x%.2f" % (w / best))
        line += " " + " ".join("%13s" % ("-" if med(s, p, c, "cpu_us_per_req") is None
                                          else "%.1f" % med(s, p, c, "cpu_us_per_req")) for s in servers)
        print(line)
print("(median over rounds; r/s = requests/s, higher is better; us/r = the front server's own CPU")
print(" microseconds per request, php-fpm's not counted, lower is better)")
if bad:
    print("WARNING: errors (connect/read/write/status/timeout) in: " + ", ".join(bad))
EOF
echo "raw results: $OUT" >&2
