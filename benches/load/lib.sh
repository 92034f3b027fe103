# shellcheck shell=bash
# Shared by the load scripts (sourced; uses their log and die, and their
# globals PID, PORT, T, SECS, CONNS, PIN_C, WRKPID where a helper says so).
# need_pkg COMMAND PACKAGE...: installs PACKAGE with apt-get unless COMMAND
# exists, keeping any system service the package would start stopped.
apt_updated=0
need_pkg() {  # need_pkg COMMAND PACKAGE...
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  [[ ${BENCH_NO_INSTALL:-0} == 1 ]] && die "'$cmd' is missing and BENCH_NO_INSTALL=1"
  [[ $(id -u) == 0 ]] || die "'$cmd' is missing; run as root to install it (apt-get install -y $*)"
  if [[ $apt_updated == 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install -y $*"
  # Packages whose postinst would start a system-wide service: keep it stopped.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || { [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d; die "apt-get install $* failed"; }
  [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after installing $*"
}

# need_nginx: installs nginx unless present: nginx-light where the
# distribution still has it, else nginx (both have the FastCGI and gzip
# modules the scripts use).
need_nginx() {
  command -v nginx >/dev/null 2>&1 && return 0
  if [[ $apt_updated == 0 && ${BENCH_NO_INSTALL:-0} != 1 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2; apt_updated=1
  fi
  # (read the whole output: grep -q under pipefail could see apt-cache's SIGPIPE)
  if [[ $(apt-cache policy nginx-light 2>/dev/null) == *"Candidate: "[0-9]* ]]; then
    need_pkg nginx nginx-light
  else
    need_pkg nginx nginx
  fi
}

# lighttpd_common: the lines every script's lighttpd.conf has (bound to
# 127.0.0.1:PORT[lighttpd], its error log and uploads in $T, limits
# raised for load).
lighttpd_common() {
  cat <<EOF
server.bind = "127.0.0.1"
server.port = ${PORT[lighttpd]}
server.errorlog = "$T/lighttpd-error.log"
server.max-worker = 0
server.max-fds = 16384
server.max-connections = 8192
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 120
server.upload-dirs = ( "$T" )
EOF
}

# nginx_temp_paths DIR: an nginx.conf's http-level temp paths, all below
# DIR (nginx would otherwise want its compiled-in /var/lib/nginx).
nginx_temp_paths() {
  local p
  for p in client_body proxy fastcgi uwsgi scgi; do
    if [[ $p == client_body ]]; then echo "  client_body_temp_path $1/body;"; else echo "  ${p}_temp_path $1/$p;"; fi
  done
}

# write_wrk_report FILE: a wrk Lua script whose done() prints one
# WRKRESULT line with exact request and byte counts and latency.
write_wrk_report() {
  cat > "$1" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%.0f bytes=%.0f duration_us=%.0f err_connect=%.0f err_read=%.0f err_write=%.0f err_status=%.0f err_timeout=%.0f p50_us=%.0f p99_us=%.0f\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# user_ticks PID: the user-space part of cpu_ticks.
user_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12}'; }
# server_ticks SERVER: cpu_ticks of PID[SERVER], or, where the script has
# an associative array CPU_PIDS with an entry for SERVER (a space-separated
# list of pids, e.g. a master and its workers), their sum.
# server_ticks SERVER user: the same for user time only.
server_ticks() {
  local pids=${PID[$1]} p sum=0 count=cpu_ticks
  [[ ${2:-} == user ]] && count=user_ticks
  if declare -p CPU_PIDS >/dev/null 2>&1 && [[ -n ${CPU_PIDS[$1]:-} ]]; then pids=${CPU_PIDS[$1]}; fi
  for p in $pids; do sum=$((sum + $($count "$p"))); done
  echo "$sum"
}
# rss_kib PID: resident set, KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# stop_server NAME: SIGTERM to PID[NAME], SIGKILL after 5 s, reaped, and
# forgotten.
stop_server() {
  local s=$1
  [[ -n ${PID[$s]:-} ]] || return 0
  kill "${PID[$s]}" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "${PID[$s]}" 2>/dev/null || break; sleep 0.1; done
  kill -9 "${PID[$s]}" 2>/dev/null || true
  wait "${PID[$s]}" 2>/dev/null || true
  unset "PID[$s]"
}

# stop_servers_and_exit RC: what every script's EXIT trap ends with: each
# server in PID is stopped (stop_server); the temp dir $T goes unless
# BENCH_KEEP=1; exits with RC.
stop_servers_and_exit() {
  local rc=$1 s
  for s in "${!PID[@]}"; do kill "${PID[$s]}" 2>/dev/null; done
  for s in "${!PID[@]}"; do stop_server "$s"; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "temp dir kept: $T" >&2; else rm -rf "$T"; fi
  exit "$rc"
}

# run_wrk SERVER PATH [HEADER]: one wrk run (WRK_THREADS threads, default 1) against PORT[SERVER] (client
# pinned by PIN_C) over WRK_SCHEME (http unless set: https), its
# WRKRESULT line set as W_* variables, the server's CPU seconds during the
# run (server_ticks) as W_cpu_s, its user-space part as W_ucpu_s, and wrk's own (user + system, from bash's `time`) as
# W_ccpu_s.
run_wrk() {
  local s=$1 path=$2 hdr=${3:-} line t0 t1 u0 u1
  local h=()
  [[ -n $hdr ]] && h=(-H "$hdr")
  t0=$(server_ticks "$s")
  u0=$(server_ticks "$s" user)
  (
    TIMEFORMAT='%3U %3S'
    time timeout $((SECS + 60)) "${PIN_C[@]}" wrk -t"${WRK_THREADS:-1}" -c"$CONNS" -d"${SECS}s" --latency \
      "${h[@]}" -s "$T/report.lua" "${WRK_SCHEME:-http}://127.0.0.1:${PORT[$s]}$path" > "$T/wrk.out" 2>&1
  ) 2> "$T/wrk.time" &
  WRKPID=$!
  wait "$WRKPID" || true
  WRKPID=""
  t1=$(server_ticks "$s")
  u1=$(server_ticks "$s" user)
  cat "$T/wrk.out" >> "$T/wrk-$s.log"
  line=$(grep '^WRKRESULT' "$T/wrk.out" || true)
  [[ -n $line ]] || die "wrk against $s $path gave no result (see $T/wrk-$s.log; BENCH_KEEP=1 keeps it)"
  eval "$(echo "${line#WRKRESULT }" | tr ' ' '\n' | sed 's/^/W_/')"
  # shellcheck disable=SC2034  # read by the scripts that source this
  W_cpu_s=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}')
  # shellcheck disable=SC2034
  W_ucpu_s=$(awk -v t="$((u1 - u0))" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}')
  # shellcheck disable=SC2034
  W_ccpu_s=$(client_cpu "$T/wrk.time")
}

# client_cpu FILE: the CPU seconds (user + system) bash's `time` wrote
# to FILE for a client command and everything it waited for.
client_cpu() { awk '{printf "%.3f", $1 + $2}' "$1"; }
