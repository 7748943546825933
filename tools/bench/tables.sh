#!/usr/bin/env bash
# Creating tables vs writing rows (issue «A million tables», Loading fast): on a 3-node cluster
# (tools/cluster: one zone, Fn=1, formed by joins, so every new table needs an anchor), PUT one
# row into each of TABLES_N new tables, then PUT the same keys again (the tables exist now).
# Both at 1 connection (latency: a creation is a steal, then a commit) and at 16 connections ×
# 16 in flight (throughput). Reports ops/s and p50/p99 of each, and their ratios.
#
# Usage: tools/bench/tables.sh   Environment: TABLES_N (default 20000), ATLAS_BUILD_DIR
# (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
n=${TABLES_N:-20000}

. "$root/tools/bench/lib.sh"
bench_cluster tables 29700

run() {  # label prefix ops connections depth -> "ops/s p50 p99"
  local prefix=$1 ops=$2 c=$3 d=$4
  "$ATLAS_BIN/atlas-bench" "${targets[@]}" --op put -c "$c" -d "$d" -n "$ops" --keys "$ops" \
    --tables "$ops" --table "$prefix" --value-size 100 --timeout-ms 60000 --json |
    python3 -c 'import json,sys
d = json.loads(sys.stdin.read()); l = d["latency_us"]
print(round(d["ops_per_sec"]), round(l["p50"]), round(l["p99"]))'
}

printf '%-22s %10s %8s %8s\n' case ops/s p50_us p99_us
for shape in "1 1" "16 16"; do
  read -r c d <<<"$shape"
  ops=$n; [ "$c" = 1 ] && ops=$((n / 10))
  log "c=$c d=$d: creating $ops tables"
  read -r cs cp50 cp99 <<<"$(run "t${c}x" "$ops" "$c" "$d")"
  log "c=$c d=$d: writing $ops rows into them"
  read -r ws wp50 wp99 <<<"$(run "t${c}x" "$ops" "$c" "$d")"
  printf '%-22s %10s %8s %8s\n' "create c=$c d=$d" "$cs" "$cp50" "$cp99"
  printf '%-22s %10s %8s %8s\n' "write c=$c d=$d" "$ws" "$wp50" "$wp99"
  python3 -c "print('  create/write: ops/s %.2f, p50 %.2f' % ($cs / $ws, $cp50 / $wp50))"
done
