#!/usr/bin/env bash
# Experiment 4 of issue «WAN lab» (docs/benchmarks.md): does ownership follow the workload?
# Three zones of the shared RTT matrix (va, or, ca) in the WAN lab, one atlasd each.
#   1. shift: the hot zone moves every WAN_SHIFT_S seconds (va -> or -> ca -> va); only the hot
#      zone writes, to shared tables; per-second p50 per zone shows how fast the owner follows.
#   2. 50/50: va and or write the same tables at the same open-loop rate for 60 s; the table's
#      ballot before and after counts ownership moves (a steal raises it).
# Usage: sudo tools/bench/wan-shift.sh   Environment: WAN_OUT (JSON dir), WAN_SHIFT_S (10).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${ATLAS_BIN:-$root/build/bin}
out=${WAN_OUT:-$(mktemp -d /tmp/atlas-wan-shift.XXXXXX)}
shift_s=${WAN_SHIFT_S:-10}
work=$(mktemp -d /tmp/atlas-wan-lab.XXXXXX)
export ATLAS_BIN=$bin
lab() { "$root/tools/wan/lab" "$@"; }
trap 'lab down --dir "$work/lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$out"
lab up --dir "$work/lab" --zones va,or,ca --lab-id 8 >&2
t=()
i=1
for z in va or ca; do t+=(--target "zone=$z@atlas:$work/lab/n$i/atlas.sock"); i=$((i + 1)); done
"$bin/atlas-bench" "${t[@]}" --distribution shift --shift-every "$shift_s" --write-ratio 1 -c 2 \
  -d 1 --keys 100 --duration $((4 * shift_s)) --json >"$out/shift.json" 2>/dev/null
python3 - "$out/shift.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); s = d["series"]; hot = s["hot_zone"]
print("== shift: p50 (ms) of the hot zone, seconds after each shift")
for k in range(1, len(hot)):
    if hot[k] != hot[k - 1]:
        z = hot[k]
        p = [round(v / 1000, 1) for v in s["zones"][z]["p50_us"][k:k + 5]]
        print(f"to {z} at {k} s: {p}")
PY
info() { "$bin/atlas" --socket "$work/lab/n1/atlas.sock" -c "TABLE INFO bench_shared" | head -1; }
before=$(info)
"$bin/atlas-bench" "${t[@]:0:4}" --distribution conflict --conflict 100 --write-ratio 1 -c 4 -d 8 \
  --rate 200 --keys 100 --duration 60 --no-preload --json >"$out/fifty-fifty.json" 2>/dev/null
after=$(info)
echo "== 50/50 for 60 s (100 writes/s from va and from or):"
echo "before: $before"
echo "after:  $after"
echo "JSON in $out"
