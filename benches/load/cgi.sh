#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* variables are set by eval in run_wrk
# CGI load comparison: warren (`--cgi`) against lighttpd with mod_cgi, on
# loopback only, running the same two trivial CGI programs:
#   hello.sh  a shell script printing a text/plain head and "Hello, world\n"
#             (13 bytes of body);
#   hello-c   the same in C, compiled with gcc at run time;
#   hello.php the same in PHP, run in place by php-cgi (warren's
#             --cgi-assign, lighttpd's cgi.assign), beside a static file
#             (static.txt) on that same mount, which is sent, not run.
# Measures requests/s (wrk -t1 -c$BENCH_CONNS, keep-alive), median over
# rounds, for each server and program, and prints warren/lighttpd.
# Each server runs pinned to one CPU (its CGI children inherit that CPU),
# wrk on the other; runs alternate between servers, the order flipping
# every round, so drift on the machine hits both alike.
#
# Knobs (environment):
#   BENCH_SERVERS  servers to run, default "warren lighttpd"
#   BENCH_ROUNDS   rounds of alternating runs, default 3
#   BENCH_SECS     seconds per wrk run, default 10
#   BENCH_CONNS    wrk connections, default 16 (warren's default limit is
#                  64 CGI processes per mount; more connections get 503s)
#   BENCH_OUT      raw results file, default /tmp/warren-cgi-bench.txt
#   WARREN_BIN     warren binary, default <repo>/target/release/warren
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1   keep the temp dir (configs, logs) for inspection
#   BENCH_NO_INSTALL=1  never run apt-get
#
# Runs as root (installs wrk, lighttpd, gcc, curl with apt-get when
# missing). All traffic goes to 127.0.0.1. Only the processes it started
# are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
SERVERS=${BENCH_SERVERS:-warren lighttpd}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-16}
OUT=${BENCH_OUT:-/tmp/warren-cgi-bench.txt}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
# URL paths below /, as the summary names them.
PROGRAMS="cgi-bin/hello.sh cgi-bin/hello-c hello.php static.txt"

die() { echo "cgi.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for s in $SERVERS; do
  case $s in warren|lighttpd) ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] \
  || die "BENCH_ROUNDS, BENCH_SECS and BENCH_CONNS must be positive integers"

WARREN_EXTRA=()
if [[ " $SERVERS " == *" warren "* ]]; then
  [[ -x $WARREN_BIN ]] || die "warren binary not found or not executable: $WARREN_BIN
  build it first:   cargo build --release
  or point at one:  WARREN_BIN=/path/to/warren $0"
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  [[ $("$WARREN_BIN" --help 2>&1 || true) == *--cgi* ]] || die "$WARREN_BIN --help has no --cgi: build a warren with CGI mounts"
  WARREN_EXTRA+=(--keepalive-timeout 120)
fi

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg taskset util-linux
need_pkg gcc gcc
need_pkg curl curl
need_pkg php-cgi php-cgi
[[ " $SERVERS " == *" lighttpd "* ]] && need_pkg lighttpd lighttpd
PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
else
  log "note: fewer than 2 CPUs; servers and wrk are not pinned"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, docroot, CGIs, cleanup --------------------------------------
T=$(mktemp -d /tmp/warren-cgi-bench.XXXXXX)
DOC=$T/docroot
CGI=$DOC/cgi-bin
mkdir -p "$CGI"
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

echo '<!doctype html><title>cgi bench</title><p>cgi bench</p>' > "$DOC/index.html"
cat > "$CGI/hello.sh" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nHello, world\n'
EOF
cat > "$T/hello.c" <<'EOF'
#include <unistd.h>
int main(void) {
    static const char out[] = "Content-Type: text/plain\r\n\r\nHello, world\n";
    return write(1, out, sizeof out - 1) == (ssize_t)(sizeof out - 1) ? 0 : 1;
}
EOF
gcc -O2 -o "$CGI/hello-c" "$T/hello.c" || die "gcc failed on hello.c"
chmod 755 "$CGI/hello.sh" "$CGI/hello-c"
printf '<?php echo "Hello, world\\n";\n' > "$DOC/hello.php"
printf 'Hello, world\n' > "$DOC/static.txt"
write_wrk_report "$T/report.lua"

read -r -a FREE < <(free_ports 2)
PORT[warren]=${FREE[0]}; PORT[lighttpd]=${FREE[1]}

write_lighttpd_conf() {
  cat > "$T/lighttpd.conf" <<EOF
server.modules = ( "mod_cgi" )
server.document-root = "$DOC"
$(lighttpd_common)
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", ".txt" => "text/plain" )
cgi.assign = ( ".php" => "/usr/bin/php-cgi" )
# Every file under /cgi-bin/ is a program, run directly (no interpreter).
\$HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ( "" => "" ) }
EOF
}

start_server() {
  local s=$1
  case $s in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --cgi "/cgi-bin=$CGI" --cgi-assign .php=/usr/bin/php-cgi --port "${PORT[warren]}" \
        --bind 127.0.0.1 "${WARREN_EXTRA[@]}" --log-level warn > "$T/warren.log" 2>&1 &
      ;;
    lighttpd)
      write_lighttpd_conf
      "${PIN_S[@]}" lighttpd -D -f "$T/lighttpd.conf" > "$T/lighttpd.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  # Wait until both programs answer 200 with exactly "Hello, world\n".
  local ok=0 p body
  for _ in $(seq 100); do
    kill -0 "${PID[$s]}" 2>/dev/null || break
    ok=1
    for p in $PROGRAMS; do
      body=$(curl -s --max-time 5 -w '|%{http_code}' "http://127.0.0.1:${PORT[$s]}/$p" || true)
      [[ $body == $'Hello, world\n|200' ]] || { ok=0; break; }
    done
    [[ $ok == 1 ]] && break
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $s output:" >&2; cat "$T/$s.log" "$T/$s-error.log" 2>/dev/null | tail -20 >&2
    die "$s did not answer 200 'Hello, world' for /{${PROGRAMS// /,}} on 127.0.0.1:${PORT[$s]} (last: ${body:-nothing})"
  fi
  log "$s: pid ${PID[$s]} port ${PORT[$s]}"
}

# run_wrk SERVER PATH -> sets W_* variables from the report line

{
  echo "# warren CGI load comparison $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; wrk pinned: ${PIN_C[*]:-none}; rounds=$ROUNDS secs=$SECS conns=$CONNS"
  for s in $SERVERS; do
    case $s in
      warren) echo "# warren: $WARREN_BIN ${WARREN_EXTRA[*]:-} ($(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo '?'))" ;;
      lighttpd) echo "# lighttpd: $(lighttpd -v 2>&1 | head -1), mod_cgi" ;;
    esac
  done
  echo "# gcc: $(gcc --version | head -1); sh: $(readlink -f /bin/sh)"
  echo "# wrk: $(wrk -v 2>&1 | head -1)"
} > "$OUT"

for s in $SERVERS; do start_server "$s"; done

read -r -a order <<< "$SERVERS"
for r in $(seq "$ROUNDS"); do
  for p in $PROGRAMS; do
    for s in "${order[@]}"; do
      run_wrk "$s" "/$p"
      rps=$(awk -v n="$W_requests" -v d="$W_duration_us" 'BEGIN {printf "%.1f", n / (d / 1e6)}')
      echo "server=$s round=$r test=$p rps=$rps requests=$W_requests bytes=$W_bytes duration_us=$W_duration_us p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
      log "round $r $s $p: $rps req/s (p50 ${W_p50_us} us, p99 ${W_p99_us} us, errors $W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout)"
    done
  done
  # Flip the order each round.
  rev=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done; order=("${rev[@]}")
done

# --- summary ----------------------------------------------------------------
python3 - "$OUT" "$PROGRAMS" $SERVERS <<'EOF' | tee -a "$OUT"
import statistics, sys
path, programs, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
rows = [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in open(path) if l.startswith("server=")]
def med(s, p, key):
    v = [float(r[key]) for r in rows if r["server"] == s and r["test"] == p]
    return statistics.median(v) if v else None
bad = sorted({"%s %s" % (r["server"], r["test"]) for r in rows if any(x != "0" for x in r["errors"].split("/"))})
print()
print("%-10s " % "server" + " ".join("%24s" % (p + " req/s") for p in programs)
      + " " + " ".join("%24s" % (p + " p99 ms") for p in programs))
for s in servers:
    cells = []
    for p in programs:
        v = med(s, p, "rps"); cells.append("%24s" % ("-" if v is None else "%.0f" % v))
    for p in programs:
        v = med(s, p, "p99_us"); cells.append("%24s" % ("-" if v is None else "%.2f" % (v / 1000)))
    print("%-10s " % s + " ".join(cells))
if "warren" in servers and "lighttpd" in servers:
    for p in programs:
        w, l = med("warren", p, "rps"), med("lighttpd", p, "rps")
        print("warren/lighttpd %-18s req/s x%s" % (p, "-" if not w or not l else "%.2f" % (w / l)))
    print("(median over rounds; higher is better; target: at least x1.00)")
if bad:
    print("WARNING: errors (connect/read/write/status/timeout) in: " + ", ".join(bad))
EOF
echo "raw results: $OUT" >&2
