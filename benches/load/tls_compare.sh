#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in lib.sh run_wrk
# TLS load comparison: warren against Debian's nginx, on loopback only.
#
# One ECDSA P-256 key and self-signed certificate (openssl) serve both.
# Measures, per server, serving the same docroot over HTTPS on 127.0.0.1:
#   - ka:    requests/s for a 1 KiB file, keep-alive (wrk -t1 -c50);
#   - close: connections/s with a new connection per request (wrk -H
#            'Connection: close'); wrk's OpenSSL resumes the session on every
#            reconnect, so these are resumed (PSK) handshakes: checked and
#            recorded before measuring;
#   - full:  full handshakes/s: BENCH_STIME_PROCS parallel
#            `openssl s_time -new -www /1k.bin` (a new session each time:
#            checked too), and the server's CPU µs per handshake;
#   - 10m:   server CPU seconds per GiB of a 10 MiB file (wrk -t1 -c50),
#            utime+stime from /proc/PID/stat, client CPU excluded.
# Medians over rounds; the server order flips every round.  Servers are pinned
# to one CPU, the clients to the other.  Stops by itself.
#
# Knobs (environment):
#   BENCH_SERVERS  servers to run, default "warren nginx"
#   BENCH_ROUNDS   rounds of alternating runs, default 3
#   BENCH_SECS     seconds per run, default 5
#   BENCH_CONNS    wrk connections, default 50
#   BENCH_STIME_PROCS  parallel s_time clients for full handshakes, default 4
#   BENCH_OUT      raw results file, default /tmp/warren-tls-bench.txt
#   WARREN_BIN     warren binary, default <repo>/target/release/warren
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1   keep the temp dir (configs, logs, key) for inspection
#   BENCH_NO_INSTALL=1  never run apt-get
#
# Runs as root when a tool is missing (installs it with apt-get).  All traffic
# goes to 127.0.0.1.  Only the processes it started are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
SERVERS=${BENCH_SERVERS:-warren nginx}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-5}
CONNS=${BENCH_CONNS:-50}
STIME_PROCS=${BENCH_STIME_PROCS:-4}
OUT=${BENCH_OUT:-/tmp/warren-tls-bench.txt}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}

die() { echo "tls_compare.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for s in $SERVERS; do
  case $s in warren|nginx) ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ && $STIME_PROCS =~ ^[1-9][0-9]*$ ]] \
  || die "BENCH_ROUNDS, BENCH_SECS and BENCH_STIME_PROCS must be positive integers"

if [[ " $SERVERS " == *" warren "* ]]; then
  [[ -x $WARREN_BIN ]] || die "warren binary not found or not executable: $WARREN_BIN (cargo build --release)"
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  [[ $("$WARREN_BIN" --help 2>&1 || true) == *--tls-cert* ]] || die "$WARREN_BIN has no --tls-cert (built without TLS?)"
fi

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# run_wrk (lib.sh) speaks HTTPS here.
WRK_SCHEME=https
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg openssl openssl
need_pkg curl curl
need_pkg taskset util-linux
need_pkg getconf libc-bin
if [[ " $SERVERS " == *" nginx "* ]]; then need_nginx; fi

PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
else
  log "note: fewer than 2 CPUs; servers and clients are not pinned"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, docroot, key, cleanup -----------------------------------------
T=$(mktemp -d /tmp/warren-tls-bench.XXXXXX)
DOC=$T/docroot
mkdir -p "$DOC" "$T/nginx-tmp"
declare -A PID PORT
WRKPID=""
STPID=""
cleanup() {
  local rc=$?
  set +e
  # (the clients stop by themselves: wrk after -d, s_time after -time,
  # each under timeout)
  [[ -n $WRKPID ]] && kill "$WRKPID" 2>/dev/null && wait "$WRKPID" 2>/dev/null
  [[ -n $STPID ]] && kill "$STPID" 2>/dev/null && wait "$STPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 1024 /dev/urandom > "$DOC/1k.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$DOC/10m.bin"
write_wrk_report "$T/report.lua"

# One ECDSA P-256 key, one self-signed certificate for localhost/127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 7 \
  -keyout "$T/key.pem" -out "$T/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null \
  || die "openssl could not make the key and certificate"

# --- ports: one per server, and a logging nginx port for the client checks ---
read -r -a FREE < <(free_ports 3)
PORT[warren]=${FREE[0]}; PORT[nginx]=${FREE[1]}; CHECK_PORT=${FREE[2]}

write_nginx_conf() {
  cat > "$T/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  # Over TLS nginx sends files by read + SSL_write (no kTLS here).
  sendfile on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  open_file_cache max=1024 inactive=60s;
$(nginx_temp_paths "$T/nginx-tmp")
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  ssl_certificate $T/cert.pem;
  ssl_certificate_key $T/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  # Defaults, stated: no server-side session cache (ssl_session_cache none),
  # session tickets on (OpenSSL sends 2 TLS 1.3 tickets), ssl_ciphers
  # HIGH:!aNULL:!MD5, ssl_ecdh_curve auto (X25519 first), ssl_buffer_size 16k.
  log_format reuse '\$ssl_session_reused \$ssl_protocol \$ssl_cipher \$ssl_curve';
  server {
    listen 127.0.0.1:${PORT[nginx]} ssl;
    root $DOC;
  }
  # Only for the client checks before measuring: logs whether each
  # connection resumed a session ("r") or made a new one (".").
  server {
    listen 127.0.0.1:$CHECK_PORT ssl;
    root $DOC;
    access_log $T/reuse.log reuse;
  }
}
EOF
}

curl_get() {  # curl_get PORT PATH OUTFILE
  curl -sS --max-time 30 --cacert "$T/cert.pem" --resolve "localhost:$1:127.0.0.1" \
    -o "$3" -w '%{http_code}' "https://localhost:$1$2"
}

start_server() {
  local s=$1
  case $s in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --port "${PORT[warren]}" --bind 127.0.0.1 \
        --keepalive-timeout 120 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
        > "$T/warren.log" 2>&1 &
      ;;
    nginx)
      write_nginx_conf
      "${PIN_S[@]}" nginx -p "$T/" -e "$T/nginx-error.log" -c "$T/nginx.conf" > "$T/nginx.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  local ok=0 code
  for _ in $(seq 100); do
    kill -0 "${PID[$s]}" 2>/dev/null || break
    code=$(curl_get "${PORT[$s]}" /1k.bin "$T/got" 2>/dev/null || true)
    if [[ $code == 200 ]] && cmp -s "$T/got" "$DOC/1k.bin"; then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $s output:" >&2; cat "$T/$s.log" "$T/$s-error.log" 2>/dev/null | tail -20 >&2
    die "$s did not start serving /1k.bin over HTTPS on 127.0.0.1:${PORT[$s]}"
  fi
  code=$(curl_get "${PORT[$s]}" /10m.bin "$T/got")
  [[ $code == 200 ]] && cmp -s "$T/got" "$DOC/10m.bin" || die "$s: /10m.bin over HTTPS is not the file (status $code)"
  rm -f "$T/got"
  log "$s: pid ${PID[$s]} port ${PORT[$s]}"
}

# negotiated PORT: what a default OpenSSL client settles with the server.
negotiated() {
  local o
  o=$(timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>&1 || true)
  printf '%s kx=%s sig=%s' \
    "$(sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is /\1 /p' <<<"$o" | head -1)" \
    "$(sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' <<<"$o" | head -1)" \
    "$(sed -n 's/^Peer signature type: //p' <<<"$o" | head -1)"
}



# run_stime SERVER: STIME_PROCS parallel `openssl s_time -new` clients for
# SECS; sets S_conns, S_wall_s, S_cpu_s (server CPU seconds) and S_ccpu_s
# (the clients' CPU seconds).
run_stime() {
  local s=$1 t0 t1 w0 w1
  t0=$(cpu_ticks "${PID[$s]}"); w0=$(date +%s.%N)
  (
    TIMEFORMAT='%3U %3S'
    time {
      for i in $(seq "$STIME_PROCS"); do
        timeout $((SECS + 30)) "${PIN_C[@]}" openssl s_time -new -connect "127.0.0.1:${PORT[$s]}" \
          -www /1k.bin -time "$SECS" > "$T/stime.$i" 2>&1 &
      done
      wait
    }
  ) 2> "$T/stime.time" &
  STPID=$!
  wait "$STPID" || true
  STPID=""
  w1=$(date +%s.%N); t1=$(cpu_ticks "${PID[$s]}")
  cat "$T"/stime.[0-9]* >> "$T/stime-$s.log"
  S_conns=$(cat "$T"/stime.[0-9]* | awk '/connections in .* real seconds/ {n += $1; k++} END {print (k ? n : -1)}')
  [[ $S_conns -gt 0 ]] || die "openssl s_time against $s made no connection (see $T/stime-$s.log; BENCH_KEEP=1 keeps it)"
  S_wall_s=$(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.3f", b - a}')
  S_cpu_s=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}')
  S_ccpu_s=$(client_cpu "$T/stime.time")
}

{
  echo "# warren TLS load comparison $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; clients pinned: ${PIN_C[*]:-none}; rounds=$ROUNDS secs=$SECS conns=$CONNS stime_procs=$STIME_PROCS"
  echo "# key: ECDSA P-256, self-signed ($(openssl x509 -in "$T/cert.pem" -noout -subject))"
  for s in $SERVERS; do
    case $s in
      warren) echo "# warren: $WARREN_BIN ($(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'))" ;;
      nginx) echo "# nginx: $(nginx -v 2>&1), one worker, master_process off, session cache none, tickets on" ;;
    esac
  done
  echo "# wrk: $(wrk -v 2>&1 | head -1); $(openssl version)"
} > "$OUT"

for s in $SERVERS; do start_server "$s"; done
for s in $SERVERS; do
  n=$(negotiated "${PORT[$s]}")
  echo "# $s negotiates with openssl s_client: $n" >> "$OUT"
  log "$s negotiates: $n"
done

# --- client checks: does wrk resume, does s_time not? -------------------------
if [[ " $SERVERS " == *" nginx "* ]]; then
  : > "$T/reuse.log"
  "${PIN_C[@]}" wrk -t1 -c4 -d1s -H 'Connection: close' "https://127.0.0.1:$CHECK_PORT/1k.bin" > /dev/null 2>&1 || true
  sleep 0.2
  wrk_new=$(grep -c '^\. ' "$T/reuse.log" || true); wrk_res=$(grep -c '^r ' "$T/reuse.log" || true)
  : > "$T/reuse.log"
  "${PIN_C[@]}" openssl s_time -new -connect "127.0.0.1:$CHECK_PORT" -www /1k.bin -time 1 > /dev/null 2>&1 || true
  sleep 0.2
  st_new=$(grep -c '^\. ' "$T/reuse.log" || true); st_res=$(grep -c '^r ' "$T/reuse.log" || true)
  kx=$(awk '{print $2, $3, $4}' "$T/reuse.log" | sort | uniq -c | sort -rn | head -1 | sed 's/^ *//')
  echo "# client check (nginx \$ssl_session_reused): wrk Connection: close: $wrk_new new, $wrk_res resumed; s_time -new: $st_new new, $st_res resumed; s_time settles: $kx" >> "$OUT"
  log "wrk with Connection: close: $wrk_new new sessions, $wrk_res resumed; s_time -new: $st_new new, $st_res resumed"
  [[ $st_res == 0 && $st_new -gt 0 ]] || die "s_time -new resumed sessions: the full-handshake figure would be wrong"
fi
if [[ " $SERVERS " == *" warren "* ]]; then
  # warren resumes too (so wrk's reconnects are resumed against both).
  rm -f "$T/sess.pem"
  timeout 10 openssl s_client -connect "127.0.0.1:${PORT[warren]}" -servername localhost -sess_out "$T/sess.pem" \
    <<<$'GET /1k.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' > /dev/null 2>&1 || true
  r=$(timeout 10 openssl s_client -connect "127.0.0.1:${PORT[warren]}" -servername localhost -sess_in "$T/sess.pem" \
    </dev/null 2>&1 | grep -E -o '^(Reused|New), TLSv[0-9.]+' | head -1 || true)
  echo "# warren with a saved session: ${r:-no answer}" >> "$OUT"
  log "warren with a saved session: ${r:-no answer}"
fi

# record SERVER ROUND TEST UNITS SECONDS SERVER_CPU CLIENT_CPU SCALE [KEY=VALUE...]:
# one raw line: rate (units/s), server and client CPU per unit (times
# SCALE: 1e6 for µs per request, 1 for s per GiB), the server's busy
# share of its core.
record() {
  local s=$1 r=$2 test=$3 n=$4 secs=$5 cpu=$6 ccpu=$7 scale=$8
  shift 8
  awk -v s="$s" -v r="$r" -v t="$test" -v n="$n" -v d="$secs" -v c="$cpu" -v cc="$ccpu" -v k="$scale" -v extra="$*" \
    'BEGIN {printf "server=%s round=%s test=%s rate=%.3f cpu_per=%.3f ccpu_per=%.3f busy=%.2f cpu_s=%s client_cpu_s=%s secs=%s %s\n",
      s, r, t, n / d, (n > 0 ? c * k / n : 0), (n > 0 ? cc * k / n : 0), c / d, c, cc, d, extra}' >> "$OUT"
  tail -1 "$OUT" | awk '{print "== " $1, $2, $3, $4, $5, $6, $7}' >&2
}

# --- measurements, alternating; the order flips every round -----------------
order=($SERVERS)
for r in $(seq "$ROUNDS"); do
  if ((r % 2 == 0)); then run=("${order[@]}"); else run=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do run+=("${order[i]}"); done; fi
  for s in "${run[@]}"; do
    run_wrk "$s" /1k.bin
    record "$s" "$r" ka "$W_requests" "$(awk -v d="$W_duration_us" 'BEGIN {print d / 1e6}')" "$W_cpu_s" "$W_ccpu_s" 1e6 \
      "requests=$W_requests bytes=$W_bytes p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout"
  done
  for s in "${run[@]}"; do
    run_wrk "$s" /1k.bin 'Connection: close'
    record "$s" "$r" close "$W_requests" "$(awk -v d="$W_duration_us" 'BEGIN {print d / 1e6}')" "$W_cpu_s" "$W_ccpu_s" 1e6 \
      "requests=$W_requests p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout"
  done
  for s in "${run[@]}"; do
    run_stime "$s"
    record "$s" "$r" full "$S_conns" "$S_wall_s" "$S_cpu_s" "$S_ccpu_s" 1e6 "conns=$S_conns procs=$STIME_PROCS"
  done
  for s in "${run[@]}"; do
    run_wrk "$s" /10m.bin
    record "$s" "$r" 10m "$(awk -v b="$W_bytes" 'BEGIN {print b / 1073741824}')" \
      "$(awk -v d="$W_duration_us" 'BEGIN {print d / 1e6}')" "$W_cpu_s" "$W_ccpu_s" 1 \
      "requests=$W_requests bytes=$W_bytes errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout"
  done
done

# --- summary ----------------------------------------------------------------
python3 - "$OUT" $SERVERS <<'EOF' | tee -a "$OUT"
import statistics, sys
path, servers = sys.argv[1], sys.argv[2:]
rows = []
for line in open(path):
    if line.startswith("server="):
        rows.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
def med(s, test, key):
    v = [float(r[key]) if key != "total" else float(r["cpu_per"]) + float(r["ccpu_per"])
         for r in rows if r["server"] == s and r["test"] == test]
    return statistics.median(v) if v else None
# (test, key, label, decimals, better: 1 higher, -1 lower, 0 no ratio)
cols = []
for test, name, unit, rate_p, cpu_unit, cpu_p in (
        ("ka", "1 KiB keep-alive", "req/s", 0, "us/req", 1),
        ("close", "Connection: close (resumed)", "conn/s", 0, "us/conn", 0),
        ("full", "full handshakes (s_time -new)", "hs/s", 0, "us/hs", 0),
        ("10m", "10 MiB file", "GiB/s", 2, "s/GiB", 3)):
    cols += [(test, "rate", "%s %s" % (name, unit), rate_p, 1),
             (test, "cpu_per", "  server CPU %s" % cpu_unit, cpu_p, -1),
             (test, "ccpu_per", "  client CPU %s" % cpu_unit, cpu_p, 0),
             (test, "total", "  server+client CPU %s" % cpu_unit, cpu_p, -1),
             (test, "busy", "  server busy", 2, 0)]
res = {s: [med(s, c[0], c[1]) for c in cols] for s in servers}
f = lambda x, p: "-" if x is None else ("%.*f" % (p, x))
both = "warren" in servers and "nginx" in servers
print()
print("%-40s" % "median over rounds" + "".join("%10s" % s for s in servers) + ("%14s" % "warren/nginx" if both else ""))
for i, c in enumerate(cols):
    line = "%-40s" % c[2] + "".join("%10s" % f(res[s][i], c[3]) for s in servers)
    if both and c[4] != 0 and res["warren"][i] and res["nginx"][i]:
        line += "%14s" % ("x%.2f" % (res["warren"][i] / res["nginx"][i]))
    print(line)
if both:
    print("(rates: higher is better; CPU per unit: lower is better. 'server busy' is the")
    print(" server's share of its core: below ~0.95 the clients were the limit, or other load")
    print(" took the client's core, and the CPU figures are the ones to compare. On loopback")
    print(" part of the receiver's TCP work runs in the sender's context, so server and client")
    print(" CPU shift with write sizes; server+client is the sturdier of the two)")
bad = [r["server"] + " " + r["test"] for r in rows if r.get("errors", "0/0/0/0/0").split("/")[3] != "0"]
if bad:
    print("WARNING: non-2xx/3xx responses in: " + ", ".join(bad))
EOF
echo "raw results: $OUT" >&2
