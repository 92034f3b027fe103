#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in run_wrk
# Service threads (issue 17), on loopback only, two parts in one run:
#
# 1. Two loops: warren --threads 2 against nginx with 2 workers and
#    lighttpd (one process; it has no worker threads), nothing pinned,
#    wrk with 2 threads: requests/s for a 1 KiB file and GiB/s for a
#    10 MiB file, median over rounds.
# 2. One loop: the server CPU microseconds per 1 KiB keep-alive request
#    (server CPU time / requests; servers pinned to one CPU, wrk to the
#    other) of warren, nginx (1 worker), lighttpd and the floor
#    (../shared/bench/floor.c: one epoll loop, one recv and one send per
#    request, the answer prebuilt in memory), served in the same run,
#    each split into user and kernel time.
# 3. The floor again with WORK_NS nanoseconds of user-space work per
#    request (a clock_gettime spin before each send; floor.c is patched
#    at build time, the patch checked): how the floor's CPU per request
#    grows with the work a server does in user space, to read part 2
#    against.
#
# Knobs (environment):
#   BENCH_ROUNDS   rounds of alternating runs, default 3
#   BENCH_SECS     seconds per wrk run, default 8
#   BENCH_CONNS    wrk connections, default 50
#   BENCH_FLOOR    floor.c, default <repo>/../shared/bench/floor.c
#   BENCH_WORK     part 3's work per request in ns, default "1000 2000 3000"
#   BENCH_OUT      raw results file, default /tmp/warren-threads-bench.txt
#   WARREN_BIN     warren binary, default <repo>/target/release/warren
#   BENCH_KEEP=1   keep the temp dir; BENCH_NO_INSTALL=1 never run apt-get
#
# Runs as root (installs wrk, nginx, lighttpd, gcc when missing). Only the
# processes it started are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-8}
CONNS=${BENCH_CONNS:-50}
FLOOR_C=${BENCH_FLOOR:-$HERE/../../../shared/bench/floor.c}
OUT=${BENCH_OUT:-/tmp/warren-threads-bench.txt}
WORK=${BENCH_WORK:-1000 2000 3000}
log() { echo "== $*" >&2; }
die() { echo "threads.sh: $*" >&2; exit 1; }
[[ -x $WARREN_BIN ]] || die "no warren binary at $WARREN_BIN (cargo build --release)"
[[ -f $FLOOR_C ]] || die "no floor.c at $FLOOR_C (BENCH_FLOOR=path)"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs"

# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg taskset util-linux
need_pkg gcc gcc
need_nginx
need_pkg lighttpd lighttpd
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

T=$(mktemp -d /tmp/warren-threads-bench.XXXXXX)
DOC=$T/docroot
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

head -c 1024 /dev/urandom > "$DOC/1k.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$DOC/10m.bin"
write_wrk_report "$T/report.lua"
# nginx's workers (master_process on) run as nobody: the docroot must be theirs to read.
chmod -R a+rX "$T"
gcc -O2 -o "$T/floor" "$FLOOR_C"
# The floor with work: the second argument is the ns to spin per request.
sed -e 's|^static char resp\[2048\]; static int rlen;|#include <time.h>\nstatic char resp[2048]; static int rlen; static long spin_ns;\nstatic void spin(void) { struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, \&a); do clock_gettime(CLOCK_MONOTONIC, \&b); while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < spin_ns); }|' \
  -e 's|int port = argc > 1 ? atoi(argv\[1\]) : 18999;|& spin_ns = argc > 2 ? atol(argv[2]) : 0;|' \
  -e 's|for (int q = 0; q < reqs; q++) send(|for (int q = 0; q < reqs; q++) if (spin(), 1) send(|' "$FLOOR_C" > "$T/floor_work.c"
[[ $(grep -c 'spin' "$T/floor_work.c") -ge 4 ]] || die "floor.c changed: the work patch no longer applies (see $T/floor_work.c)"
gcc -O2 -o "$T/floor_work" "$T/floor_work.c"

read -r -a FREE < <(free_ports 4)
PORT[warren]=${FREE[0]}; PORT[nginx]=${FREE[1]}; PORT[lighttpd]=${FREE[2]}; PORT[floor]=${FREE[3]}

# start_server NAME LOOPS PIN...: NAME with LOOPS loops/workers, under PIN.
start_server() {
  local s=$1 loops=$2
  shift 2
  case $s in
    warren)
      "$@" "$WARREN_BIN" --root "$DOC" --port "${PORT[warren]}" --bind 127.0.0.1 --threads "$loops" \
        --keepalive-timeout 120 --log-level warn > "$T/warren.log" 2>&1 &
      ;;
    nginx)
      cat > "$T/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $loops;
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
  open_file_cache max=1024 inactive=60s;
$(nginx_temp_paths "$T/nginx-tmp")
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  server { listen 127.0.0.1:${PORT[nginx]}; root $DOC; }
}
EOF
      "$@" nginx -p "$T/" -e "$T/nginx-error.log" -c "$T/nginx.conf" > "$T/nginx.log" 2>&1 &
      ;;
    lighttpd)
      cat > "$T/lighttpd.conf" <<EOF
server.document-root = "$DOC"
$(lighttpd_common)
mimetype.assign = ( ".bin" => "application/octet-stream" )
EOF
      "$@" lighttpd -D -f "$T/lighttpd.conf" > "$T/lighttpd.log" 2>&1 &
      ;;
    floor)
      "$@" "$T/floor" "${PORT[floor]}" > "$T/floor.log" 2>&1 &
      ;;
    floor+*)
      PORT[$s]=${PORT[floor]}
      "$@" "$T/floor_work" "${PORT[floor]}" "${s#floor+}" > "$T/floor.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  local ok=0
  for _ in $(seq 100); do
    kill -0 "${PID[$s]}" 2>/dev/null || break
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
  [[ $ok == 1 ]] || die "$s did not serve /1k.bin on port ${PORT[$s]} ($(tail -3 "$T/$s.log" 2>/dev/null))"
  # nginx's CPU is its master's and its workers'.
  CPU_PIDS[$s]="${PID[$s]} $( (pgrep -P "${PID[$s]}" || true) | tr '\n' ' ')"
  log "$s ($loops): pids ${CPU_PIDS[$s]}"
}

{
  echo "# warren threads benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# warren: $WARREN_BIN ($(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "# nginx: $(nginx -v 2>&1); lighttpd: $(lighttpd -v 2>&1 | head -1); wrk: $(wrk -v 2>&1 | head -1)"
  echo "# rounds=$ROUNDS secs=$SECS conns=$CONNS"
} > "$OUT"

# --- 1. two loops, nothing pinned, wrk -t2 ---------------------------------
PIN_C=()
WRK_THREADS=2
for r in $(seq "$ROUNDS"); do
  for s in warren nginx lighttpd; do
    start_server "$s" 2
    run_wrk "$s" /1k.bin
    rps=$(awk -v n="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.1f", n / (d / 1e6)}')
    echo "part=2loops server=$s round=$r test=1k rps=$rps errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
    log "round $r $s (2) 1k: $rps req/s"
    run_wrk "$s" /10m.bin
    gibps=$(awk -v b="$W_bytes" -v d="$W_duration_us" 'BEGIN {printf "%.3f", b / 1073741824 / (d / 1e6)}')
    echo "part=2loops server=$s round=$r test=10m gibps=$gibps errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
    log "round $r $s (2) 10m: $gibps GiB/s"
    stop_server "$s"
  done
done

# --- 2. one loop, pinned: CPU per small request ----------------------------
PIN_S=(taskset -c 0)
PIN_C=(taskset -c 1)
WRK_THREADS=1
for r in $(seq "$ROUNDS"); do
  for s in warren nginx lighttpd floor $(printf 'floor+%s ' $WORK); do
    start_server "$s" 1 "${PIN_S[@]}"
    run_wrk "$s" /1k.bin
    us=$(awk -v c="$W_cpu_s" -v n="$W_requests" 'BEGIN {printf "%.2f", c * 1e6 / n}')
    uus=$(awk -v c="$W_ucpu_s" -v n="$W_requests" 'BEGIN {printf "%.2f", c * 1e6 / n}')
    rps=$(awk -v n="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.1f", n / (d / 1e6)}')
    echo "part=1loop server=$s round=$r test=1k us_per_req=$us user_us=$uus rps=$rps errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
    log "round $r $s (1) 1k: $rps req/s, $us us CPU/req"
    stop_server "$s"
  done
done

python3 - "$OUT" <<'EOF' | tee -a "$OUT"
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in open(sys.argv[1]) if l.startswith("part=")]
def med(part, s, test, key):
    v = [float(r[key]) for r in rows if r["part"] == part and r["server"] == s and r["test"] == test]
    return statistics.median(v) if v else 0.0
print()
print("two loops (warren --threads 2, nginx 2 workers, lighttpd), wrk -t2 -c50, nothing pinned")
print("%-10s %12s %12s" % ("server", "1KiB req/s", "10MiB GiB/s"))
for s in ("warren", "nginx", "lighttpd"):
    print("%-10s %12.0f %12.2f" % (s, med("2loops", s, "1k", "rps"), med("2loops", s, "10m", "gibps")))
best1 = max(med("2loops", s, "1k", "rps") for s in ("nginx", "lighttpd"))
best10 = max(med("2loops", s, "10m", "gibps") for s in ("nginx", "lighttpd"))
w1, w10 = med("2loops", "warren", "1k", "rps"), med("2loops", "warren", "10m", "gibps")
print("warren / best peer: 1 KiB x%.2f, 10 MiB x%.2f" % (w1 / best1 if best1 else 0, w10 / best10 if best10 else 0))
print()
print("one loop, pinned (server CPU 0, wrk CPU 1): server CPU per 1 KiB keep-alive request")
floor = med("1loop", "floor", "1k", "us_per_req")
print("%-12s %8s %8s %8s %10s %8s" % ("server", "us/req", "user", "kernel", "req/s", "x floor"))
work = sorted({r["server"] for r in rows if r["server"].startswith("floor+")}, key=lambda s: int(s[6:]))
for s in ["floor", "warren", "nginx", "lighttpd"] + work:
    us, user = med("1loop", s, "1k", "us_per_req"), med("1loop", s, "1k", "user_us")
    print("%-12s %8.2f %8.2f %8.2f %10.0f %8.2f" % (s, us, user, us - user, med("1loop", s, "1k", "rps"), us / floor if floor else 0))
print("(floor+N: the floor with N ns of user-space work per request)")
bad = [r["server"] + " " + r["test"] for r in rows if r.get("errors", "0/0/0/0/0").split("/")[3] != "0"]
if bad:
    print("WARNING: non-2xx/3xx responses in: " + ", ".join(bad))
EOF
echo "raw results: $OUT" >&2
