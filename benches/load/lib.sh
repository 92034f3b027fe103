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
