# Shared by compare.sh and zip.sh (sourced; uses their log and die).
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
