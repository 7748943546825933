#!/usr/bin/env bash
# Single-node reference benchmark (issue 5, experiment 1): a fresh atlasd against redis-server on
# this machine, both on a Unix socket, 100-byte values, the same key space, both driven by
# atlas-bench with the same workload (same keys, same clock; only --target changes). Redis runs
# with `appendonly yes` and `appendfsync always` (each acknowledged write is on disk, as atlasd's
# are); SET is measured again with `appendfsync no` to show what durability costs. The
# redis-benchmark figure of each Redis row is printed as a cross-check of the driver.
#
# Usage: tools/bench/single-node.sh            (needs build/bin/atlasd and build/bin/atlas-bench)
# Environment: ATLAS_BUILD_DIR (default build/), BENCH_OPS (ops per concurrent/pipelined run,
# default 50000), BENCH_SERIAL_OPS (ops per depth-1 single-connection run, default 5000),
# BENCH_MAX_SECONDS (cap per atlas-bench run, default 10), BENCH_KEEP=1 keeps the temp dir.
# Each row also shows the server's CPU per operation (its /proc/<pid>/stat times over the run).
# Installs redis-server / redis-tools with apt-get when missing. Total runtime: about a minute.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${ATLAS_BUILD_DIR:-$root/build}
ops=${BENCH_OPS:-50000}
serial_ops=${BENCH_SERIAL_OPS:-5000}
max_s=${BENCH_MAX_SECONDS:-10}
keys=10000
value_size=100

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=tools/bench/packages.sh
. "$root/tools/bench/packages.sh"

for b in atlasd atlas-bench; do
  [ -x "$build_dir/bin/$b" ] || die "$build_dir/bin/$b missing; build it (tools/dev build)"
done

require_packages redis-server redis-benchmark -- redis-server redis-tools

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-bench.XXXXXX")
atlasd_pid='' redis_pid=''
cleanup() {
  local pid
  for pid in $atlasd_pid $redis_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# atlasd also listens on TCP (peers, HTTPS); pick ports nobody is using so that a developer's
# own atlasd on the defaults (7400/7480) is left alone.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  die "no free TCP port found"
}

wait_for() {  # wait_for <what> <pid> <test command...>
  local what=$1 pid=$2 i
  shift 2
  for i in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited; see $tmp"
    sleep 0.05
  done
  die "$what did not come up; see $tmp"
}

log "starting atlasd and redis-server in $tmp"
"$build_dir/bin/atlasd" --data-dir "$tmp/atlas" --listen "127.0.0.1:$(free_port)" \
  --http-listen "127.0.0.1:$(free_port)" --log-level warn >"$tmp/atlasd.log" 2>&1 &
atlasd_pid=$!
wait_for atlasd "$atlasd_pid" test -S "$tmp/atlas/atlas.sock"

redis-server --port 0 --unixsocket "$tmp/redis.sock" --dir "$tmp" --save '' \
  --appendonly yes --appendfsync always >"$tmp/redis.log" 2>&1 &
redis_pid=$!
wait_for redis-server "$redis_pid" redis-cli -s "$tmp/redis.sock" ping

# --- atlasd -----------------------------------------------------------------------------------
declare -A res  # res[<row>,<field>]: ops, p50, p99 (ops/s, microseconds)

# The run's overall figures (top level; per-zone ones sit under "zones").
json_field() {  # json_field <json> ops_per_sec|ops|p50|p99
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print(d[sys.argv[2]] if sys.argv[2] in ("ops_per_sec", "ops") else d["latency_us"][sys.argv[2]])' \
    "$1" "$2"
}

# CPU time a process has used, in clock ticks (user + system, /proc/<pid>/stat fields 14, 15).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bench_run() {  # bench_run <prefix> <row> <server pid> <target> <op> <connections> <depth> <ops>
  local p=$1 row=$2 pid=$3 target=$4 op=$5 c=$6 d=$7 n=$8 out before
  log "atlas-bench --target $target --op $op --connections $c --depth $d --ops $n"
  before=$(cpu_ticks "$pid")
  out=$("$build_dir/bin/atlas-bench" --target "$target" --op "$op" \
        --connections "$c" --depth "$d" --ops "$n" --duration "$max_s" --keys "$keys" \
        --value-size "$value_size" --table bench --no-preload --json 2>/dev/null) ||
    die "atlas-bench failed: $out"
  # The server's CPU per operation, in microseconds.
  res[$row,${p}_cpu]=$(awk -v t="$(( $(cpu_ticks "$pid") - before ))" -v hz="$(getconf CLK_TCK)" \
    -v n="$(json_field "$out" ops)" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  res[$row,${p}_ops]=$(json_field "$out" ops_per_sec)
  res[$row,${p}_p50]=$(json_field "$out" p50)
  res[$row,${p}_p99]=$(json_field "$out" p99)
}
atlas_run() { bench_run a "$1" "$atlasd_pid" "atlas:$tmp/atlas/atlas.sock" "${@:2}"; }
redis_run() { bench_run r "$1" "$redis_pid" "redis:$tmp/redis.sock" "${@:2}"; }

# The same six runs against each system. PUTs first: their preload also writes every key the
# GETs read (keys are drawn from the same space; bench.k<i> on both).
run_all() {  # run_all atlas|redis <target>
  local run=${1}_run
  "$build_dir/bin/atlas-bench" --target "$2" --op put --connections 4 --depth 64 \
    --ops "$keys" --keys "$keys" --value-size "$value_size" --table bench \
    >/dev/null 2>&1 || die "$1 preload failed"
  $run put1 put 1 1 "$serial_ops"
  $run put64p put 1 64 "$ops"
  $run put64c put 64 1 "$ops"
  $run put64x16 put 64 16 "$((ops * 4))"
  $run get1 get 1 1 "$serial_ops"
  $run get64p get 1 64 "$ops"
  $run get64c get 64 1 "$ops"
}
run_all atlas "atlas:$tmp/atlas/atlas.sock"

# --- redis ------------------------------------------------------------------------------------
run_all redis "redis:$tmp/redis.sock"

# Cross-check with Redis's own tool: ops/s only (its -P latency is per batch, not per request).
# CSV: "test","rps",...
rb_run() {  # rb_run <set-row> <get-row|-> <tests> <n> <redis-benchmark args...>
  local set_row=$1 get_row=$2 tests=$3 n=$4 line name rps row
  shift 4
  log "redis-benchmark -t $tests -n $n $*"
  while IFS= read -r line; do
    line=${line//\"/}
    IFS=, read -r name rps _ <<<"$line"
    case $name in
      SET) row=$set_row ;;
      GET) row=$get_row ;;
      *) continue ;;
    esac
    res[$row,rb_ops]=$rps
  done < <(redis-benchmark -s "$tmp/redis.sock" -t "$tests" -d "$value_size" -r "$keys" -n "$n" \
             --csv "$@")
}
rb_run put1 get1 set,get "$serial_ops" -c 1
rb_run put64p get64p set,get "$ops" -c 1 -P 64
rb_run put64c get64c set,get "$ops" -c 64
rb_run put64x16 - set "$((ops * 4))" -c 64 -P 16

redis-cli -s "$tmp/redis.sock" config set appendfsync no >/dev/null
redis_run nofsync1 put 1 1 "$serial_ops"
redis_run nofsync64p put 1 64 "$ops"
redis_run nofsync64c put 64 1 "$ops"
redis_run nofsync64x16 put 64 16 "$((ops * 4))"
rb_run nofsync1 - set "$serial_ops" -c 1
rb_run nofsync64p - set "$ops" -c 1 -P 64
rb_run nofsync64c - set "$ops" -c 64
rb_run nofsync64x16 - set "$((ops * 4))" -c 64 -P 16

# --- table ------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() {  # row <label> <atlas-row> <redis-row>
  local a=$2 r=$3
  printf '%-20s %9.0f %9s %9s %7s | %9.0f %9s %9s %7s | %6s | %9.0f\n' "$1" "${res[$a,a_ops]}" \
    "${res[$a,a_p50]}" "${res[$a,a_p99]}" "${res[$a,a_cpu]}" "${res[$r,r_ops]}" \
    "${res[$r,r_p50]}" "${res[$r,r_p99]}" "${res[$r,r_cpu]}" \
    "$(ratio "${res[$a,a_ops]}" "${res[$r,r_ops]}")" "${res[$r,rb_ops]:-0}"
}

echo
echo "single node, Unix socket, ${value_size}-byte values, ${keys} keys, $(nproc) CPUs," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "atlasd $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(redis-server --version | cut -d' ' -f1-3); both driven by atlas-bench"
printf '%-20s %9s %9s %9s %7s | %9s %9s %9s %7s | %6s | %9s\n' "" "atlasd" "" "" "" "redis" \
  "" "" "" "" "redis-"
printf '%-20s %9s %9s %9s %7s | %9s %9s %9s %7s | %6s | %9s\n' "" ops/s "p50 us" "p99 us" \
  "cpu us" ops/s "p50 us" "p99 us" "cpu us" "ratio" "benchmark"
printf '%s\n' "$(printf '%.0s-' $(seq 1 120))"
echo "durable: redis appendonly yes, appendfsync always"
row "PUT  c=1  depth=1" put1 put1
row "PUT  c=1  depth=64" put64p put64p
row "PUT  c=64 depth=1" put64c put64c
row "PUT  c=64 depth=16" put64x16 put64x16
row "GET  c=1  depth=1" get1 get1
row "GET  c=1  depth=64" get64p get64p
row "GET  c=64 depth=1" get64c get64c
echo "not durable: redis appendfsync no (atlasd unchanged: it always syncs)"
row "PUT  c=1  depth=1" put1 nofsync1
row "PUT  c=1  depth=64" put64p nofsync64p
row "PUT  c=64 depth=1" put64c nofsync64c
row "PUT  c=64 depth=16" put64x16 nofsync64x16
echo "ratio = atlasd ops/s / redis ops/s, both measured by atlas-bench (same keys, values, clock)."
echo "cpu us: the server's CPU time (user + system) per operation, in microseconds."
echo "redis-benchmark: ops/s of Redis's own tool with the same -c/-P, a cross-check of the driver."
