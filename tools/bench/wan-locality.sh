#!/usr/bin/env bash
# Experiment 3 of issue «WAN lab» (docs/benchmarks.md): five zones of the shared RTT matrix in
# the WAN lab (tools/wan/lab, real processes behind wan-proxy), the WPaxos authors' locality
# workload (70% of a zone's requests to tables homed in it), PUTs only, per-zone latency:
#   1. atlasd, every table owned in its home zone (WPaxos; Fz from WAN_FZ, default 0);
#   2. the same atlasd with every table moved and pinned to one zone (a single leader);
#   3. etcd, one member per zone, its leader moved to the best-placed zone.
# Each system runs the same atlas-bench command line; only the targets change.
#
# Usage: sudo tools/bench/wan-locality.sh     Environment: WAN_NODES_PER_ZONE (default 1),
# WAN_FN (default 0), WAN_FZ (default 0), WAN_ETCD (default 1; 0 skips etcd), WAN_CONNS (connections per zone, default 2), WAN_SECONDS (default 20),
# WAN_LEADER_ZONE (default ca: the smallest mean RTT to the other zones), WAN_OUT (JSON dir).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${ATLAS_BIN:-$root/build/bin}
per_zone=${WAN_NODES_PER_ZONE:-1}
fn=${WAN_FN:-0}
fz=${WAN_FZ:-0}
conns=${WAN_CONNS:-2}
secs=${WAN_SECONDS:-20}
leader_zone=${WAN_LEADER_ZONE:-ca}
out=${WAN_OUT:-$(mktemp -d /tmp/atlas-wan-locality.XXXXXX)}
zones=(va or ca ir jp)
locality=$root/../shared/wan/locality-5zones.csv
work=$(mktemp -d /tmp/atlas-wan-lab.XXXXXX)
export ATLAS_BIN=$bin
lab() { "$root/tools/wan/lab" "$@"; }
trap 'lab down --dir "$work/atlas" >/dev/null 2>&1 || true; lab down --dir "$work/etcd" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
log() { printf '[wan-locality] %s\n' "$*" >&2; }
mkdir -p "$out"

bench() {  # name targets...
  local name=$1; shift
  "$bin/atlas-bench" "$@" --distribution locality --locality "$locality" --write-ratio 1 \
    -c "$conns" -d 1 --keys 1000 --duration "$secs" --json >"$out/$name.json" 2>"$out/$name.log" ||
    log "$name: atlas-bench reported errors (see $out/$name.json)"
  python3 - "$out/$name.json" "$name" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"== {sys.argv[2]}: {d['ops_per_sec'] if 'ops_per_sec' in d else ''} ops/s")
print(f"{'zone':<5} {'ops':>6} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} errors")
for z, v in d["zones"].items():
    l = v["latency_us"]
    print(f"{z:<5} {v['ops']:>6} {l['mean']/1000:>8.2f} {l['p50']/1000:>8.2f} {l['p99']/1000:>8.1f} {v['errors']}")
EOF
}

# --- atlasd: WPaxos, then a single leader -------------------------------------------------------
lab up --dir "$work/atlas" --zones "$(IFS=,; echo "${zones[*]}")" --nodes-per-zone "$per_zone" \
  --fn "$fn" --fz "$fz" --lab-id 5 >&2
targets=()
for k in "${!zones[@]}"; do
  targets+=(--target "zone=${zones[$k]}@atlas:$work/atlas/n$((k * per_zone + 1))/atlas.sock")
done
atlas() { "$bin/atlas" --socket "$work/atlas/n1/atlas.sock" -c "$1"; }
# The first run preloads every home table through its home zone (so each is owned there) and
# warms up; the second is measured.
bench wpaxos-warmup "${targets[@]}" >/dev/null
# The paper's placement: each table owned in its home zone. (The first write of a home table
# may come from another zone; the migration policy would move it after two 10 s windows of
# dominance, longer than this experiment wants to wait.)
for k in "${!zones[@]}"; do
  atlas "TABLE MOVE bench_${zones[$k]} $((k * per_zone + 1))" >/dev/null ||
    log "move of bench_${zones[$k]} home failed"
done
bench wpaxos "${targets[@]}" --no-preload
for z in "${zones[@]}"; do atlas "TABLE INFO bench_$z" | head -1 >&2; done

leader=1  # node 1 is in zone va; pinning to the best zone is WAN_LEADER_ZONE's job for etcd
for k in "${!zones[@]}"; do
  [ "${zones[$k]}" = "$leader_zone" ] && leader=$((k * per_zone + 1))
done
for z in "${zones[@]}"; do
  atlas "TABLE PIN bench_$z $leader_zone" >/dev/null
  atlas "TABLE MOVE bench_$z $leader" >/dev/null || log "move of bench_$z failed"
done
for z in "${zones[@]}"; do atlas "TABLE INFO bench_$z" | head -1 >&2; done
bench single-leader "${targets[@]}" --no-preload
lab down --dir "$work/atlas" >/dev/null

# --- etcd, one member per zone, leader in $leader_zone ------------------------------------------
if [ "${WAN_ETCD:-1}" = 0 ]; then
  log "WAN_ETCD=0: etcd skipped"
elif command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  lab up --system etcd --dir "$work/etcd" --zones "$(IFS=,; echo "${zones[*]}")" --lab-id 6 >&2
  etargets=()
  for k in "${!zones[@]}"; do etargets+=(--target "zone=${zones[$k]}@etcd:10.106.$((k + 1)).2:2379"); done
  for k in "${!zones[@]}"; do [ "${zones[$k]}" = "$leader_zone" ] && lk=$((k + 1)); done
  eps=$(for k in "${!zones[@]}"; do printf 'http://10.106.%d.2:2379,' $((k + 1)); done)
  id=$(ETCDCTL_API=3 etcdctl --endpoints "${eps%,}" member list -w json |
    python3 -c "import json,sys; print([format(m['ID'],'x') for m in json.load(sys.stdin)['members'] if m['name']=='m$lk'][0])")
  ETCDCTL_API=3 etcdctl --endpoints "${eps%,}" move-leader "$id" >&2 || log "etcd move-leader failed"
  bench etcd-warmup "${etargets[@]}" >/dev/null
  bench etcd "${etargets[@]}" --no-preload
else
  log "etcd/etcdctl not installed (apt-get install etcd-server etcd-client): etcd skipped"
fi
log "JSON in $out"
