#!/usr/bin/env bash
# shellcheck disable=SC2154  # the L_* variables are set by eval in run_load
# WebSocket load benchmark: warren's echo protocol against a one-thread
# tokio-tungstenite echo server (tokio-echo, benches/ws_load), on loopback only.
#
# Builds warren (cargo build --release at the root) and benches/ws_load, then
# measures, per server:
#   - echo round trips with ws-load: C connections (default 100), each sending
#     one binary message of S bytes and waiting for its echo before the next,
#     for S in 16, 1024 and 65536; messages/s, MiB/s of payload (one
#     direction), p50/p99 latency, server CPU use; median over rounds;
#   - resident memory (KiB) per idle WebSocket connection, 1000 connections
#     opened with ws-idle (handshake plus one 16-byte echo each), each server
#     freshly started; also for tokio-echo with a 4 KiB read buffer, and for
#     1000 idle HTTP keep-alive connections on warren (idle_conns.py).
# warren runs its default site (`warren --port P`), whose WebSocket echo
# protocol takes upgrades that name no subprotocol.  Servers run pinned to one
# CPU, the clients to the other.  Runs alternate between servers, and the
# order flips every round.
#
# Knobs (environment):
#   BENCH_SERVERS      servers to run, default "warren tokio-echo"
#   BENCH_SIZES        message sizes in bytes, default "16 1024 65536"
#   BENCH_ROUNDS       rounds of alternating runs, default 3
#   BENCH_SECS         measured seconds per ws-load run (plus 1 s warm-up), default 10
#   BENCH_CONNS        ws-load connections, default 100
#   BENCH_IDLE         idle connections for the memory tests, default 1000
#   BENCH_IDLE_TESTS   memory tests, default "warren-ws warren-http tokio-echo tokio-echo-rb4k"
#                      ("" skips them; a test runs only if its server is in BENCH_SERVERS)
#   BENCH_WS_PATH      URL path of the upgrades, default /
#   BENCH_PROTOCOL     subprotocol to ask for (and for tokio-echo to select), default none
#   BENCH_OUT          raw results file, default /tmp/warren-ws-bench.txt
#   BENCH_BUILD=0      do not run cargo build (use the binaries as they are)
#   WARREN_BIN         warren binary, default <repo>/target/release/warren
#   WS_LOAD_DIR        ws-load, ws-idle and tokio-echo, default <repo>/benches/ws_load/target/release
#   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  CPUs to pin to, default 0 / 1
#   BENCH_KEEP=1       keep the temp dir (logs) for inspection
#   BENCH_NO_INSTALL=1 never run apt-get
#
# All traffic goes to 127.0.0.1.  Only the processes it started are stopped,
# by PID.  Runs as root only to install missing packages (python3, taskset).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WARREN_BIN=${WARREN_BIN:-$REPO/target/release/warren}
WS_LOAD_DIR=${WS_LOAD_DIR:-$REPO/benches/ws_load/target/release}
ALL_SERVERS="warren tokio-echo"
ALL_IDLE="warren-ws warren-http tokio-echo tokio-echo-rb4k"
SERVERS=${BENCH_SERVERS:-$ALL_SERVERS}
SIZES=${BENCH_SIZES:-16 1024 65536}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-100}
IDLE=${BENCH_IDLE:-1000}
IDLE_TESTS=${BENCH_IDLE_TESTS-$ALL_IDLE}
WS_PATH=${BENCH_WS_PATH:-/}
PROTOCOL=${BENCH_PROTOCOL:-}
OUT=${BENCH_OUT:-/tmp/warren-ws-bench.txt}
BUILD=${BENCH_BUILD:-1}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}

die() { echo "ws.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
has() { [[ " $SERVERS " == *" $1 "* ]]; }

[[ -n ${SERVERS// /} ]] || die "BENCH_SERVERS is empty"
for s in $SERVERS; do
  [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in BENCH_SERVERS (known: $ALL_SERVERS)"
done
IDLE_RUN=""
for t in $IDLE_TESTS; do
  [[ " $ALL_IDLE " == *" $t "* ]] || die "unknown test '$t' in BENCH_IDLE_TESTS (known: $ALL_IDLE)"
  case $t in warren-*) has warren && IDLE_RUN+="$t " ;; *) has tokio-echo && IDLE_RUN+="$t " ;; esac
done
IDLE_RUN=${IDLE_RUN% }
for v in ROUNDS SECS CONNS IDLE; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer (got '${!v}')"
done
for s in $SIZES; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES: '$s' is not a positive integer"
done
[[ $WS_PATH == /* ]] || die "BENCH_WS_PATH must start with /"
PROTO_ARGS=()
[[ -n $PROTOCOL ]] && PROTO_ARGS=(--protocol "$PROTOCOL")

# --- tools ------------------------------------------------------------------
# shellcheck source=benches/load/lib.sh
source "$(dirname "$0")/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
need_pkg python3 python3
need_pkg taskset util-linux
need_pkg getconf libc-bin

# --- build --------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set BENCH_BUILD=0 and point WARREN_BIN and WS_LOAD_DIR at built binaries)"
  if has warren; then
    log "cargo build --release (warren)"
    (cd "$REPO" && cargo build --release) >&2 || die "building warren failed"
  fi
  log "cargo build --release --manifest-path benches/ws_load/Cargo.toml"
  cargo build --release --manifest-path "$REPO/benches/ws_load/Cargo.toml" >&2 \
    || die "building benches/ws_load failed"
fi
for b in ws-load ws-idle tokio-echo; do
  [[ -x $WS_LOAD_DIR/$b ]] || die "$WS_LOAD_DIR/$b not found; build it: cargo build --release --manifest-path benches/ws_load/Cargo.toml"
done
WS_LOAD_DIR=$(cd "$WS_LOAD_DIR" && pwd)

WARREN_EXTRA=()
if has warren; then
  [[ -x $WARREN_BIN ]] || die "warren binary not found or not executable: $WARREN_BIN
  build it: cargo build --release   (or run only the peer: BENCH_SERVERS=tokio-echo $0)"
  WARREN_BIN=$(cd "$(dirname "$WARREN_BIN")" && pwd)/$(basename "$WARREN_BIN")
  # Keep idle HTTP connections open through the memory test.
  if [[ $("$WARREN_BIN" --help 2>&1 || true) == *--keepalive-timeout* ]]; then
    WARREN_EXTRA+=(--keepalive-timeout 120)
  fi
fi

PIN_S=(); PIN_C=()
if [[ $(nproc) -ge 2 ]]; then
  PIN_S=(taskset -c "$SCPU"); PIN_C=(taskset -c "$CCPU")
else
  log "note: fewer than 2 CPUs; servers and clients are not pinned"
fi
TCK=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dir, cleanup --------------------------------------------------------
T=$(mktemp -d /tmp/warren-ws-bench.XXXXXX)
declare -A PID PORT
COPID=""
CLIPID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $COPID ]] && kill "$COPID" 2>/dev/null && wait "$COPID" 2>/dev/null
  [[ -n $CLIPID ]] && kill "$CLIPID" 2>/dev/null && wait "$CLIPID" 2>/dev/null
  stop_servers_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ws_url() { echo "ws://127.0.0.1:${PORT[$1]}$WS_PATH"; }

# start_server NAME KIND [EXTRA ARGS]: KIND warren or tokio-echo; waits until
# it answers (HTTP 200 for /, or its "listening" line), then checks one
# WebSocket echo with ws-idle -n 1.
start_server() {
  local name=$1 kind=$2; shift 2
  local port
  port=$(free_ports 1)
  PORT[$name]=$port
  case $kind in
    warren)
      "${PIN_S[@]}" "$WARREN_BIN" --port "$port" --bind 127.0.0.1 "${WARREN_EXTRA[@]}" "$@" \
        > "$T/$name.log" 2>&1 &
      ;;
    tokio-echo)
      "${PIN_S[@]}" "$WS_LOAD_DIR/tokio-echo" "127.0.0.1:$port" "${PROTO_ARGS[@]}" "$@" \
        > "$T/$name.log" 2>&1 &
      ;;
  esac
  PID[$name]=$!
  local ok=0
  for _ in $(seq 100); do
    kill -0 "${PID[$name]}" 2>/dev/null || break
    if [[ $kind == tokio-echo ]]; then
      grep -q listening "$T/$name.log" && { ok=1; break; }
    elif python3 - "$port" <<'EOF' 2>/dev/null
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
    then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok != 1 ]]; then
    echo "--- $name output:" >&2; tail -20 "$T/$name.log" >&2
    die "$name did not start on 127.0.0.1:$port"
  fi
  local probe
  probe=$(timeout 30 "$WS_LOAD_DIR/ws-idle" "$(ws_url "$name")" -n 1 -t 0 --timeout 5 \
    "${PROTO_ARGS[@]}" < /dev/null 2>&1 || true)
  if [[ $probe != *"dropped_while_idle 0"* ]]; then
    echo "--- $name output:" >&2; tail -20 "$T/$name.log" >&2
    die "$name: no WebSocket echo at $(ws_url "$name")${PROTOCOL:+ (subprotocol $PROTOCOL)}: ${probe//$'\n'/ }"
  fi
  log "$name: pid ${PID[$name]} port $port"
}

stop_server() {
  local name=$1 pid=${PID[$1]}
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

{
  echo "# warren WebSocket load $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# servers pinned: ${PIN_S[*]:-none}; clients pinned: ${PIN_C[*]:-none}; rounds=$ROUNDS secs=$SECS conns=$CONNS sizes=\"$SIZES\" idle=$IDLE path=$WS_PATH protocol=${PROTOCOL:-none}"
  has warren && echo "# warren: $WARREN_BIN ${WARREN_EXTRA[*]:-} ($(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown commit))"
  echo "# tokio-echo: $(awk '/^name = "tokio-tungstenite"/ {getline; print "tokio-tungstenite", $3}' \
    "$REPO/benches/ws_load/Cargo.lock" 2>/dev/null | tr -d '"'), one thread, default WebSocketConfig"
} > "$OUT"

# --- memory per idle connection, each on a freshly started server ------------
for t in $IDLE_RUN; do
  case $t in
    warren-ws|warren-http) start_server "$t" warren ;;
    tokio-echo) start_server "$t" tokio-echo ;;
    tokio-echo-rb4k) start_server "$t" tokio-echo --read-buffer 4096 ;;
  esac
  pid=${PID[$t]}
  log "$t: $IDLE idle connections"
  sleep 0.5
  before=$(rss_kib "$pid")
  if [[ $t == warren-http ]]; then
    coproc IDLEC { exec "${PIN_C[@]}" python3 "$HERE/idle_conns.py" "${PORT[$t]}" "$IDLE" 120 2>&1; }
  else
    coproc IDLEC { exec "${PIN_C[@]}" "$WS_LOAD_DIR/ws-idle" "$(ws_url "$t")" -n "$IDLE" -t 120 "${PROTO_ARGS[@]}" 2>&1; }
  fi
  COPID=$IDLEC_PID
  rd=${IDLEC[0]}; wr=${IDLEC[1]}
  line=""
  read -r -t 90 -u "$rd" line || true
  [[ $line == ready ]] || die "$t: idle-connection client failed: ${line:-no answer in 90 s}"
  sleep 1
  after=$(rss_kib "$pid")
  exec {wr}>&-
  tail=""
  read -r -t 30 -u "$rd" tail || true
  wait "$COPID" 2>/dev/null || true
  COPID=""
  per=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f", (a - b) / n}')
  dropped=$(sed -n 's/^closed [0-9]* dropped_while_idle \([0-9]*\)$/\1/p' <<< "$tail")
  echo "test=idle name=$t conns=$IDLE rss_before_kib=$before rss_after_kib=$after kib_per_conn=$per dropped_while_idle=${dropped:-?}" >> "$OUT"
  log "$t: RSS $before -> $after KiB, $per KiB/conn (${tail:-})"
  stop_server "$t"
done

# --- echo load, alternating -----------------------------------------------------
for s in $SERVERS; do start_server "$s" "$s"; done

# run_load SERVER SIZE -> sets L_* from ws-load's line, SRV_CPU (fraction of
# one CPU over the whole ws-load run, warm-up included)
run_load() {
  local s=$1 size=$2 line t0 t1 w0 w1
  t0=$(cpu_ticks "${PID[$s]}"); w0=$(date +%s%N)
  timeout $((SECS + 60)) "${PIN_C[@]}" "$WS_LOAD_DIR/ws-load" "$(ws_url "$s")" \
    -c "$CONNS" -s "$size" -d "$SECS" "${PROTO_ARGS[@]}" > "$T/load.out" 2>&1 &
  CLIPID=$!
  wait "$CLIPID" || true
  CLIPID=""
  t1=$(cpu_ticks "${PID[$s]}"); w1=$(date +%s%N)
  cat "$T/load.out" >> "$T/load-$s.log"
  line=$(grep '^ws-load: ' "$T/load.out" || true)
  [[ -n $line ]] || die "ws-load against $s (size $size) gave no result: $(tail -3 "$T/load.out")"
  grep '^ws-load: error' "$T/load.out" | head -3 | sed "s/^/   $s: /" >&2 || true
  line=${line#ws-load: }
  line=${line//msgs\/s=/msgs_per_s=}
  line=${line//MiB\/s=/mib_per_s=}
  eval "$(echo "$line" | tr ' ' '\n' | sed 's/^/L_/')"
  SRV_CPU=$(awk -v t="$((t1 - t0))" -v hz="$TCK" -v w="$((w1 - w0))" 'BEGIN {printf "%.2f", (t / hz) / (w / 1e9)}')
}

for r in $(seq "$ROUNDS"); do
  order=$SERVERS
  (( r % 2 == 0 )) && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for size in $SIZES; do
    for s in $order; do
      run_load "$s" "$size"
      echo "test=echo name=$s round=$r size=$size msgs_per_s=$L_msgs_per_s mib_per_s=$L_mib_per_s p50_us=$L_p50_us p90_us=$L_p90_us p99_us=$L_p99_us max_us=$L_max_us msgs=$L_msgs errors=$L_errors conns=$L_conns client_cpu=$L_client_cpu server_cpu=$SRV_CPU" >> "$OUT"
      log "round $r $s ${size} B: $L_msgs_per_s msg/s, $L_mib_per_s MiB/s, p50 $L_p50_us us, p99 $L_p99_us us, server CPU $SRV_CPU, client CPU $L_client_cpu, errors $L_errors"
    done
  done
done

# --- summary --------------------------------------------------------------------
python3 - "$OUT" "$SERVERS" "$SIZES" "$IDLE_RUN" <<'EOF' | tee -a "$OUT"
import statistics, sys
path, servers, sizes, idle_tests = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
rows = []
for line in open(path):
    if line.startswith("test="):
        rows.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
def med(name, size, key):
    v = [float(r[key]) for r in rows if r["test"] == "echo" and r["name"] == name and r["size"] == size]
    return statistics.median(v) if v else None
keys = ("msgs_per_s", "mib_per_s", "p50_us", "p99_us", "server_cpu", "client_cpu")
def f(x, p):
    return "-" if x is None else "%.*f" % (p, x)
if servers and sizes and any(r["test"] == "echo" for r in rows):
    print()
    print("%-8s %-20s %11s %9s %8s %8s %8s %11s %8s" % ("size B", "server", "msgs/s", "MiB/s", "p50 us",
          "p99 us", "srv CPU", "srv us/msg", "cli CPU"))
    for size in sizes:
        res = {}
        for s in servers:
            m = [med(s, size, k) for k in keys]
            # server CPU time per echoed message, from its average CPU use and rate
            m.append(m[4] * 1e6 / m[0] if m[0] and m[4] is not None else None)
            res[s] = m
            print("%-8s %-20s %11s %9s %8s %8s %8s %11s %8s" % (size, s, f(m[0], 0), f(m[1], 1), f(m[2], 0),
                  f(m[3], 0), f(m[4], 2), f(m[6], 2), f(m[5], 2)))
        if "warren" in res and "tokio-echo" in res:
            w, p = res["warren"], res["tokio-echo"]
            def ratio(i):
                return "-" if not w[i] or not p[i] else "x%.2f" % (w[i] / p[i])
            print("%-8s %-20s %11s %9s %8s %8s %8s %11s" % (size, "warren/tokio-echo", ratio(0), ratio(1),
                  ratio(2), ratio(3), ratio(4), ratio(6)))
    print("(msgs/s, MiB/s: higher is better; latency and srv us/msg: lower is better; srv/cli CPU:"
          " share of one core, cli CPU near 1.00 means the client was the limit)")
idle = {r["name"]: r for r in rows if r["test"] == "idle"}
if idle:
    labels = {"warren-ws": "warren, WebSocket", "warren-http": "warren, HTTP keep-alive",
              "tokio-echo": "tokio-echo, WebSocket", "tokio-echo-rb4k": "tokio-echo --read-buffer 4096"}
    print()
    print("%-32s %10s %22s %18s" % ("%s idle connections" % next(iter(idle.values()))["conns"], "KiB/conn",
          "RSS KiB before->after", "dropped while idle"))
    for t in idle_tests:
        if t in idle:
            r = idle[t]
            print("%-32s %10s %22s %18s" % (labels[t], r["kib_per_conn"],
                  r["rss_before_kib"] + "->" + r["rss_after_kib"], r["dropped_while_idle"]))
    w = idle.get("warren-ws")
    for peer in ("tokio-echo", "tokio-echo-rb4k"):
        if w and peer in idle and float(idle[peer]["kib_per_conn"]) > 0:
            print("warren WebSocket / %-16s x%.3f" % (peer, float(w["kib_per_conn"]) / float(idle[peer]["kib_per_conn"])))
bad = ["%s %s B round %s (%s errors)" % (r["name"], r["size"], r["round"], r["errors"])
       for r in rows if r["test"] == "echo" and r["errors"] != "0"]
bad += ["%s idle (%s dropped)" % (r["name"], r["dropped_while_idle"]) for r in rows
        if r["test"] == "idle" and r["dropped_while_idle"] != "0"]
if bad:
    print("WARNING: errors or dropped connections in: " + "; ".join(bad))
EOF
echo "raw results: $OUT" >&2
