#!/usr/bin/env bash
# Replicated reference benchmark (issue «Cluster» report): a 3-node atlasd cluster started by
# tools/cluster (one zone, Fn=1, Fz=0: every write is fsynced on 2 of 3 nodes before its OK)
# against a 3-member etcd cluster (Debian etcd-server, every write fsynced on a majority), both
# on loopback on this machine, in the same run.
#
# Both are driven by atlas-bench with the same workload: 64 connections x 1 in flight (64
# concurrent requests), 100-byte values over 10,000 keys, PUT then GET (linearizable reads:
# atlasd's read barrier, etcd's default serializable=false Range). atlasd's clients talk to
# node 1, the owner of the table; etcd's to its leader. The ratio lines compare the two.
# BENCH_CHECK_PERF=1 also runs `etcdctl check perf --load=l` (etcd's own 60 s load test).
#
# Usage: tools/bench/cluster-vs-etcd.sh   (needs build/bin/{atlasd,atlas,atlas-bench})
# Environment: BENCH_OPS (default 50000), ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1,
# ATLASD_EXTRA_ARGS (added to every atlasd, e.g. "--read-lease off"; see tools/cluster).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${ATLAS_BUILD_DIR:-$root/build}
ops=${BENCH_OPS:-50000}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=tools/bench/packages.sh
. "$root/tools/bench/packages.sh"

for b in atlasd atlas atlas-bench; do
  [ -x "$build_dir/bin/$b" ] || die "$build_dir/bin/$b missing; build it (tools/dev build)"
done
require_packages etcd etcdctl -- etcd-server etcd-client

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-cluster-bench.XXXXXX")
etcd_pids=()
cleanup() {
  ATLAS_BIN=$build_dir/bin "$root/tools/cluster" down --dir "$tmp/atlas" >/dev/null 2>&1 || true
  for pid in "${etcd_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

log "starting a 3-node atlasd cluster (one zone, Fn=1, Fz=0)"
ATLAS_BIN=$build_dir/bin "$root/tools/cluster" up --zones 1 --nodes-per-zone 3 --fn 1 --fz 0 \
  --dir "$tmp/atlas" --base-port 27400 >&2
sock=$tmp/atlas/n1/atlas.sock
"$build_dir/bin/atlas" --socket "$sock" -c 'KEY PUT bench.warm x' >/dev/null

bench() {  # op [connections [ops]]
  "$build_dir/bin/atlas-bench" --socket "$sock" --op "$1" -c "${2:-64}" -d 1 -n "${3:-$ops}" \
    --keys 10000 --value-size 100 --table bench --json
}
log "atlasd PUT, 64 concurrent"
atlas_put=$(bench put)
log "atlasd GET, 64 concurrent"
atlas_get=$(bench get)
log "atlasd GET, one connection"
atlas_get1=$(bench get 1 $((ops / 10)))

log "starting a 3-member etcd cluster"
cluster=""
for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:$((28380 + i))"; done
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$tmp/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((28370 + i))" \
    --advertise-client-urls "http://127.0.0.1:$((28370 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((28380 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((28380 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token atlas-bench >"$tmp/etcd$i.log" 2>&1 &
  etcd_pids+=($!)
done
endpoints="http://127.0.0.1:28371,http://127.0.0.1:28372,http://127.0.0.1:28373"
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
# The leader's client endpoint: etcd forwards proposals to it anyway, as atlasd does to an owner.
leader=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status -w json |
  python3 -c 'import json,sys; print([e["Endpoint"] for e in json.load(sys.stdin) if e["Status"]["leader"] == e["Status"]["header"]["member_id"]][0])')
log "etcd PUT, 64 concurrent (leader ${leader#http://})"
etcd_put=$("$build_dir/bin/atlas-bench" --target "etcd:${leader#http://}" --op put -c 64 -d 1 \
  -n "$ops" --keys 10000 --value-size 100 --table bench --json)
log "etcd GET, 64 concurrent"
etcd_get=$("$build_dir/bin/atlas-bench" --target "etcd:${leader#http://}" --op get -c 64 -d 1 \
  -n "$ops" --keys 10000 --value-size 100 --table bench --json)
log "etcd GET, one connection"
etcd_get1=$("$build_dir/bin/atlas-bench" --target "etcd:${leader#http://}" --op get -c 1 -d 1 \
  -n $((ops / 10)) --keys 10000 --value-size 100 --table bench --json)
etcd_perf=""
if [ "${BENCH_CHECK_PERF:-0}" = 1 ]; then
  log "etcdctl check perf --load=l (60 s)"
  etcd_perf=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" check perf --load=l 2>&1 || true)
fi

field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d$2)" "$1"; }
report() {  # op json
  printf '%s ops/s %s  p50 %s us  p99 %s us  errors %s\n' "$1" "$(field "$2" "['ops_per_sec']")" \
    "$(field "$2" "['latency_us']['p50']")" "$(field "$2" "['latency_us']['p99']")" \
    "$(field "$2" "['errors']")"
}
echo "== atlasd 3 nodes (Fn=1): 64 concurrent, 100-byte values =="
report put "$atlas_put"
report get "$atlas_get"
report "get c=1" "$atlas_get1"
echo "== etcd 3 members: the same load =="
report put "$etcd_put"
report get "$etcd_get"
report "get c=1" "$etcd_get1"
ratio() { python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(round(a['ops_per_sec'] / b['ops_per_sec'], 2))" "$1" "$2"; }
echo "== ratio atlasd / etcd: PUT $(ratio "$atlas_put" "$etcd_put")x  GET $(ratio "$atlas_get" "$etcd_get")x  GET c=1 $(ratio "$atlas_get1" "$etcd_get1")x"
if [ -n "$etcd_perf" ]; then
  echo "== etcdctl check perf --load=l =="
  echo "$etcd_perf" | tr '\r' '\n' | grep -v ' / 60 ' | grep -v '^ *$' | tail -6
fi
