#!/usr/bin/env bash
# RocksDB's memory budget (issue «A million tables», docs/storage.md §Memory): one atlasd node
# takes MEMORY_MB of 100,000-byte values (8 connections), then reads a sample of them back; we
# report its resident memory (VmRSS, peak VmHWM) and RocksDB's own figures from /metrics, once
# per budget in MEMORY_BUDGETS (bytes; "default" = the built-in 256 MiB), on a fresh node each.
#
# Usage: tools/bench/memory.sh   Environment: MEMORY_MB (default 512), MEMORY_BUDGETS (default
# "default 4294967296"), ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1 keeps the data.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${ATLAS_BUILD_DIR:-$root/build}/bin
mb=${MEMORY_MB:-512}
budgets=${MEMORY_BUDGETS:-default 4294967296}
value=100000
ops=$((mb * 1024 * 1024 / value))

log() { printf '[memory] %s\n' "$*" >&2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-memory.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

status_mb() { awk -v k="$1:" '$1 == k {print int($2 / 1024)}' "/proc/$pid/status"; }
metric_mb() {
  curl -sk "https://127.0.0.1:29581/metrics" | awk -v k="$1" '$1 == k {print int($2 / 1048576)}'
}

printf '%-12s %8s %8s %8s %10s %10s %9s\n' \
  budget rss_mb peak_mb data_mb cache_mb memtab_mb readers_mb
for budget in $budgets; do
  dir=$tmp/$budget
  mkdir -p "$dir"
  args=(--data-dir "$dir" --listen 127.0.0.1:29580 --http-listen 127.0.0.1:29581)
  [ "$budget" != default ] && args+=(--memory-budget-bytes "$budget")
  "$bin/atlasd" "${args[@]}" >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -S "$dir/atlas.sock" ] && break; sleep 0.1; done
  log "budget $budget: writing $mb MB ($ops values of $value bytes)"
  "$bin/atlas-bench" --socket "$dir/atlas.sock" --op put -c 8 -n "$ops" --keys "$ops" \
    --value-size $value --tables 32 --table mem >/dev/null
  "$bin/atlas-bench" --socket "$dir/atlas.sock" --op get -c 8 -n "$ops" --keys "$ops" \
    --tables 32 --table mem --no-preload >/dev/null
  printf '%-12s %8s %8s %8s %10s %10s %9s\n' "$budget" "$(status_mb VmRSS)" "$(status_mb VmHWM)" \
    "$(du -sm "$dir" | cut -f1)" "$(metric_mb atlas_rocksdb_block_cache_bytes)" \
    "$(metric_mb atlas_rocksdb_memtable_bytes)" "$(metric_mb atlas_rocksdb_table_readers_bytes)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
