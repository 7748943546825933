# Shared by the cluster benchmarks (sourced): a scratch directory removed at exit (kept with
# BENCH_KEEP=1) holding a 3-node cluster (tools/cluster: one zone, Fn=1), and atlas-bench's
# --target arguments for it; or one node (bench_node). Expects $root (the repository).
#   bench_cluster <label> <base-port>   sets $tmp and $targets; log() prints "[label] ..."
bench_label=bench
log() { printf '[%s] %s\n' "$bench_label" "$*" >&2; }

bench_cleanup() {
  local keep=()
  [ "${BENCH_KEEP:-0}" = 1 ] && keep=(--keep)
  "$root/tools/cluster" down --dir "$tmp/c" "${keep[@]}" >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}

bench_cluster() {
  bench_label=$1
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-$1.XXXXXX")
  trap bench_cleanup EXIT
  "$root/tools/cluster" up --zones 1 --nodes-per-zone 3 --fn 1 --dir "$tmp/c" --base-port "$2" >&2
  targets=()
  for i in 1 2 3; do targets+=(--target "atlas:$tmp/c/n$i/atlas.sock"); done
}

# One node (tools/cluster: one zone, one node): sets $tmp and $sock.
#   bench_node <label> <base-port>
bench_node() {
  bench_label=$1
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-$1.XXXXXX")
  trap bench_cleanup EXIT
  "$root/tools/cluster" up --zones 1 --nodes-per-zone 1 --dir "$tmp/c" --base-port "$2" >&2
  sock=$tmp/c/n1/atlas.sock
}

# The WAN lab (tools/wan/lab) in a scratch directory removed at exit, as lab 9: sets $bin and
# $work (the lab in $work/lab) and brings up one atlasd in each of the zones named.
#   wan_lab_up <zone,zone,...>
lab() { "$root/tools/wan/lab" "$@"; }
wan_lab_up() {
  bin=${ATLAS_BIN:-$root/build/bin}
  export ATLAS_BIN=$bin
  work=$(mktemp -d /tmp/atlas-wan-lab.XXXXXX)
  trap 'lab down --dir "$work/lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  lab up --dir "$work/lab" --zones "$1" --lab-id 9 >&2
}
