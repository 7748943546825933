#!/usr/bin/env bash
# Transactions against single writes (issue «What applications need from a consistent store»;
# docs/benchmarks.md): one node (tools/cluster); atlas-bench runs TXN_CLIENTS connections, one
# request in flight each, for TXN_SECONDS: first single KEY PUTs of 100 bytes, then TXNs of
# TXN_SIZE such KEY PUTs (--txn-size). Reports latency (p50, p99) and rows written per second of
# each, and the ratios the goal is stated in.
#
# Usage: tools/bench/txn.sh   Environment: TXN_CLIENTS (default 1 and 16: "1 16"),
# TXN_SIZE (10), TXN_SECONDS (5), ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
. "$root/tools/bench/lib.sh"
bench_node txn 29850
size=${TXN_SIZE:-10}

run() {  # <connections> <txn-size>: atlas-bench's JSON line
  "$ATLAS_BIN/atlas-bench" --target "atlas:$sock" --op put -c "$1" -d 1 --txn-size "$2" \
    --duration "${TXN_SECONDS:-5}" --keys 100000 --table "tx$2" --value-size 100 --json
}
for c in ${TXN_CLIENTS:-1 16}; do
  single=$(run "$c" 1)
  txn=$(run "$c" "$size")
  python3 - "$c" "$size" "$single" "$txn" <<'PY'
import json, sys
c, size, single, txn = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
def ms(d, q):
    return d["latency_us"][q] / 1000
for name, d in (("KEY PUT", single), ("TXN of " + size, txn)):
    print("%2s connections, %-10s p50 %.2f ms, p99 %.2f ms, %.0f rows/s, errors %d"
          % (c, name, ms(d, "p50"), ms(d, "p99"), d["rows_per_sec"], d["errors"]))
print("%2s connections: TXN / single: latency (p50) %.2fx, rows/s %.2fx"
      % (c, ms(txn, "p50") / ms(single, "p50"), txn["rows_per_sec"] / single["rows_per_sec"]))
PY
done
