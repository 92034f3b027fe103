#!/usr/bin/env bash
# shellcheck disable=SC2154  # the W_* and S_* variables are set by eval
# Zip-archive serving benchmark: warren --root SITE.zip against warren on a
# plain directory and nginx (precompressed sidecar, and on-the-fly gzip), on
# loopback only.
#
# Docroot (generated, deterministic): page.html (~100 KiB of HTML),
# page.html.gz (gzip -9, for nginx gzip_static), big.bin (10 MiB of base64
# text, deflates to ~0.76); site.zip holds page.html and big.bin, deflated
# (zip -9).  Servers, each one process pinned to one CPU:
#   warren-zip    warren --root site.zip   (gzip passthrough / inflate)
#   warren-plain  warren --root docroot
#   nginx-static  nginx, gzip_static on    (sends page.html.gz as is)
#   nginx-gzip    nginx, gzip on, level 1  (compresses on every request)
# Measures, alternating servers each round (wrk -t1, pinned to the other CPU):
#   a. req/s for GET /page.html with "Accept-Encoding: gzip" on warren-zip,
#      nginx-static and nginx-gzip, and without it on warren-plain;
#   b. warren-zip GET /page.html without Accept-Encoding (inflate on the fly):
#      req/s and MB/s of decompressed output;
#   c. slow readers: N connections (default 500) each reading GET /big.bin at
#      4 KiB per 50 ms (slow_readers.py) for BENCH_SLOW_SECS; the server's
#      VmRSS sampled every second and its VmHWM (reset first): RSS before,
#      peak, KiB per connection above the baseline.
# Every response is checked with curl once per server before measuring.
#
# Knobs (environment):
#   BENCH_SERVERS       default "warren-zip warren-plain nginx-static nginx-gzip"
#   BENCH_SLOW_SERVERS  slow-reader test, default "warren-zip nginx-static"
#                       (only those also in BENCH_SERVERS run; "" skips it)
#   BENCH_ROUNDS        rounds of alternating runs, default 3
#   BENCH_SECS          seconds per wrk run, default 10
#   BENCH_CONNS         wrk connections, default 50
#   BENCH_SLOW_CONNS    slow-reader connections, default 500
#   BENCH_SLOW_SECS     seconds of slow reading, default 20
#   BENCH_SLOW_CHUNK / BENCH_SLOW_INTERVAL  bytes per recv / sleep after it,
#                       default 4096 / 0.05
#   BENCH_SLOW_RCVBUF   client SO_RCVBUF per connection, default 65536 (0 = kernel)
#   BENCH_OUT           raw results file, default /tmp/warren-zip-bench.txt
#   WARREN_BIN          warren binary, default <repo>/target/release/warren
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1        keep the temp dir (docroot, zip, configs, logs)
#   BENCH_NO_INSTALL=1  never run apt-get
#
# Runs as root (installs packages with apt-get when missing).  All traffic goes
# to 127.0.0.1.  Only the processes it started are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WARREN_BIN=${WARREN_BIN:-$HERE/../../target/release/warren}
ALL_SERVERS="warren-zip warren-plain nginx-static nginx-gzip"
SERVERS=${BENCH_SERVERS:-$ALL_SERVERS}
SLOW_SERVERS=${BENCH_SLOW_SERVERS-warren-zip nginx-static}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-50}
SLOW_CONNS=${BENCH_SLOW_CONNS:-500}
SLOW_SECS=${BENCH_SLOW_SECS:-20}
SLOW_CHUNK=${BENCH_SLOW_CHUNK:-4096}
SLOW_INTERVAL=${BENCH_SLOW_INTERVAL:-0.05}
SLOW_RCVBUF=${BENCH_SLOW_RCVBUF:-65536}
OUT=${BENCH_OUT:-/tmp/warren-zip-bench.txt}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
AE_GZIP="Accept-Encoding: gzip"

die() { echo "zip.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
has() { [[ " $SERVERS " == *" $1 "* ]]; }

[[ -n ${SERVERS// /} ]] || die "BENCH_SERVERS is empty"
for s in $SERVERS; do
  [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in BENCH_SERVERS (known: $ALL_SERVERS)"
done
# Slow-reader test: only servers that also run.
SLOW_RUN=""
for s in $SLOW_SERVERS; do
  [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in BENCH_SLOW_SERVERS"
  has "$s" && SLOW_RUN+="$s "
done
SLOW_RUN=${SLOW_RUN% }
for v in ROUNDS SECS CONNS SLOW_CONNS SLOW_SECS SLOW_CHUNK; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer (got '${!v}')"
done
[[ $SLOW_RCVBUF =~ ^[0-9]+$ ]] || die "BENCH_SLOW_RCVBUF must be a non-negative integer"
[[ $SLOW_INTERVAL =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_SLOW_INTERVAL must be a number of seconds"

# --- warren binary ----------------------------------------------------------
WARREN_EXTRA=()
WARREN_NOTE=""
if has warren-zip || has warren-plain; then
  if [[ ! -x $WARREN_BIN ]]; then
    die "warren binary not found or not executable: $WARREN_BIN
  build it first:   cargo build --release
  or point at one:  WARREN_BIN=/path/to/warren $0
  or run only nginx: BENCH_SERVERS=\"nginx-static nginx-gzip\" $0"
  fi
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  if [[ $("$WARREN_BIN" --help 2>&1 || true) == *--keepalive-timeout* ]]; then
    WARREN_EXTRA+=(--keepalive-timeout 120)
  else
    WARREN_NOTE="warren --help has no --keepalive-timeout: its default keep-alive idle timeout applies"
    log "note: $WARREN_NOTE"
  fi
fi

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$(dirname "$0")/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg wrk wrk
need_pkg curl curl
need_pkg gzip gzip
need_pkg zip zip
need_pkg cmp diffutils
need_pkg taskset util-linux
need_pkg getconf libc-bin
if { has nginx-static || has nginx-gzip; }; then need_nginx; fi
if has nginx-static && [[ $(nginx -V 2>&1) != *http_gzip_static_module* ]]; then
  die "this nginx was built without http_gzip_static_module (nginx -V); install the 'nginx' package or drop nginx-static from BENCH_SERVERS"
fi

PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
else
  log "note: fewer than 2 CPUs; servers and clients are not pinned"
fi
TCK=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, cleanup ------------------------------------------------------
T=$(mktemp -d /tmp/warren-zip-bench.XXXXXX)
DOC=$T/docroot
ZIP=$T/site.zip
mkdir -p "$DOC"
declare -A PID PORT
WRKPID=""
SLOWPID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $SLOWPID ]] && kill "$SLOWPID" 2>/dev/null && wait "$SLOWPID" 2>/dev/null
  [[ -n $WRKPID ]] && kill "$WRKPID" 2>/dev/null && wait "$WRKPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- docroot and archive ----------------------------------------------------
log "generating docroot and site.zip in $T"
python3 - "$DOC" <<'EOF'
import base64, random, sys
doc = sys.argv[1]
rng = random.Random(20240601)

# page.html: ~100 KiB of ordinary-looking HTML (prose, a product table, a
# footer), words and numbers drawn from a seeded generator so the page is
# identical on every run and compresses like real text (not like one line
# repeated).
words = ("the of and to in is for on with as by at from that this be are it or an was "
         "server request response archive header cache connection client stream buffer "
         "latency throughput memory socket kernel thread worker queue timeout deflate "
         "compress inflate entry directory static content encoding transfer length "
         "version release build config module handler route upstream proxy origin "
         "performance benchmark measure report result sample median variance page "
         "file index table column row value number total price order customer region "
         "product item account invoice shipment warehouse supplier catalogue discount").split()
regions = ["North", "South", "East", "West", "Central", "Coastal", "Highland", "Metro"]
cats = ["Hardware", "Software", "Services", "Books", "Garden", "Kitchen", "Audio", "Office"]
adj = ["compact", "deluxe", "basic", "pro", "eco", "smart", "classic", "rugged", "portable"]
noun = ["router", "kettle", "lamp", "desk", "speaker", "drive", "cable", "chair", "monitor", "pump"]

def sentence():
    n = rng.randint(8, 22)
    w = [rng.choice(words) for _ in range(n)]
    if rng.random() < 0.3:
        w.insert(rng.randrange(n), str(rng.randint(2, 99999)))
    s = " ".join(w)
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!"])

def para():
    return "<p>" + " ".join(sentence() for _ in range(rng.randint(3, 7))) + "</p>\n"

out = ['<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
       '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
       '<title>Quarterly catalogue and order report</title>\n'
       '<link rel="stylesheet" href="/static/site.css">\n</head>\n<body>\n'
       '<header class="site-header"><nav><ul>\n']
for c in cats:
    out.append('  <li><a href="/category/%s/">%s</a></li>\n' % (c.lower(), c))
out.append('</ul></nav></header>\n<main id="content">\n')
size = lambda: sum(len(x) for x in out)
target = 100 * 1024
section = 0
while size() < target - 1200:
    section += 1
    out.append('<section id="s%d">\n<h2>Section %d: %s %s</h2>\n'
               % (section, section, rng.choice(adj).title(), rng.choice(noun)))
    for _ in range(rng.randint(2, 4)):
        out.append(para())
    out.append('<table class="orders">\n<thead><tr><th>Order</th><th>Date</th><th>Region</th>'
               '<th>Category</th><th>Product</th><th>Qty</th><th>Price</th><th>Total</th>'
               '</tr></thead>\n<tbody>\n')
    for _ in range(rng.randint(12, 30)):
        qty = rng.randint(1, 250)
        price = rng.randint(99, 99999) / 100
        out.append('<tr class="%s"><td><a href="/orders/%d">#%d</a></td><td>2024-%02d-%02d</td>'
                   '<td>%s</td><td>%s</td><td>%s %s</td><td class="num">%d</td>'
                   '<td class="num">%.2f</td><td class="num">%.2f</td></tr>\n'
                   % (rng.choice(["odd", "even"]), rng.randint(100000, 999999),
                      rng.randint(100000, 999999), rng.randint(1, 12), rng.randint(1, 28),
                      rng.choice(regions), rng.choice(cats), rng.choice(adj), rng.choice(noun),
                      qty, price, qty * price))
        if size() >= target - 1200:
            break
    out.append('</tbody>\n</table>\n</section>\n')
out.append('</main>\n<footer class="site-footer"><p>Generated report. All figures are '
           'illustrative.</p></footer>\n</body>\n</html>\n')
html = "".join(out).encode()
with open(doc + "/page.html", "wb") as f:
    f.write(html)

# big.bin: exactly 10 MiB of base64 text (76-column lines) of seeded random
# bytes: 6 bits of entropy per byte, so deflate gets it to ~0.76, and it is
# not a trivial run of one byte.
n = 10 * 1024 * 1024
raw = rng.getrandbits(8 * (n * 3 // 4 + 3)).to_bytes(n * 3 // 4 + 3, "little")
data = base64.encodebytes(raw)[:n]
assert len(data) == n
with open(doc + "/big.bin", "wb") as f:
    f.write(data)
EOF
gzip -9 -k -n -f "$DOC/page.html"
(cd "$DOC" && zip -9 -q -X "$ZIP" page.html big.bin)
PAGE_SIZE=$(stat -c %s "$DOC/page.html")
PAGE_GZ_SIZE=$(stat -c %s "$DOC/page.html.gz")
BIG_SIZE=$(stat -c %s "$DOC/big.bin")
# Both entries must be deflated (method 8), or there is nothing to pass through.
ZIPINFO=$(python3 - "$ZIP" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
out = []
for name in ("page.html", "big.bin"):
    i = z.getinfo(name)
    if i.compress_type != zipfile.ZIP_DEFLATED:
        sys.exit("zip entry %s is not deflated (method %d)" % (name, i.compress_type))
    out.append("%s=%d/%d(%.3f)" % (name, i.compress_size, i.file_size, i.compress_size / i.file_size))
print(" ".join(out))
EOF
) || die "site.zip check failed: $ZIPINFO"
log "page.html $PAGE_SIZE B, page.html.gz $PAGE_GZ_SIZE B, big.bin $BIG_SIZE B; zip (deflated/size): $ZIPINFO"

write_wrk_report "$T/report.lua"

# --- ports ------------------------------------------------------------------
read -r -a FREE < <(free_ports 4)
i=0
for s in $ALL_SERVERS; do PORT[$s]=${FREE[$i]}; i=$((i + 1)); done

# --- server configs and start ----------------------------------------------
write_nginx_conf() {  # write_nginx_conf NAME -> $T/NAME/nginx.conf
  local s=$1 gz
  mkdir -p "$T/$s/tmp"
  case $s in
    # The .gz sidecar, sent with sendfile like any file; nothing compressed.
    nginx-static) gz="gzip off; gzip_static on;" ;;
    # Compress each response.  text/html is always in gzip_types (listing it
    # again only makes nginx warn); level 1 is the default, set explicitly.
    nginx-gzip) gz="gzip_static off; gzip on; gzip_comp_level 1;" ;;
  esac
  cat > "$T/$s/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $T/$s/nginx.pid;
error_log $T/$s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  open_file_cache max=1024 inactive=60s;
$(nginx_temp_paths "$T/$s/tmp")
  types { text/html html; application/octet-stream bin; }
  default_type application/octet-stream;
  gzip_vary on;
  $gz
  server {
    listen 127.0.0.1:${PORT[$s]};
    root $DOC;
  }
}
EOF
}

start_server() {
  local s=$1
  case $s in
    warren-zip)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$ZIP" --port "${PORT[$s]}" --bind 127.0.0.1 \
        "${WARREN_EXTRA[@]}" > "$T/$s.log" 2>&1 &
      ;;
    warren-plain)
      "${PIN_S[@]}" "$WARREN_BIN" --root "$DOC" --port "${PORT[$s]}" --bind 127.0.0.1 \
        "${WARREN_EXTRA[@]}" > "$T/$s.log" 2>&1 &
      ;;
    nginx-static|nginx-gzip)
      write_nginx_conf "$s"
      "${PIN_S[@]}" nginx -p "$T/$s/" -e "$T/$s/error.log" -c "$T/$s/nginx.conf" > "$T/$s.log" 2>&1 &
      ;;
  esac
  PID[$s]=$!
  # Wait until it answers GET /page.html with 200.
  local ok=0
  for _ in $(seq 100); do
    if ! kill -0 "${PID[$s]}" 2>/dev/null; then break; fi
    if python3 - "${PORT[$s]}" <<'EOF' 2>/dev/null
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/page.html")
r = c.getresponse()
r.read()
sys.exit(0 if r.status == 200 else 1)
EOF
    then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $s output:" >&2; cat "$T/$s.log" "$T/$s/error.log" 2>/dev/null | tail -20 >&2
    die "$s did not start serving 200 for /page.html on 127.0.0.1:${PORT[$s]}"
  fi
  log "$s: pid ${PID[$s]} port ${PORT[$s]}"
}

# --- response checks ---------------------------------------------------------
# fetch NAME URL [curl args...]: body to $T/v.body, headers to $T/v.hdr
fetch() {
  local s=$1 url=$2; shift 2
  rm -f "$T/v.body" "$T/v.hdr"
  curl -sS --max-time 60 -D "$T/v.hdr" -o "$T/v.body" "$@" "$url" \
    || die "$s: curl $* $url failed"
  [[ $(head -1 "$T/v.hdr") == HTTP/1.[01]\ 200* ]] \
    || die "$s: $url answered '$(head -1 "$T/v.hdr" | tr -d '\r')', not 200 (curl $*)"
}
content_encoding() { tr -d '\r' < "$T/v.hdr" | awk 'tolower($1) == "content-encoding:" {print tolower($2)}'; }

# verify_gzip NAME PATH FILE: with "Accept-Encoding: gzip" the body is gzip and
# decodes to FILE; prints the compressed body size.
verify_gzip() {
  local s=$1 path=$2 file=$3 url="http://127.0.0.1:${PORT[$1]}$2" ce size
  fetch "$s" "$url" -H "$AE_GZIP"
  ce=$(content_encoding)
  [[ $ce == gzip ]] || die "$s: GET $path with '$AE_GZIP' has Content-Encoding '${ce:-none}', expected gzip"
  size=$(stat -c %s "$T/v.body")
  gzip -dc < "$T/v.body" > "$T/v.dec" 2>"$T/v.err" \
    || die "$s: GET $path body is not valid gzip: $(cat "$T/v.err")"
  cmp -s "$T/v.dec" "$file" || die "$s: GET $path gunzipped body differs from $(basename "$file")"
  # And as a client that decodes does it (curl --compressed, same request header).
  fetch "$s" "$url" --compressed -H "$AE_GZIP"
  cmp -s "$T/v.body" "$file" || die "$s: curl --compressed GET $path differs from $(basename "$file")"
  echo "$size"
}

# verify_identity NAME PATH FILE: without Accept-Encoding the body is FILE exactly.
verify_identity() {
  local s=$1 path=$2 file=$3 url="http://127.0.0.1:${PORT[$1]}$2" ce
  fetch "$s" "$url"
  ce=$(content_encoding)
  [[ -z $ce || $ce == identity ]] || die "$s: GET $path without Accept-Encoding has Content-Encoding '$ce'"
  cmp -s "$T/v.body" "$file" || die "$s: GET $path without Accept-Encoding differs from $(basename "$file")"
}

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# run_wrk NAME PATH [HEADER] -> sets W_* variables from the report line, and
# W_cpu_s (server CPU seconds during the run)

# record NAME TEST AE PATH ROUND: one raw line from the W_* variables
record() {
  local s=$1 test=$2 ae=$3 path=$4 r=$5 rps mbps cpu_pct
  read -r rps mbps cpu_pct < <(awk -v n="$W_requests" -v b="$W_bytes" -v d="$W_duration_us" -v c="$W_cpu_s" \
    'BEGIN {t = d / 1e6; printf "%.1f %.2f %.0f\n", n / t, b / 1e6 / t, 100 * c / t}')
  echo "server=$s round=$r test=$test path=$path ae=$ae rps=$rps mb_per_s=$mbps cpu_s=$W_cpu_s cpu_pct=$cpu_pct requests=$W_requests bytes=$W_bytes duration_us=$W_duration_us p50_us=$W_p50_us p99_us=$W_p99_us errors=$W_err_connect/$W_err_read/$W_err_write/$W_err_status/$W_err_timeout" >> "$OUT"
  log "round $r $s $test: $rps req/s, $mbps MB/s, server CPU ${cpu_pct}% (p99 ${W_p99_us} us)"
}

{
  echo "# warren zip-archive benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; clients pinned: ${PIN_C[*]:-none}; rounds=$ROUNDS secs=$SECS conns=$CONNS"
  echo "# slow readers: servers='$SLOW_RUN' conns=$SLOW_CONNS secs=$SLOW_SECS chunk=$SLOW_CHUNK interval=$SLOW_INTERVAL rcvbuf=$SLOW_RCVBUF"
  echo "# files: page.html=$PAGE_SIZE page.html.gz=$PAGE_GZ_SIZE big.bin=$BIG_SIZE; site.zip entries (deflated/size): $ZIPINFO"
  if has warren-zip || has warren-plain; then
    echo "# warren: $WARREN_BIN ${WARREN_EXTRA[*]:-} ${WARREN_NOTE:+($WARREN_NOTE)}"
  fi
  if has nginx-static || has nginx-gzip; then echo "# nginx: $(nginx -v 2>&1)"; fi
  echo "# wrk: $(wrk -v 2>&1 | head -1)"
} > "$OUT"

for s in $SERVERS; do start_server "$s"; done

# --- verify every response before measuring ---------------------------------
for s in $SERVERS; do
  case $s in
    warren-plain)
      verify_identity "$s" /page.html "$DOC/page.html"
      echo "server=$s test=verify path=/page.html ae=- body_bytes=$PAGE_SIZE" >> "$OUT"
      log "$s: /page.html without Accept-Encoding = page.html ($PAGE_SIZE B)"
      ;;
    *)
      size=$(verify_gzip "$s" /page.html "$DOC/page.html")
      echo "server=$s test=verify path=/page.html ae=gzip body_bytes=$size" >> "$OUT"
      log "$s: /page.html with '$AE_GZIP' is gzip, $size B, decodes to page.html"
      if [[ $s == warren-zip ]]; then
        verify_identity "$s" /page.html "$DOC/page.html"
        log "$s: /page.html without Accept-Encoding = page.html (inflated)"
      fi
      ;;
  esac
  if [[ " $SLOW_RUN " == *" $s "* ]]; then
    verify_identity "$s" /big.bin "$DOC/big.bin"
    log "$s: /big.bin without Accept-Encoding = big.bin"
  fi
done

# --- slow readers (before the throughput runs: a fresh server's baseline) ---
for s in $SLOW_RUN; do
  pid=${PID[$s]}
  log "$s: $SLOW_CONNS slow readers of /big.bin for ${SLOW_SECS}s"
  sleep 1
  before=$(status_kib "$pid" VmRSS)
  # Reset the peak-RSS mark so VmHWM covers this test only (Linux >= 4.0).
  hwm_note=reset
  echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || hwm_note=not-reset
  t0=$(cpu_ticks "$pid")
  timeout $((SLOW_SECS + 120)) "${PIN_C[@]}" python3 "$HERE/slow_readers.py" "${PORT[$s]}" "$SLOW_CONNS" "$SLOW_SECS" \
    --path /big.bin --chunk "$SLOW_CHUNK" --interval "$SLOW_INTERVAL" --rcvbuf "$SLOW_RCVBUF" \
    > "$T/slow-$s.out" 2> "$T/slow-$s.err" &
  SLOWPID=$!
  peak=$before
  samples=""
  while kill -0 "$SLOWPID" 2>/dev/null; do
    rss=$(status_kib "$pid" VmRSS) || die "$s (pid $pid) exited during the slow-reader test"
    samples+="${samples:+,}$rss"
    (( rss > peak )) && peak=$rss
    sleep 1
  done
  slow_rc=0
  wait "$SLOWPID" || slow_rc=$?
  SLOWPID=""
  t1=$(cpu_ticks "$pid")
  hwm=$(status_kib "$pid" VmHWM)
  [[ $hwm_note == reset ]] && (( hwm > peak )) && peak=$hwm
  sleep 1
  after=$(status_kib "$pid" VmRSS)
  line=$(grep '^SLOWRESULT' "$T/slow-$s.out" || true)
  if [[ -z $line ]]; then
    cat "$T/slow-$s.out" "$T/slow-$s.err" >&2
    die "$s: slow_readers.py gave no result (exit $slow_rc)"
  fi
  cat "$T/slow-$s.err" >&2
  eval "$(echo "${line#SLOWRESULT }" | tr ' ' '\n' | sed 's/^/S_/')"
  per=$(awk -v a="$peak" -v b="$before" -v n="$SLOW_CONNS" 'BEGIN {printf "%.1f", (a - b) / n}')
  cpu_s=$(awk -v t="$((t1 - t0))" -v hz="$TCK" 'BEGIN {printf "%.2f", t / hz}')
  echo "server=$s test=slow slow_secs=$SLOW_SECS rss_before_kib=$before rss_peak_kib=$peak vmhwm_kib=$hwm hwm=$hwm_note rss_after_kib=$after kib_per_conn=$per cpu_s=$cpu_s client_rc=$slow_rc ${line#SLOWRESULT } rss_samples_kib=$samples" >> "$OUT"
  log "$s: RSS $before -> peak $peak KiB (VmHWM $hwm), $per KiB/conn; after close $after KiB; open $S_open/$S_conns, completed $S_completed, closed early $S_closed_early, no status $S_no_status, $S_bytes B received"
  if [[ $slow_rc != 0 ]]; then
    log "WARNING: $s: not every slow reader stayed open with a 200 (client exit $slow_rc)"
  fi
done

# --- throughput, alternating (order rotates each round) ---------------------
read -r -a SLIST <<< "$SERVERS"
n=${#SLIST[@]}
for r in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    s=${SLIST[$(((k + r - 1) % n))]}
    if [[ $s == warren-plain ]]; then
      run_wrk "$s" /page.html
      record "$s" plain - /page.html "$r"
    else
      run_wrk "$s" /page.html "$AE_GZIP"
      record "$s" gzip gzip /page.html "$r"
    fi
    if [[ $s == warren-zip ]]; then
      run_wrk "$s" /page.html
      record "$s" inflate - /page.html "$r"
    fi
  done
done

# --- summary ----------------------------------------------------------------
python3 - "$OUT" "$PAGE_SIZE" "$SERVERS" <<'EOF' | tee -a "$OUT"
import statistics, sys
path, page_size, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rows = []
for line in open(path):
    if line.startswith("server="):
        rows.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
def med(s, test, key):
    v = [float(r[key]) for r in rows if r["server"] == s and r["test"] == test and key in r]
    return statistics.median(v) if v else None
f = lambda x, p=0: "-" if x is None else "%.*f" % (p, x)

print()
print("GET /page.html (%d B), wrk -t1, median of rounds" % page_size)
print("%-22s %-6s %10s %9s %11s %8s %8s" % ("server", "AE", "req/s", "MB/s", "B/response",
                                            "p99 ms", "srv CPU%"))
variants = []
for s in servers:
    variants.append((s, "plain" if s == "warren-plain" else "gzip"))
if "warren-zip" in servers:
    variants.append(("warren-zip", "inflate"))
for s, t in variants:
    req, b = med(s, t, "requests"), med(s, t, "bytes")
    p99 = med(s, t, "p99_us")
    label = s + (" (inflate)" if t == "inflate" else "")
    print("%-22s %-6s %10s %9s %11s %8s %8s" % (
        label, "gzip" if t == "gzip" else "-", f(med(s, t, "rps")), f(med(s, t, "mb_per_s"), 1),
        f(b / req if req and b else None), f(p99 / 1000 if p99 is not None else None, 2),
        f(med(s, t, "cpu_pct"))))
print("(MB/s = bytes wrk read incl. headers / s, 10^6 B: compressed for gzip rows,"
      " decompressed for plain/inflate)")

wz = med("warren-zip", "gzip", "rps")
for name, other in (("warren-zip(gzip)/warren-plain", med("warren-plain", "plain", "rps")),
                    ("warren-zip/nginx-static", med("nginx-static", "gzip", "rps")),
                    ("warren-zip/nginx-gzip", med("nginx-gzip", "gzip", "rps"))):
    if wz and other:
        print("ratio %-30s x%.2f" % (name, wz / other))
wi = med("warren-zip", "inflate", "rps")
if wz and wi:
    print("ratio %-30s x%.2f" % ("warren-zip inflate/gzip", wi / wz))

slow = [r for r in rows if r["test"] == "slow"]
if slow:
    print()
    r0 = slow[0]
    print("slow readers: %s conns x GET /big.bin (no Accept-Encoding), %s s of slow reading"
          % (r0["conns"], r0["slow_secs"]))
    print("%-14s %10s %10s %9s %10s %9s %9s %8s" % ("server", "RSS KiB", "peak KiB", "KiB/conn",
                                                   "after KiB", "open", "MB recvd", "CPU s"))
    for r in slow:
        print("%-14s %10s %10s %9s %10s %9s %9s %8s" % (
            r["server"], r["rss_before_kib"], r["rss_peak_kib"], r["kib_per_conn"],
            r["rss_after_kib"], "%s/%s" % (r["open"], r["conns"]),
            "%.1f" % (int(r["bytes"]) / 1e6), r["cpu_s"]))
    print("(peak = max of 1 s VmRSS samples and VmHWM reset before the test;"
          " KiB/conn = (peak - before) / conns)")
    for r in slow:
        if r["client_rc"] != "0":
            print("WARNING: %s slow readers (client exit %s): open=%s completed=%s closed_early=%s"
                  " errors=%s bad_status=%s no_status=%s"
                  % (r["server"], r["client_rc"], r.get("open"), r.get("completed"),
                     r.get("closed_early"), r.get("errors"), r.get("bad_status"), r.get("no_status")))
bad = ["%s %s" % (r["server"], r["test"]) for r in rows
       if "errors" in r and "/" in r["errors"] and r["errors"].split("/")[3] != "0"]
if bad:
    print("WARNING: non-2xx/3xx responses in: " + ", ".join(sorted(set(bad))))
EOF
echo "raw results: $OUT" >&2
