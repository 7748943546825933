# Sourced by the bench scripts that compare atlasd with a peer from Debian.
# require_packages CMD... -- PKG...: when any CMD is missing, installs the Debian packages PKG
# (with sudo unless root). Needs the caller's log().
require_packages() {
  local missing=0 sudo=()
  while [ "$1" != "--" ]; do
    command -v "$1" >/dev/null || missing=1
    shift
  done
  shift
  [ "$missing" -eq 0 ] && return 0
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  log "installing $*"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "$@" >&2
}
