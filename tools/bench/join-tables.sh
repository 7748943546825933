#!/usr/bin/env bash
# A node joins a cluster that holds many tables (issue «A million tables»): a 3-node cluster
# (tools/cluster: one zone, Fn=1) gets JOIN_WRITES one-row PUTs spread over JOIN_WRITES table
# names (random names: about 63% of them distinct), then a light foreground load (50 PUT/s
# into one table on node 1, for 90 s) starts, and 10 s into it a fourth node joins. Reports the
# time until node 4's /health says ACTIVE, how many tables node 4 holds and has at rest 30 s
# later (at rest = caught up), its peak RSS, node 1's tables at rest then (re-anchored), the
# foreground's latency over the whole 90 s, and how often each node's thread fell behind its
# clock.
#
# Usage: tools/bench/join-tables.sh   Environment: JOIN_WRITES (default 50000),
# ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
n=${JOIN_WRITES:-50000}
base=29500

. "$root/tools/bench/lib.sh"
bench_cluster join-tables $base
n4=
stop_n4() { [ -z "$n4" ] || { kill "$n4" 2>/dev/null; wait "$n4" 2>/dev/null || true; }; }
trap 'stop_n4; bench_cleanup' EXIT
since() { python3 -c "import time; print(round(time.time() - $1, 1))"; }
objects() {  # port -> "objects at_rest"
  curl -sk --max-time 5 "https://127.0.0.1:$1/metrics" |
    awk '/^atlas_consensus_objects / {o = $2} /^atlas_consensus_objects_at_rest / {r = $2}
         END {printf "%d %d", o, r}'
}

log "writing $n one-row tables"
t0=$(date +%s.%N)
"$ATLAS_BIN/atlas-bench" "${targets[@]}" --op put -c 16 -d 16 -n "$n" --keys "$n" --tables "$n" \
  --table s --value-size 100 --timeout-ms 60000 >/dev/null
log "loaded in $(since "$t0") s: $(objects $((base + 101)) | cut -d' ' -f1) tables"

"$ATLAS_BIN/atlas-bench" --target "atlas:$tmp/c/n1/atlas.sock" --op put -c 1 -d 1 --rate 50 \
  --duration 90 --keys 100 --table fg --value-size 100 --timeout-ms 60000 --json \
  >"$tmp/fg.json" 2>/dev/null &
fg=$!
sleep 10
log "node 4 joins"
start=$(date +%s.%N)
"$ATLAS_BIN/atlasd" --data-dir "$tmp/n4" --region zone1 --node-name n4 \
  --listen 127.0.0.1:$((base + 4)) --http-listen 127.0.0.1:$((base + 104)) \
  --join https://127.0.0.1:$((base + 101)) --join-token-file "$tmp/c/n1/join-token" \
  >"$tmp/c/n4.log" 2>&1 &
n4=$!
active=never
progress=5
while [ "$(since "$start" | cut -d. -f1)" -lt 300 ]; do
  if [ "$(since "$start" | cut -d. -f1)" -ge "$progress" ]; then
    log "node 4 after $progress s: $(objects $((base + 104)) | sed 's/ / tables, at rest: /')"
    progress=$((progress + 5))
  fi
  if curl -sk --max-time 2 "https://127.0.0.1:$((base + 104))/health" | grep -q ACTIVE; then
    active=$(since "$start")
    break
  fi
  kill -0 "$n4" || { tail "$tmp/c/n4.log" >&2; exit 1; }
  sleep 0.5
done
sleep 30
read -r held rest <<<"$(objects $((base + 104)))"
read -r held1 rest1 <<<"$(objects $((base + 101)))"
peak=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$n4/status")
wait "$fg"
behind=$(for f in "$tmp"/c/n[1-4].log; do grep -ac "behind the clock" "$f" || true; done | xargs)
echo "node 4: /health ACTIVE after $active s; 30 s later it holds $held tables, $rest at rest;" \
  "peak RSS $peak MB (node 1: $rest1 of $held1 at rest; not yet re-anchored ones stay awake)"
python3 - "$tmp/fg.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); l = d["latency_us"]
print("foreground PUT during the join: %d ops, %d errors, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (d["ops"], d["errors"], l["p50"] / 1e3, l["p99"] / 1e3, l["max"] / 1e3))
EOF
echo "'node thread behind the clock' warnings on nodes 1-4: $behind"
