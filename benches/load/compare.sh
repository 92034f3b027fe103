#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in run_wrk
# Load comparison: warren against nginx and lighttpd, on loopback only.
#
# Measures, per server, serving the same docroot on 127.0.0.1:
#   - requests/s for a 1 KiB file (wrk -t1 -c50), median over rounds;
#   - server CPU seconds per GiB served for a 10 MiB file, median over rounds;
#   - resident memory (KiB) per idle keep-alive connection, 1000 connections.
# Servers run pinned to one CPU, wrk to the other.  Runs alternate between
# servers so that drift on the machine hits them all alike.
#
# Knobs (environment):
#   BENCH_SERVERS  servers to run, default "warren nginx lighttpd"
#   BENCH_ROUNDS   rounds of alternating runs, default 3
#   BENCH_SECS     seconds per wrk run, default 10
#   BENCH_CONNS    wrk connections, default 50
#   BENCH_IDLE     idle connections for the memory test, default 1000
#   BENCH_OUT      raw results file, default /tmp/warren-bench.txt
#   WARREN_BIN     warren binary, default <repo>/target/release/warren
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1   keep the temp dir (configs, logs) for inspection
#   BENCH_NO_INSTALL=1  never run apt-get
#
# Runs as root (installs packages with apt-get when missing).  All traffic goes
# to 127.0.0.1.  Only the processes it started are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
SERVERS=${BENCH_SERVERS:-warren nginx lighttpd}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-50}
IDLE=${BENCH_IDLE:-1000}
OUT=${BENCH_OUT:-/tmp/warren-bench.txt}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}

die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for s in $SERVERS; do
  case $s in warren|nginx|lighttpd) ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ && $IDLE =~ ^[1-9][0-9]*$ ]] \
  || die "BENCH_ROUNDS, BENCH_SECS and BENCH_IDLE must be positive integers"

# --- warren binary ----------------------------------------------------------
WARREN_EXTRA=()
WARREN_NOTE=""
if [[ " $SERVERS " == *" warren "* ]]; then
  if [[ ! -x $WARREN_BIN ]]; then
    die "warren binary not found or not executable: $WARREN_BIN
  build it first:   cargo build --release
  or point at one:  WARREN_BIN=/path/to/warren $0
  or run only the peers: BENCH_SERVERS=\"nginx lighttpd\" $0"
  fi
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  if [[ $("$WARREN_BIN" --help 2>&1 || true) == *--keepalive-timeout* ]]; then
    WARREN_EXTRA+=(--keepalive-timeout 120)
  else
    WARREN_NOTE="warren --help has no --keepalive-timeout: its default keep-alive idle timeout applies to the idle-connection test"
    log "note: $WARREN_NOTE"
  fi
fi

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$(dirname "$0")/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg taskset util-linux
need_pkg getconf libc-bin
if [[ " $SERVERS " == *" nginx "* ]]; then need_nginx; fi
[[ " $SERVERS " == *" lighttpd "* ]] && need_pkg lighttpd lighttpd

PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
else
  log "note: fewer than 2 CPUs; servers and wrk are not pinned"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, docroot, cleanup --------------------------------------------
T=$(mktemp -d /tmp/warren-bench.XXXXXX)
DOC=$T/docroot
mkdir -p "$DOC" "$T/nginx-tmp"
declare -A PID PORT
COPID=""
WRKPID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $COPID ]] && kill "$COPID" 2>/dev/null
  [[ -n $WRKPID ]] && kill "$WRKPID" 2>/dev/null && wait "$WRKPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 1024 /dev/urandom > "$DOC/1k.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$DOC/10m.bin"
cat > "$DOC/index.html" <<'EOF'
<!doctype html>
<html><head><meta charset="utf-8"><title>bench</title></head>
<body><h1>bench</h1><p>A small page for the idle keep-alive connection test.</p></body></html>
EOF

write_wrk_report "$T/report.lua"

# --- ports ------------------------------------------------------------------
read -r -a FREE < <(free_ports 3)
PORT[warren]=${FREE[0]}; PORT[nginx]=${FREE[1]}; PORT[lighttpd]=${FREE[2]}

# --- server configs and start ----------------------------------------------
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
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  # lighttpd caches stat results and open fds by default; give nginx the same.
  open_file_cache max=1024 inactive=60s;
$(nginx_temp_paths "$T/nginx-tmp")
  types { text/html html; application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${PORT[nginx]};
    root $DOC;
    index index.html;
  }
}
EOF
}

write_lighttpd_conf() {
  cat > "$T/lighttpd.conf" <<EOF
server.document-root = "$DOC"
$(lighttpd_common)
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", ".bin" => "application/octet-stream" )
EOF
}

start_server() {
  local s=$1
  case $s in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --port "${PORT[warren]}" --bind 127.0.0.1 \
        "${WARREN_EXTRA[@]}" > "$T/warren.log" 2>&1 &
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
  # Wait until it answers GET /1k.bin with 200 and the right length.
  local ok=0
  for _ in $(seq 100); do
    if ! kill -0 "${PID[$s]}" 2>/dev/null; then break; fi
    if python3 - "${PORT[$s]}" <<'EOF' 2>/dev/null
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/1k.bin")
r = c.getresponse()
sys.exit(0 if r.status == 200 and len(r.read()) == 1024 else 1)
EOF
    then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $s output:" >&2; cat "$T/$s.log" "$T/$s-error.log" 2>/dev/null | tail -20 >&2
    die "$s did not start serving 200 for /1k.bin on 127.0.0.1:${PORT[$s]}"
  fi
  log "$s: pid ${PID[$s]} port ${PORT[$s]}"
}


# run_wrk SERVER PATH -> sets W_* variables from the report line

{
  echo "# warren load comparison $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; wrk pinned: ${PIN_C[*]:-none}; rounds=$ROUNDS secs=$SECS conns=$CONNS idle=$IDLE"
  for s in $SERVERS; do
    case $s in
      warren) echo "# warren: $WARREN_BIN ${WARREN_EXTRA[*]:-} ${WARREN_NOTE:+($WARREN_NOTE)}" ;;
      nginx) echo "# nginx: $(nginx -v 2>&1)" ;;
      lighttpd) echo "# lighttpd: $(lighttpd -v 2>&1 | head -1)" ;;
    esac
  done
  echo "# wrk: $(wrk -v 2>&1 | head -1)"
} > "$OUT"

for s in $SERVERS; do start_server "$s"; done

# --- memory per idle connection (before the throughput runs) ---------------
for s in $SERVERS; do
  log "$s: $IDLE idle keep-alive connections"
  pid=${PID[$s]}
  before=$(rss_kib "$pid")
  coproc IDLEC { exec python3 "$HERE/idle_conns.py" "${PORT[$s]}" "$IDLE" 120 2>&1; }
  COPID=$IDLEC_PID
  rd=${IDLEC[0]}; wr=${IDLEC[1]}
  line=""
  read -r -t 90 -u "$rd" line || true
  if [[ $line != ready ]]; then
    die "$s: idle-connection client failed: ${line:-no answer in 90 s}"
  fi
  sleep 1
  after=$(rss_kib "$pid")
  exec {wr}>&-
  read -r -t 30 -u "$rd" tail || true
  wait "$COPID" 2>/dev/null || true
  COPID=""
  per=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f", (a - b) / n}')
  echo "server=$s test=idle conns=$IDLE rss_before_kib=$before rss_after_kib=$after kib_per_conn=$per client=\"${tail:-}\"" >> "$OUT"
  log "$s: RSS $before -> $after KiB, $per KiB/conn (${tail:-})"
done

# --- throughput and CPU, alternating ---------------------------------------
for r in $(seq "$ROUNDS"); do
  for s in $SERVERS; do
    run_wrk "$s" /1k.bin
    rps=$(awk -v n="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.1f", n / (d / 1e6)}')
    echo "server=$s round=$r test=1k rps=$rps requests=$W_requests bytes=$W_bytes duration_us=$W_duration_us p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
    log "round $r $s 1k: $rps req/s (p99 ${W_p99_us} us)"
  done
  for s in $SERVERS; do
    run_wrk "$s" /10m.bin
    read -r cpu_s spg gibps < <(awk -v c="$W_cpu_s" -v b="$W_bytes" -v d="$W_duration_us" \
      'BEGIN {g = b / 1073741824; printf "%.3f %.3f %.3f\n", c, (g > 0 ? c / g : 0), g / (d / 1e6)}')
    echo "server=$s round=$r test=10m cpu_s=$cpu_s s_per_gib=$spg gib_per_s=$gibps requests=$W_requests bytes=$W_bytes duration_us=$W_duration_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
    log "round $r $s 10m: $gibps GiB/s, server CPU $cpu_s s, $spg s/GiB"
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
    v = [float(r[key]) for r in rows if r["server"] == s and r["test"] == test]
    return statistics.median(v) if v else None
res = {s: (med(s, "1k", "rps"), med(s, "10m", "s_per_gib"), med(s, "idle", "kib_per_conn"),
           med(s, "10m", "gib_per_s")) for s in servers}
bad = [r["server"] + " " + r["test"] for r in rows if r.get("errors", "0/0/0/0/0").split("/")[3] != "0"]
print()
print("%-10s %14s %18s %14s %12s" % ("server", "1KiB req/s", "10MiB CPU s/GiB", "KiB/idle conn", "10MiB GiB/s"))
for s in servers:
    a, b, c, d = res[s]
    f = lambda x, p: "-" if x is None else ("%.*f" % (p, x))
    print("%-10s %14s %18s %14s %12s" % (s, f(a, 0), f(b, 3), f(c, 2), f(d, 2)))
if "warren" in servers:
    for peer in ("nginx", "lighttpd"):
        if peer not in servers:
            continue
        w, p = res["warren"], res[peer]
        def ratio(i):
            return "-" if not w[i] or not p[i] else "%.2f" % (w[i] / p[i])
        print("warren/%-8s req/s x%s   CPU/GiB x%s   KiB/conn x%s" % (peer, ratio(0), ratio(1), ratio(2)))
    print("(req/s: higher is better; CPU/GiB and KiB/conn: lower is better)")
if bad:
    print("WARNING: non-2xx/3xx responses in: " + ", ".join(bad))
EOF
echo "raw results: $OUT" >&2
