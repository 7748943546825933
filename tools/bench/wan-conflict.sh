#!/usr/bin/env bash
# Experiment 5 of issue «WAN lab» (docs/benchmarks.md): the conflict sweep. Five zones of the
# shared RTT matrix in the WAN lab (one atlasd each, Fz=0); each zone writes its own tables,
# except c% of its requests, which go to tables every zone shares. c = 0, 2, 25, 100.
# Usage: sudo tools/bench/wan-conflict.sh   Environment: WAN_OUT (JSON dir), WAN_SECONDS (20),
# WAN_CONNS (connections per zone, 2).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/tools/bench/lib.sh"
out=${WAN_OUT:-$(mktemp -d /tmp/atlas-wan-conflict.XXXXXX)}
secs=${WAN_SECONDS:-20}
conns=${WAN_CONNS:-2}
zones=(va or ca ir jp)
mkdir -p "$out"
wan_lab_up "$(IFS=,; echo "${zones[*]}")"
t=()
for k in "${!zones[@]}"; do t+=(--target "zone=${zones[$k]}@atlas:$work/lab/n$((k + 1))/atlas.sock"); done
atlas() { "$bin/atlas" --socket "$work/lab/n1/atlas.sock" -c "$1"; }
printf '%-9s' "conflict"; for z in "${zones[@]}"; do printf '%22s' "$z mean/p50 ms"; done; printf '%12s\n' "zone avg"
for c in 0 2 25 100; do
  # Warm up (preload: each zone's own tables are first written, so owned, in that zone), put
  # each zone's tables at home, then measure.
  "$bin/atlas-bench" "${t[@]}" --distribution conflict --conflict "$c" --write-ratio 1 -c "$conns" \
    -d 1 --keys 1000 --duration 5 --json >/dev/null 2>&1 || true
  for k in "${!zones[@]}"; do atlas "TABLE MOVE bench_${zones[$k]} $((k + 1))" >/dev/null || true; done
  "$bin/atlas-bench" "${t[@]}" --distribution conflict --conflict "$c" --write-ratio 1 -c "$conns" \
    -d 1 --keys 1000 --duration "$secs" --no-preload --json >"$out/conflict-$c.json" 2>/dev/null || true
  python3 - "$out/conflict-$c.json" "$c" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
row, means = f"{sys.argv[2] + '%':<9}", []
for z, v in d["zones"].items():
    l = v["latency_us"]; means.append(l["mean"] / 1000)
    row += f"{l['mean'] / 1000:>14.1f} / {l['p50'] / 1000:<5.1f}"
print(row + f"{sum(means) / len(means):>12.1f}")
PY
done
echo "JSON in $out"
