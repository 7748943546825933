#!/usr/bin/env bash
# Experiment 6 of issue «WAN lab» (docs/benchmarks.md): latency and memory with very many
# tables. A 3-node cluster (tools/cluster, one zone, Fn=1) is measured empty, then loaded with
# SCALE_TABLES tables of one 100-byte row each (every table a consensus object of its own), and
# measured again. Each measurement: resident memory of every node (VmRSS), idle CPU over
# SCALE_IDLE_S seconds, idle peer traffic (atlas_peer_bytes_sent_total) over the same
# seconds, and PUT / GET latency on 1,000 tables at 16 concurrent requests for
# SCALE_PROBE_S seconds. Reports bytes of RAM per table = RSS growth / tables.
#
# Usage: tools/bench/scale.sh   Environment: SCALE_TABLES (default 1000000), SCALE_IDLE_S
# (default 10), SCALE_SETTLE_S (seconds between a load and its measurement, default 2),
# SCALE_PROBE_S (default 10), ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${ATLAS_BUILD_DIR:-$root/build}
tables=${SCALE_TABLES:-1000000}
idle_s=${SCALE_IDLE_S:-10}
probe_s=${SCALE_PROBE_S:-10}
settle_s=${SCALE_SETTLE_S:-2}
export ATLAS_BIN=$build_dir/bin

. "$root/tools/bench/lib.sh"
bench_cluster scale 29600
pids=$(for i in 1 2 3; do cat "$tmp/c/n$i.pid"; done)

rss_mb() {  # total VmRSS of the three nodes, MB
  local p t=0
  for p in $pids; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
  echo $((t / 1024))
}
cpu_ticks() {  # utime+stime of the three nodes, clock ticks
  local p t=0
  for p in $pids; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
peer_sent() {  # bytes and messages the three nodes sent to peers so far: "<bytes> <messages>"
  local i
  for i in 1 2 3; do curl -sk --max-time 5 "https://127.0.0.1:$((29600 + 100 + i))/metrics"; done |
    awk '/^atlas_peer_bytes_sent_total / {b += $2} /^atlas_peer_messages_sent_total / {m += $2}
         END {printf "%d %d", b, m}'
}
declare -A res
measure() {  # measure <label>
  local label=$1 c0 c1 p0 p1 out
  sleep "$settle_s"  # let the load's tail settle
  p0=$(peer_sent); c0=$(cpu_ticks); sleep "$idle_s"; c1=$(cpu_ticks); p1=$(peer_sent)
  res[$label,cpu]=$(python3 -c "print(round(100 * ($c1 - $c0) / $(getconf CLK_TCK) / $idle_s / 3, 1))")
  res[$label,peer]=$(python3 -c "b0, m0, b1, m1 = map(int, '$p0 $p1'.split())
print('%.0f B/s, %.1f msgs/s' % ((b1 - b0) / $idle_s / 3, (m1 - m0) / $idle_s / 3))")
  res[$label,rss]=$(rss_mb)
  for op in put get; do
    out=$("$ATLAS_BIN/atlas-bench" "${targets[@]}" --op $op -c 16 -d 1 --keys 1000 --tables 1000 \
      --table probe --duration "$probe_s" --json 2>/dev/null) || log "$label $op: errors"
    res[$label,$op]=$(python3 -c 'import json,sys
d = json.loads(sys.argv[1]); l = d["latency_us"]
print("%9.0f %7.2f %7.2f %6d" % (d["ops_per_sec"], l["p50"] / 1000, l["p99"] / 1000, d["errors"]))' "$out")
  done
  log "$label: RSS ${res[$label,rss]} MB, idle CPU ${res[$label,cpu]}% per node," \
    "idle peer traffic ${res[$label,peer]} per node"
}

measure empty
log "loading $tables tables (one row each)"
t0=$(date +%s.%N)
out=$("$ATLAS_BIN/atlas-bench" "${targets[@]}" --op get -n 1 -c 4 --keys "$tables" \
  --tables "$tables" --table s --value-size 100 --timeout-ms 60000 --json) ||
  { log "load failed: $(head -c 300 <<<"$out")"; exit 1; }
load_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
log "loaded in $load_s s"
measure loaded
rows=$("$ATLAS_BIN/atlas" --socket "$tmp/c/n2/atlas.sock" -c "TABLE INFO s_7" | head -1)
per_table=$(( (res[loaded,rss] - res[empty,rss]) * 1024 * 1024 / 3 / tables ))
at_rest() {  # objects at rest / held on node $1 (docs/consensus.md §Cost per object)
  curl -sk --max-time 5 "https://127.0.0.1:$((29600 + 100 + $1))/metrics" |
    awk '/^atlas_consensus_objects_at_rest / {r = $2} /^atlas_consensus_objects / {n = $2}
         END {printf "%d of %d", r, n}'
}
resting="node 1 $(at_rest 1), node 2 $(at_rest 2), node 3 $(at_rest 3)"
# A restart with every table on disk: until /health says ACTIVE, and the peak RSS on the way.
log "restarting node 2 (kill -9)"
"$root/tools/cluster" kill 2 --dir "$tmp/c" >&2
t0=$(date +%s.%N)
"$root/tools/cluster" start 2 --dir "$tmp/c" >&2 || log "node 2 not serving after 30 s; waiting for /health"
until curl -sk --max-time 2 "https://127.0.0.1:29702/health" 2>/dev/null | grep -q '"ACTIVE"'; do
  sleep 0.2
  [ "$(python3 -c "import time; print(int(time.time() - $t0 > 600))")" = 1 ] && break
done
restart_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
restart_peak=$(awk '/^VmHWM/ {print int($2 / 1024) " MB"}' "/proc/$(cat "$tmp/c/n2.pid")/status")
echo
echo "3 nodes, one zone, Fn=1; $tables tables of one 100-byte row; $(nproc) CPUs; atlasd $(git -C "$root" rev-parse --short HEAD)"
echo "load: $tables tables in $load_s s ($(python3 -c "print(round($tables / $load_s))") tables/s)"
printf '%-8s %9s %10s | %-34s | %-34s\n' "" "RSS MB" "idle CPU" "PUT ops/s  p50 ms  p99 ms errors" "GET ops/s  p50 ms  p99 ms errors"
for l in empty loaded; do
  printf '%-8s %9s %9s%% | %s | %s\n' "$l" "${res[$l,rss]}" "${res[$l,cpu]}" "${res[$l,put]}" "${res[$l,get]}"
done
echo "RAM per table: $per_table bytes per node ((loaded - empty RSS) / 3 nodes / tables)"
echo "idle peer traffic per node (sent): empty ${res[empty,peer]}; loaded ${res[loaded,peer]}"
echo "a sample table on node 2: $rows"
echo "objects at rest: $resting"
echo "node 2 after kill -9: /health ACTIVE in $restart_s s, peak RSS $restart_peak"
