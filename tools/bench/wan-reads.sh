#!/usr/bin/env bash
# Replica read leases in the WAN lab (docs/benchmarks.md §Local reads in every zone): five
# zones of the shared RTT matrix, one atlasd each (Fn=0, Fz=0). One table, owned in va, read
# from every zone:
#   1. OWNER: reads only, every zone; a read outside va goes to the owner.
#   2. LOCAL (TABLE READS LOCAL): the same reads, answered by each zone's own replica.
#   3. LOCAL, writes from va while the other zones keep reading (and so keep their leases):
#      a write waits for the farthest holder's ack.
#   4. OWNER, LOCAL and AUTO with 5% writes from every zone (a read-mostly table): AUTO
#      should grant every zone a lease.
#   5. OWNER and AUTO with 50% writes from every zone (a write-heavy table): AUTO should
#      grant none, and cost nothing.
# The mixed runs show their reads and writes apart.
# Usage: sudo tools/bench/wan-reads.sh   Environment: WAN_OUT (JSON dir), WAN_SECONDS (15),
# WAN_CONNS (connections per zone, 2), WAN_KEYS (rows of the table, 100).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/tools/bench/lib.sh"
out=${WAN_OUT:-$(mktemp -d /tmp/atlas-wan-reads.XXXXXX)}
secs=${WAN_SECONDS:-15}
conns=${WAN_CONNS:-2}
keys=${WAN_KEYS:-100}
zones=(va or ca ir jp)
mkdir -p "$out"
wan_lab_up "$(IFS=,; echo "${zones[*]}")"
all=() others=()
for k in "${!zones[@]}"; do
  all+=(--target "zone=${zones[$k]}@atlas:$work/lab/n$((k + 1))/atlas.sock")
  [ "$k" -gt 0 ] && others+=(--target "zone=${zones[$k]}@atlas:$work/lab/n$((k + 1))/atlas.sock")
done
va=(--target "zone=va@atlas:$work/lab/n1/atlas.sock")
atlas() { "$bin/atlas" --socket "$work/lab/n1/atlas.sock" -c "$1"; }
common=(--distribution conflict --conflict 100 --tables 1 --keys "$keys" -d 1 --json)
bench() { "$bin/atlas-bench" "$@" "${common[@]}" 2>/dev/null || true; }
# Each zone's mean / p50 / p99 in ms, and the zone average of the means; of the reads or the
# writes alone with a third argument (read_latency_us, write_latency_us).
show() {
  python3 - "$1" "$2" "${3:-latency_us}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
row, means = f"{sys.argv[2]:<28}", []
for z, v in d["zones"].items():
    l = v[sys.argv[3]]; means.append(l["mean"] / 1000)
    row += f"{z:>4} {l['mean'] / 1000:6.1f}/{l['p50'] / 1000:5.1f}/{l['p99'] / 1000:6.1f}"
print(row + f"   avg {sum(means) / len(means):6.1f}")
PY
}
echo "per zone: mean/p50/p99 ms"
# Preload through va (the table is owned there), pin it there.
bench "${va[@]}" --write-ratio 1 -c 1 --duration 2 >/dev/null
atlas "TABLE MOVE bench_shared 1" >/dev/null
atlas "TABLE PIN bench_shared va" >/dev/null
bench "${all[@]}" --write-ratio 0 -c "$conns" --duration "$secs" --no-preload >"$out/owner-reads.json"
show "$out/owner-reads.json" "OWNER, reads"
atlas "TABLE READS bench_shared LOCAL" >/dev/null
bench "${all[@]}" --write-ratio 0 -c "$conns" --duration 3 --no-preload >/dev/null  # leases
bench "${all[@]}" --write-ratio 0 -c "$conns" --duration "$secs" --no-preload >"$out/local-reads.json"
show "$out/local-reads.json" "LOCAL, reads"
bench "${others[@]}" --write-ratio 0 -c "$conns" --duration "$((secs + 6))" --no-preload \
  >"$out/local-holders-reading.json" &
readers=$!
sleep 3
bench "${va[@]}" --write-ratio 1 -c "$conns" --duration "$secs" --no-preload >"$out/local-writes.json"
wait "$readers"
show "$out/local-writes.json" "LOCAL, writes from va"
show "$out/local-holders-reading.json" "LOCAL, reads meanwhile"
mixed() {  # mode, write ratio, name
  atlas "TABLE READS bench_shared $1" >/dev/null
  # Leases granted, or lapsed (AUTO weighs the last 4 s).
  bench "${all[@]}" --write-ratio "$2" -c "$conns" --duration 5 --no-preload >/dev/null
  bench "${all[@]}" --write-ratio "$2" -c "$conns" --duration "$secs" --no-preload \
    >"$out/$1-$3.json"
  show "$out/$1-$3.json" "$1, $3: reads" read_latency_us
  show "$out/$1-$3.json" "$1, $3: writes" write_latency_us
  show "$out/$1-$3.json" "$1, $3: all"
  echo "$1 $3: holders=$(atlas "TABLE INFO bench_shared" | sed -n 's/.* holders=\([^ ]*\).*/\1/p')"
}
mixed LOCAL 0.05 95pc-reads
mixed OWNER 0.05 95pc-reads
mixed AUTO 0.05 95pc-reads
mixed AUTO 0.5 50pc-writes
mixed OWNER 0.5 50pc-writes
echo "JSON in $out"
