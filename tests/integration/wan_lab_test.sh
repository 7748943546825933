#!/usr/bin/env bash
# The WAN lab end to end (tools/wan/lab, docs/wan-lab.md): three atlasd processes in three
# zones of the shared RTT matrix (va, or, ca), each in its own network namespace, every peer
# link through wan-proxy. Checks that the emulated RTTs are what the matrix says, that a write
# to a table owned in the writer's zone commits locally (Fz=0) while a forwarded one pays the
# WAN round trip, and that cut/heal partitions and restores a link.
# Needs root (network namespaces); exits 77 (ctest: skipped) without it.
set -euo pipefail
source "$(dirname "$0")/netns_lab.sh" "$1"

dir=$(mktemp -d /tmp/atlas-wanlab.XXXXXX)
lab() { ATLAS_BIN=$bin "$root/tools/wan/lab" "$@" --dir "$dir/lab"; }
trap 'lab down >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/lab/*.log; do echo "== $f"; tail -n 5 "$f"; done; exit 1; }

lab up --zones va,or,ca --lab-id 7 --rtt "$root/../shared/wan/rtt-5zones.csv"
atlas() { "$bin/atlas" --socket "$dir/lab/n$1/atlas.sock" -c "$2"; }
rtt() { atlas "$1" "NODE PING $2" | sed -n 's/.*rtt_ms=\([0-9.]*\).*/\1/p'; }
within() { python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if $2 <= v <= $3 else 1)" "$1"; }

# RTT va-or 86 ms, va-ca 65 ms, or-ca 28 ms (+ the proxy and TLS, a few ms here).
r=$(rtt 1 2); within "$r" 86 100 || fail "va-or rtt $r ms"
r=$(rtt 1 3); within "$r" 65 79 || fail "va-ca rtt $r ms"
r=$(rtt 2 3); within "$r" 28 42 || fail "or-ca rtt $r ms"
echo "rtt ok: va-or $(rtt 1 2), va-ca $(rtt 1 3), or-ca $(rtt 2 3) ms"

p50() {  # node table ops -> p50 in ms of sequential PUTs
  "$bin/atlas-bench" --socket "$dir/lab/n$1/atlas.sock" --op put -c 1 -d 1 -n "$3" --keys 50 \
    --table "$2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_us"]["p50"] / 1000)'
}
local_ms=$(p50 1 home 100)
within "$local_ms" 0 10 || fail "a write owned in the writer's zone took p50 $local_ms ms"
remote_ms=$(p50 2 home 20)
within "$remote_ms" 80 300 || fail "a write forwarded va<-or took p50 $remote_ms ms"
echo "writes ok: local p50 $local_ms ms, forwarded or->va p50 $remote_ms ms"

lab cut 1 3 --both
for _ in $(seq 50); do
  grep -q "id=3 .*status=SUSPECT" <<<"$(atlas 1 "NODE LIST")" && break
  sleep 0.2
done
grep -q "id=3 .*status=SUSPECT" <<<"$(atlas 1 "NODE LIST")" || fail "node 3 not SUSPECT after the cut"
lab heal
for _ in $(seq 50); do
  grep -q "id=3 .*status=ACTIVE" <<<"$(atlas 1 "NODE LIST")" && break
  sleep 0.2
done
grep -q "id=3 .*status=ACTIVE" <<<"$(atlas 1 "NODE LIST")" || fail "node 3 not ACTIVE after heal"
echo "cut/heal ok"
