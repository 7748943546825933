#!/usr/bin/env bash
# Side-by-side PUT throughput and latency of two (or more) atlasd builds on this machine,
# alternating so that the machine's drift hits every build alike. Each round starts a fresh
# cluster of NODES nodes in one zone (tools/cluster; NODES=1: a single node, Fn=Fz=0;
# otherwise Fn=1, Fz=0, the clients on node 1, the table's owner) and runs
# `atlas-bench --op put` at one connection and at 64 connections (100-byte values).
#
# Usage: tools/bench/put-ab.sh BUILD_DIR... (each with bin/{atlasd,atlas,atlas-bench})
# Environment: NODES (default 3), ROUNDS (default 2), OPS (default 40000 at c=64, a tenth at c=1).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
nodes=${NODES:-3}
rounds=${ROUNDS:-2}
ops=${OPS:-40000}
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..." >&2; exit 2; }
fn=$([ "$nodes" = 1 ] && echo 0 || echo 1)

one_round() {  # build_dir
  local bin=$1/bin tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-put-ab.XXXXXX")
  ATLAS_BIN=$bin "$root/tools/cluster" up --zones 1 --nodes-per-zone "$nodes" --fn "$fn" \
    --fz 0 --dir "$tmp/atlas" --base-port 27400 >/dev/null 2>&1
  local sock=$tmp/atlas/n1/atlas.sock
  "$bin/atlas" --socket "$sock" -c 'KEY PUT bench.warm x' >/dev/null
  for c in 1 64; do
    local n=$((c == 1 ? ops / 10 : ops))
    "$bin/atlas-bench" --socket "$sock" --op put -c "$c" -d 1 -n "$n" --keys 10000 \
      --value-size 100 --table bench --json 2>/dev/null | tail -1 |
      python3 -c 'import json, sys
d = json.load(sys.stdin); l = d["latency_us"]
print("%-40s c=%-3s %9.0f ops/s  p50 %7.0f us  p99 %7.0f us" % (sys.argv[1], sys.argv[2],
      d["ops_per_sec"], l["p50"], l["p99"]))' "$1" "$c"
  done
  ATLAS_BIN=$bin "$root/tools/cluster" down --dir "$tmp/atlas" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}

for _ in $(seq "$rounds"); do
  for build in "$@"; do one_round "$build"; done
done
