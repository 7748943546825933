#!/usr/bin/env bash
# Rows that expire together (issue «What applications need from a consistent store»;
# docs/benchmarks.md): one node (tools/cluster), EXPIRY_ROWS rows of 100 bytes written into one
# table with the same EXPIRE AT instant, then the owner's removals through the log are timed
# (the table's revision counts them), while a light foreground load writes into another table.
# Reports the removal rate and the foreground's PUT p99 before the instant and during the
# removals.
#
# Usage: tools/bench/expiry.sh   Environment: EXPIRY_ROWS (default 1000000), ATLAS_BUILD_DIR
# (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
rows=${EXPIRY_ROWS:-1000000}
. "$root/tools/bench/lib.sh"
bench_node expiry 29800

# The instant: after the load (at ~15,000 rows/s or more here, with a margin).
at_s=$(python3 -c "import time; print(int(time.time() + $rows / 15000 + 15))")
at=$(date -u -d "@$at_s" +%FT%TZ)
log "writing $rows rows expiring at $at"
python3 "$root/tools/bench/load_rows.py" "$sock" big "$rows" --options "EXPIRE AT $at"
[ "$(date +%s)" -lt "$at_s" ] || log "warning: the load outlasted the expiry instant"

atlas() { "$ATLAS_BIN/atlas" --socket "$sock" "$@"; }
p99() {  # PUT p99 in ms of a 250-PUT/s foreground into table fg for $1 seconds
  "$ATLAS_BIN/atlas-bench" --target "atlas:$sock" --op put -c 4 -d 1 --rate 250 \
    --duration "$1" --keys 1000 --table fg --value-size 100 --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["latency_us"]["p99"] / 1000))'
}
# The idle figure is taken just before the instant, not right after the load: the load's
# flushes and compactions would otherwise be in it.
now=$(date +%s)
[ "$now" -lt "$((at_s - 6))" ] && sleep $((at_s - 6 - now))
idle=$(p99 5)
log "foreground PUT p99 before the instant: $idle ms"
now=$(date +%s)
[ "$now" -lt "$at_s" ] && sleep $((at_s - now))
p99 20 >"$tmp/during" &
fg=$!
# Removals so far: the table's revision, less the rows written and our probes.
probes=0
removed() {  # after probe number $probes
  atlas -c "KEY PUT big.probe $probes" >/dev/null
  atlas -c "KEY INFO big.probe" | awk -v rows="$rows" -v p="$probes" \
    '/^ROW/ {for (i = 1; i <= NF; i++) if ($i ~ /^rev=/) {sub("rev=", "", $i); print $i - rows - p}}'
}
t0=$(date +%s.%N)
first=
while :; do
  probes=$((probes + 1))
  r=$(removed)
  t=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
  [ -z "$first" ] && [ "$r" -gt 0 ] && first=$t
  log "after $t s: $r of $rows removed"
  [ "$r" -ge "$rows" ] && break
  [ "${t%.*}" -ge 600 ] && { log "gave up"; break; }
  sleep 1
done
wait "$fg"
echo "removed $r rows in $t s after the instant ($(python3 -c "print(round($r / max($t, 0.1)))") rows/s);" \
  "first removal seen $first s after it"
echo "foreground PUT p99: $idle ms before, $(cat "$tmp/during") ms during the removals"
