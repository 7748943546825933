#!/usr/bin/env bash
# Catch-up time of a new node (issue «Cluster» report): a 3-node cluster (tools/cluster, one
# zone, Fn=1) is loaded with CATCHUP_MB of data spread over CATCHUP_TABLES tables (values of
# 100,000 bytes, stored as blobs), then a fourth node joins; we time from its start until its
# /health says ACTIVE and until it holds every row itself (TABLE INFO rows= on node 4).
#
# Foreground: 100-byte PUTs at CATCHUP_FG_RATE a second (default 200) through node 2, for
# CATCHUP_FG_S seconds (default 15) just before the join (idle) and again from node 4's start
# (during): their p99s are compared (issue «A million tables»: during ≤ 2× idle).
#
# Usage: tools/bench/catchup.sh   Environment: CATCHUP_MB (default 1024), CATCHUP_TABLES
# (default 32), CATCHUP_FG_RATE, CATCHUP_FG_S, ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1
# keeps the data.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${ATLAS_BUILD_DIR:-$root/build}
mb=${CATCHUP_MB:-1024}
tables=${CATCHUP_TABLES:-32}
value=100000
rows=$(( (mb * 1024 * 1024 / value + tables - 1) / tables ))
export ATLAS_BIN=$build_dir/bin

log() { printf '[catchup] %s\n' "$*" >&2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-catchup.XXXXXX")
cleanup() {
  keep=(); [ "${BENCH_KEEP:-0}" = 1 ] && keep=(--keep)
  "$root/tools/cluster" down --dir "$tmp/c" "${keep[@]}" >/dev/null 2>&1 || true
  kill "${n4:-}" 2>/dev/null || true; wait "${n4:-}" 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

base=29400
"$root/tools/cluster" up --zones 1 --nodes-per-zone 3 --fn 1 --dir "$tmp/c" --base-port $base >&2
sock=$tmp/c/n1/atlas.sock
log "loading $mb MB: $tables tables x $rows rows x $value bytes"
t0=$(date +%s.%N)
for ((t = 0; t < tables; t++)); do
  # A GET run first PUTs every key once (its preload; it exits non-zero if any PUT failed), so
  # each table holds exactly $rows distinct rows.
  out=$("$ATLAS_BIN/atlas-bench" --socket "$sock" --op get -n 1 --keys "$rows" \
    --value-size $value --table "bulk$t" --json)
  errors=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$out")
  [ "$errors" = 0 ] || { log "load of bulk$t had $errors errors: $out"; exit 1; }
done
log "loaded in $(python3 -c "import time; print(round(time.time() - $t0, 1))") s; data dirs: $(du -sh "$tmp/c/n1" | cut -f1) on node 1"

# The rows each table has, as node 1 counts them.
declare -a want
for ((t = 0; t < tables; t++)); do
  want[$t]=$("$ATLAS_BIN/atlas" --socket "$sock" -c "COUNT bulk$t" | head -1)
done
# The foreground load: the same open-loop PUTs idle, then during the join (in the background).
fg() {
  "$ATLAS_BIN/atlas-bench" --socket "$tmp/c/n2/atlas.sock" --op put --table fg --keys 1000 \
    --value-size 100 -c 4 --rate "${CATCHUP_FG_RATE:-200}" --duration "${CATCHUP_FG_S:-15}" \
    --ops 100000000 --json |
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); l=j["latency_us"]
print("p50 %s us, p99 %s us, %s PUTs, %s errors" % (l["p50"], l["p99"], j["ops"], j["errors"]))'
}
fg_idle=$(fg)
log "foreground idle: $fg_idle"
# The senders' memory: each old node's RSS now, and its peak from here on (writing 5 to
# clear_refs resets the kernel's high-water mark, VmHWM).
declare -a rss0
for i in 1 2 3; do
  p=$(cat "$tmp/c/n$i.pid")
  rss0[$i]=$(awk '/VmRSS/ {print int($2 / 1024)}' /proc/$p/status)
  echo 5 >/proc/$p/clear_refs 2>/dev/null || log "cannot reset node $i's peak RSS (not root?)"
done
fg >"$tmp/fg-during" &
fg_pid=$!
start=$(date +%s.%N)
"$ATLAS_BIN/atlasd" --data-dir "$tmp/n4" --region zone1 --node-name n4 \
  --listen 127.0.0.1:$((base + 4)) --http-listen 127.0.0.1:$((base + 104)) \
  --join https://127.0.0.1:$((base + 101)) --join-token-file "$tmp/c/n1/join-token" \
  >"$tmp/n4.log" 2>&1 &
n4=$!
until curl -sk --max-time 2 "https://127.0.0.1:$((base + 104))/health" 2>/dev/null | grep -q '"ACTIVE"'; do
  [ "$(date +%s)" -lt $(( ${start%.*} + ${CATCHUP_TIMEOUT_S:-1800} )) ] || { log "node 4 never ACTIVE"; exit 1; }
  kill -0 $n4 || { tail "$tmp/n4.log"; exit 1; }
  sleep 0.2
done
active=$(python3 -c "import time; print(round(time.time() - $start, 1))")
missing=1
deadline=$(( $(date +%s) + ${CATCHUP_TIMEOUT_S:-1800} ))
while [ $missing -ne 0 ]; do
  [ "$(date +%s)" -lt $deadline ] || { log "node 4 still missing rows after the timeout"; exit 1; }
  missing=0
  for ((t = 0; t < tables; t++)); do
    # TABLE INFO counts the rows node 4 itself holds (COUNT would be answered by the owner).
    got=$("$ATLAS_BIN/atlas" --socket "$tmp/n4/atlas.sock" -c "TABLE INFO bulk$t" |
      sed -n 's/.* rows=\([0-9]*\) .*/\1/p')
    [ "COUNT:$got" = "${want[$t]}" ] || missing=1
  done
done
complete=$(python3 -c "import time; print(round(time.time() - $start, 1))")
peak=$(awk '/VmHWM/ {print int($2 / 1024) " MB"}' /proc/$n4/status)
growth=""
for i in 1 2 3; do
  hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' /proc/$(cat "$tmp/c/n$i.pid")/status)
  growth+=" n$i +$((hwm - rss0[i])) MB"
done
wait $fg_pid || true
echo "foreground PUTs idle: $fg_idle; during the join: $(cat "$tmp/fg-during")"
echo "node 4: /health ACTIVE after $active s; every row readable on node 4 after $complete s ($mb MB written in $tables tables: ${want[*]}; node 4 holds $(du -sh "$tmp/n4" | cut -f1), peak RSS $peak; senders' peak RSS growth:$growth)"
