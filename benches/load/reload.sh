#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in run_wrk
# Reloads under load: warren against nginx, on loopback only.
#
# Each server serves the same docroot; wrk keeps 50 keep-alive
# connections busy with GET /1k.bin for BENCH_SECS seconds, once with no
# reload (the baseline) and once while the server is sent SIGHUP
# BENCH_RELOADS times, BENCH_GAP seconds apart (from 2 s in). Reported per
# server: requests/s of each run, their ratio, and wrk's errors (connect,
# read, write, timeout, non-2xx) during the reloads: each is a request a
# client saw fail.
#
# warren reloads in one process (a new event loop takes the listening
# socket over; the old one finishes its connections); nginx runs with its
# master process, which starts new workers and retires the old ones.
#
# Knobs: BENCH_SECS (default 20), BENCH_RELOADS (20), BENCH_GAP (0.5),
# BENCH_CONNS (50), WARREN_BIN (default <repo>/target/release/warren),
# BENCH_SERVER_CPU / BENCH_CLIENT_CPU (0 / 1), BENCH_KEEP=1,
# BENCH_NO_INSTALL=1. Runs as root (installs nginx and wrk when missing).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
SECS=${BENCH_SECS:-20}
RELOADS=${BENCH_RELOADS:-20}
GAP=${BENCH_GAP:-0.5}
CONNS=${BENCH_CONNS:-50}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}

die() { echo "reload.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
# shellcheck source=lib.sh
source "$HERE/lib.sh"

[[ -x $WARREN_BIN ]] || die "no warren binary at $WARREN_BIN (cargo build --release, or set WARREN_BIN)"
need_pkg wrk wrk
need_pkg nginx nginx-light

PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

T=$(mktemp -d /tmp/warren-reload.XXXXXX)
# nginx's workers run as nobody: they must reach the docroot.
chmod 755 "$T"
DOC=$T/docroot
mkdir -p "$DOC" "$T/nginx-tmp"
declare -A PID PORT
WRKPID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $WRKPID ]] && kill "$WRKPID" 2>/dev/null && wait "$WRKPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 1024 /dev/urandom > "$DOC/1k.bin"
write_wrk_report "$T/report.lua"
read -r -a FREE < <(free_ports 2)
PORT[warren]=${FREE[0]}; PORT[nginx]=${FREE[1]}

cat > "$T/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
$(nginx_temp_paths "$T/nginx-tmp")
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${PORT[nginx]};
    root $DOC;
  }
}
EOF

start() {
  local s=$1
  case $s in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --port "${PORT[warren]}" --keepalive-timeout 120 \
        > "$T/warren.log" 2>&1 &
      ;;
    nginx)
      "${PIN_S[@]}" nginx -p "$T/" -e "$T/nginx-error.log" -c "$T/nginx.conf" > "$T/nginx.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:${PORT[$s]}/1k.bin" && return 0
    sleep 0.1
  done
  die "$s did not start (see $T/$s.log)"
}

# reloader PID: RELOADS SIGHUPs, GAP apart, from 2 s in.
reloader() {
  sleep 2
  for _ in $(seq "$RELOADS"); do
    kill -HUP "$1"
    sleep "$GAP"
  done
}

{
  echo "# reload.sh $(date -u +%FT%TZ): ${SECS}s of wrk -c$CONNS on /1k.bin, $RELOADS reloads ${GAP}s apart"
  echo "# $("$WARREN_BIN" --version); $(nginx -v 2>&1)"
  printf '%-8s %12s %12s %7s  %s\n' server "base req/s" "reload req/s" ratio "errors during reloads (connect/read/write/timeout/status)"
} | tee "$T/result.txt"
for s in warren nginx; do
  start "$s"
  run_wrk "$s" /1k.bin
  base=$(awk -v r="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  reloader "${PID[$s]}" &
  RPID=$!
  run_wrk "$s" /1k.bin
  wait "$RPID"
  under=$(awk -v r="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  ratio=$(awk -v a="$under" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
  printf '%-8s %12s %12s %7s  %s/%s/%s/%s/%s\n' "$s" "$base" "$under" "$ratio" \
    "$W_err_connect" "$W_err_read" "$W_err_write" "$W_err_timeout" "$W_err_status" | tee -a "$T/result.txt"
  kill "${PID[$s]}"
  wait "${PID[$s]}" 2>/dev/null || true
  unset "PID[$s]"
done
